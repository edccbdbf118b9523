use std::fs;
use std::path::Path;

use tempfile::TempDir;

use super::check;

const CLUSTER: &str = "\
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {zone: web}}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, labels: {app: web}}
spec: {nodeName: node-1, containers: [{name: web, image: nginx}]}
status: {podIP: 10.0.0.5, podIPs: [{ip: 10.0.0.5}]}
---
apiVersion: netseg.dev/v1alpha1
kind: Segment
metadata: {name: web}
spec:
  members:
    - namespaces: {matchLabels: {zone: web}}
    - networks: [10.0.0.0/24]
";

const POLICIES: &str = "\
apiVersion: netseg.dev/v1alpha1
kind: SegmentPolicy
metadata: {name: web-to-pci}
spec:
  tier: Admin
  priority: 10
  subject: {segments: [web]}
  egress:
    - {action: Accept, to: [{segments: [pci]}]}
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: no-exfiltration}
spec:
  tier: Baseline
  priority: 0
  subject: {namespaces: {}}
  egress:
    - {action: Deny, to: [{domainNames: [pastebin.example]}]}
";

fn run(dir: &Path, strict: bool) -> (bool, Vec<String>) {
    let mut out = Vec::new();
    let passed = check(dir, strict, &mut out).expect("write to memory");
    let text = String::from_utf8(out).expect("utf-8");
    (passed, text.lines().map(str::to_owned).collect())
}

#[test]
fn warnings_and_conditions_follow_the_problems_and_fail_only_when_strict() {
    let dir = TempDir::new().expect("tempdir");
    fs::write(dir.path().join("cluster.yaml"), CLUSTER).expect("write");
    fs::write(dir.path().join("policies.yaml"), POLICIES).expect("write");
    let (passed, lines) = run(dir.path(), false);
    assert!(passed, "warnings alone pass: {lines:#?}");
    assert_eq!(
        lines,
        [
            "warning: ClusterNetworkPolicy no-exfiltration: spec.egress[0].to[0]: domainNames \
             peers are not implemented: the rule fails closed: this Deny rule denies all egress \
             traffic of the policy's subjects",
            "warning: SegmentPolicy web-to-pci: spec.egress[0].to[0].segments[0]: Segment \"pci\" \
             does not exist or is invalid: the rule fails closed: this Accept rule matches nothing",
            "warning: Segment web: spec.members[1].networks[0]: 10.0.0.0/24 covers the addresses \
             of 1 pod(s): shop/web (10.0.0.5); they are not members through it (networks members \
             are non-pod addresses; pods join a Segment by selector only)",
            "status: ClusterNetworkPolicy no-exfiltration: netseg.dev/Accepted=True FailsClosed: \
             spec.egress[0].to[0]: domainNames peers are not implemented (the rule fails closed: \
             this Deny rule denies all egress traffic of the policy's subjects)",
            "status: SegmentPolicy web-to-pci: Accepted=True Valid",
            "status: SegmentPolicy web-to-pci: ResolvedRefs=False UnknownSegment: Segments that do \
             not exist or are invalid: \"pci\" (spec.egress[0].to[0].segments[0]); rules naming \
             them fail closed, subjects select no pods through them",
            "status: Segment web: Accepted=True Valid",
        ]
    );
    assert!(!run(dir.path(), true).0, "--strict fails on warnings");
}

#[test]
fn refused_objects_are_problems_and_not_accepted() {
    let dir = TempDir::new().expect("tempdir");
    let invalid = POLICIES.replace("priority: 10", "priority: -1");
    fs::write(dir.path().join("policies.yaml"), invalid).expect("write");
    let anp = "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: AdminNetworkPolicy\n\
               metadata: {name: legacy}\nspec: {priority: 3}\n";
    fs::write(dir.path().join("legacy.yaml"), anp).expect("write");
    let (passed, lines) = run(dir.path(), false);
    assert!(!passed);
    let problems: Vec<&String> = lines
        .iter()
        .filter(|l| !l.starts_with("warning: ") && !l.starts_with("status: "))
        .collect();
    assert_eq!(problems.len(), 2, "{lines:#?}");
    assert!(
        problems[0].ends_with(
            "legacy.yaml: AdminNetworkPolicy legacy: policy.networking.k8s.io/v1alpha1 \
             AdminNetworkPolicy is not supported; ignored, nothing of it is enforced: rewrite it \
             as policy.networking.k8s.io/v1alpha2 ClusterNetworkPolicy: tier: Admin, priority: 3; \
             action Allow -> Accept; ports -> protocols: portNumber {protocol: P, port: n} -> \
             {p: {destinationPort: {number: n}}} (p is P in lower case, tcp if P is omitted), \
             portRange {protocol: P, start: s, end: e} -> {p: {destinationPort: {range: {start: \
             s, end: e}}}} (number: s when s = e), namedPort: x -> destinationNamedPort: x; at \
             most 25 rules per direction, peers per rule and protocols per rule (split larger \
             objects over consecutive priorities)"
        ),
        "{}",
        problems[0]
    );
    assert!(
        problems[1].ends_with(
            "policies.yaml: SegmentPolicy web-to-pci: spec.priority: invalid value \"-1\": must \
             be between 0 and 1000, inclusive"
        ),
        "{}",
        problems[1]
    );
    assert!(
        lines.contains(
            &"status: SegmentPolicy web-to-pci: Accepted=False Invalid: spec.priority: invalid \
              value \"-1\": must be between 0 and 1000, inclusive"
                .to_owned()
        ),
        "{lines:#?}"
    );
}
