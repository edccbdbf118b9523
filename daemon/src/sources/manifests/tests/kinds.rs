//! ClusterNetworkPolicy, Segment and SegmentPolicy manifests, and the
//! v1alpha1 kinds that ClusterNetworkPolicy replaced.

use tempfile::TempDir;

use super::{lines, write};
use crate::sources::manifests::{ManifestStore, check_dir};

const SEGMENTS: &str = "\
apiVersion: netseg.dev/v1alpha1
kind: Segment
metadata: {name: payments}
spec:
  members:
    - namespaces: {matchLabels: {zone: pci}}
    - networks: [203.0.113.0/24]
  posture: {ingress: Deny, egress: Accept}
---
apiVersion: netseg.dev/v1alpha1
kind: SegmentList
items:
  - metadata: {name: web}
    spec:
      members: [{pods: {podSelector: {matchLabels: {app: web}}}}]
";

const SEGMENT_POLICY: &str = "\
apiVersion: netseg.dev/v1alpha1
kind: SegmentPolicy
metadata: {name: web-to-payments}
spec:
  tier: Admin
  priority: 10
  mode: Audit
  subject: {segments: [payments]}
  ingress:
    - name: https
      action: Accept
      from: [{segments: [web]}]
      protocols: [{tcp: {destinationPort: {number: 443}}}, {icmp: {}}]
";

const CLUSTER_NETWORK_POLICY: &str = "\
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: no-egress-to-metadata}
spec:
  tier: Admin
  priority: 0
  subject: {namespaces: {}}
  egress:
    - action: Deny
      to: [{networks: [169.254.169.254/32]}]
";

fn counts(store: &ManifestStore) -> (usize, usize, usize) {
    let snapshot = store.snapshot();
    (
        snapshot.cluster_network_policies.len(),
        snapshot.segments.len(),
        snapshot.segment_policies.len(),
    )
}

#[test]
fn the_new_kinds_are_read_typed_lists_included() {
    let dir = TempDir::new().expect("tempdir");
    write(dir.path(), "segments.yaml", SEGMENTS);
    write(dir.path(), "policy.yaml", SEGMENT_POLICY);
    write(
        dir.path(),
        "cnp.json",
        &yaml_to_json(CLUSTER_NETWORK_POLICY),
    );
    let mut store = ManifestStore::default();
    let reload = store.reload(dir.path());
    assert_eq!(lines(&reload.problems), Vec::<String>::new());
    assert_eq!(counts(&store), (1, 2, 1));
}

fn yaml_to_json(yaml: &str) -> String {
    let value: serde_json::Value = serde_saphyr::from_str(yaml).expect("yaml");
    value.to_string()
}

#[test]
fn unknown_fields_fail_closed_inside_peers_and_protocols_only() {
    let dir = TempDir::new().expect("tempdir");
    let newer_peer = CLUSTER_NETWORK_POLICY.replace(
        "to: [{networks: [169.254.169.254/32]}]",
        "to: [{services: [{name: metadata}]}]",
    );
    write(dir.path(), "cnp.yaml", &newer_peer);
    let newer_protocol = SEGMENT_POLICY.replace("{icmp: {}}", "{igmp: {}}");
    write(dir.path(), "policy.yaml", &newer_protocol);
    let mut store = ManifestStore::default();
    assert_eq!(
        lines(&store.reload(dir.path()).problems),
        Vec::<String>::new(),
        "a newer CRD's peer or protocol is enforced fail-closed, not refused"
    );
    assert_eq!(counts(&store), (1, 0, 1));

    let typo = SEGMENT_POLICY.replace("  mode: Audit\n", "  mdoe: Audit\n");
    write(dir.path(), "policy.yaml", &typo);
    let problems = check_dir(dir.path());
    let fields: Vec<_> = problems.iter().map(|p| p.field.as_deref()).collect();
    assert_eq!(fields, [Some("spec.mdoe")], "{:?}", lines(&problems));
}

#[test]
fn an_invalid_object_is_refused_and_kept_as_written_for_its_conditions() {
    let dir = TempDir::new().expect("tempdir");
    let file = write(
        dir.path(),
        "policy.yaml",
        &SEGMENT_POLICY.replace("priority: 10", "priority: 5000"),
    );
    let mut store = ManifestStore::default();
    let reload = store.reload(dir.path());
    assert_eq!(
        lines(&reload.problems),
        [format!(
            "{}: SegmentPolicy web-to-payments: spec.priority: invalid value \"5000\": must be \
             between 0 and 1000, inclusive",
            file.display()
        )]
    );
    assert_eq!(counts(&store), (0, 0, 0), "not enforced");
    assert_eq!(reload.invalid.segment_policies.len(), 1);
}

#[test]
fn v1alpha1_kinds_are_reported_with_their_rewrite() {
    let dir = TempDir::new().expect("tempdir");
    let anp = "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: AdminNetworkPolicy\n\
               metadata: {name: sensitive}\nspec: {priority: 30, subject: {namespaces: {}}}\n";
    let banp = "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: BaselineAdminNetworkPolicy\n\
                metadata: {name: default}\nspec: {subject: {namespaces: {}}}\n";
    let file = write(dir.path(), "old.yaml", &format!("{anp}---\n{banp}"));
    let rules = "action Allow -> Accept; ports -> protocols: portNumber {protocol: P, port: n} -> \
                 {p: {destinationPort: {number: n}}} (p is P in lower case, tcp if P is omitted), \
                 portRange {protocol: P, start: s, end: e} -> {p: {destinationPort: {range: {start: \
                 s, end: e}}}} (number: s when s = e), namedPort: x -> destinationNamedPort: x; at \
                 most 25 rules per direction, peers per rule and protocols per rule (split larger \
                 objects over consecutive priorities)";
    let file = file.display();
    assert_eq!(
        lines(&check_dir(dir.path())),
        [
            format!(
                "{file}: AdminNetworkPolicy sensitive: policy.networking.k8s.io/v1alpha1 \
                 AdminNetworkPolicy is not supported; ignored, nothing of it is enforced: rewrite it \
                 as policy.networking.k8s.io/v1alpha2 ClusterNetworkPolicy: tier: Admin, priority: \
                 30; {rules}"
            ),
            format!(
                "{file}: BaselineAdminNetworkPolicy default: policy.networking.k8s.io/v1alpha1 \
                 BaselineAdminNetworkPolicy is not supported; ignored, nothing of it is enforced: \
                 rewrite it as policy.networking.k8s.io/v1alpha2 ClusterNetworkPolicy: tier: \
                 Baseline, a priority of your choice (Baseline policies are ordered by it; the name \
                 no longer has to be 'default'); {rules}"
            ),
        ]
    );
}
