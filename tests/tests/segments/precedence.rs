//! SegmentPolicy in the bands: the Admin tier before NetworkPolicy, the
//! Baseline tier after it, Pass handing over to NetworkPolicy, and at equal
//! tier and priority a ClusterNetworkPolicy before a SegmentPolicy (kind
//! before name). Each TCP port tests one of these, from a to b (86: to c).

use anyhow::Result;
use serde_json::{Value, json};

use super::traffic::{Traffic::*, allowed, check, denied};
use super::world::{Fields, World, assert_fields, rule_fields};

/// a is in `clients`, b in `servers`, both open both ways; a
/// NetworkPolicy isolates b's ingress and admits a on TCP 80 to 82.
const BASE: &str = r#"
apiVersion: netseg.dev/v1alpha1
kind: Segment
metadata: { name: clients }
spec:
  members: [{ pods: { podSelector: { matchLabels: { role: client } } } }]
  posture: { ingress: Accept, egress: Accept }
---
apiVersion: netseg.dev/v1alpha1
kind: Segment
metadata: { name: servers }
spec:
  members: [{ pods: { podSelector: { matchLabels: { role: server } } } }]
  posture: { ingress: Accept, egress: Accept }
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: server-from-client, namespace: app }
spec:
  podSelector: { matchLabels: { role: server } }
  policyTypes: [Ingress]
  ingress:
    - from: [{ podSelector: { matchLabels: { role: client } } }]
      ports: [{ port: 80 }, { port: 81 }, { port: 82 }]
"#;

/// Admin Deny on 80 (over the NetworkPolicy's allow), Baseline Deny on 81
/// (under it) and on 86 at a's egress to any pod (no NetworkPolicy
/// isolates a's egress or c's ingress),
/// Admin Pass on 82-83 ahead of an Admin Deny that it skips.
const SEGMENT_POLICIES: &str = r#"
apiVersion: netseg.dev/v1alpha1
kind: SegmentPolicy
metadata: { name: admin-deny }
spec:
  tier: Admin
  priority: 10
  subject: { segments: [servers] }
  ingress:
    - name: deny-80
      action: Deny
      from: [{ segments: [clients] }]
      protocols: [{ tcp: { destinationPort: { number: 80 } } }]
---
apiVersion: netseg.dev/v1alpha1
kind: SegmentPolicy
metadata: { name: baseline-deny }
spec:
  tier: Baseline
  priority: 10
  subject: { segments: [servers] }
  ingress:
    - name: deny-81
      action: Deny
      from: [{ segments: [clients] }]
      protocols: [{ tcp: { destinationPort: { number: 81 } } }]
---
apiVersion: netseg.dev/v1alpha1
kind: SegmentPolicy
metadata: { name: baseline-clients }
spec:
  tier: Baseline
  priority: 10
  subject: { segments: [clients] }
  egress:
    - name: deny-86
      action: Deny
      to: [{ namespaces: {} }]
      protocols: [{ tcp: { destinationPort: { number: 86 } } }]
---
apiVersion: netseg.dev/v1alpha1
kind: SegmentPolicy
metadata: { name: admin-pass }
spec:
  tier: Admin
  priority: 20
  subject: { segments: [servers] }
  ingress:
    - name: pass-82-83
      action: Pass
      from: [{ segments: [clients] }]
      protocols: [{ tcp: { destinationPort: { range: { start: 82, end: 83 } } } }]
---
apiVersion: netseg.dev/v1alpha1
kind: SegmentPolicy
metadata: { name: admin-late-deny }
spec:
  tier: Admin
  priority: 30
  subject: { segments: [servers] }
  ingress:
    - name: deny-82-83
      action: Deny
      from: [{ segments: [clients] }]
      protocols: [{ tcp: { destinationPort: { range: { start: 82, end: 83 } } } }]
"#;

/// At Admin priority 40 both kinds name 84 and 85 with opposite actions;
/// by name the SegmentPolicy would come first.
const TIE: &str = r#"
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: { name: zz-tie }
spec:
  tier: Admin
  priority: 40
  subject: { pods: { namespaceSelector: {}, podSelector: { matchLabels: { role: server } } } }
  ingress:
    - name: cnp-deny-84
      action: Deny
      from: [{ pods: { namespaceSelector: {}, podSelector: { matchLabels: { role: client } } } }]
      protocols: [{ tcp: { destinationPort: { number: 84 } } }]
    - name: cnp-accept-85
      action: Accept
      from: [{ pods: { namespaceSelector: {}, podSelector: { matchLabels: { role: client } } } }]
      protocols: [{ tcp: { destinationPort: { number: 85 } } }]
---
apiVersion: netseg.dev/v1alpha1
kind: SegmentPolicy
metadata: { name: aa-tie }
spec:
  tier: Admin
  priority: 40
  subject: { segments: [servers] }
  ingress:
    - name: seg-accept-84
      action: Accept
      from: [{ segments: [clients] }]
      protocols: [{ tcp: { destinationPort: { number: 84 } } }]
    - name: seg-deny-85
      action: Deny
      from: [{ segments: [clients] }]
      protocols: [{ tcp: { destinationPort: { number: 85 } } }]
"#;

const PASS_TRAIL: &str = r#"SegmentPolicy admin-pass ingress[0] "pass-82-83" (Pass)"#;

#[test]
fn segment_policies_take_their_place_among_network_and_cluster_network_policies() -> Result<()> {
    let mut w = World::start(
        "seg-bands",
        &[
            ("a", &[("role", "client")]),
            ("b", &[("role", "server")]),
            ("c", &[]),
        ],
        &[80, 81, 82, 83, 84, 85, 86],
        &[],
    )?;
    w.apply("bands", &format!("{BASE}---{SEGMENT_POLICIES}---{TIE}"))?;
    let (a, b, c) = (w.pod("a"), w.pod("b"), w.pod("c"));
    check(&[
        denied(a, b, Tcp(80)),
        allowed(a, b, Tcp(81)),
        allowed(a, b, Tcp(82)),
        denied(a, b, Tcp(83)),
        denied(a, b, Tcp(84)),
        allowed(a, b, Tcp(85)),
        denied(a, c, Tcp(86)),
        allowed(a, c, Tcp(85)),
    ])?;
    let cases: [(u16, &str, Fields); 7] = [
        (
            80,
            "deny",
            rule_fields(
                ("admin", "SegmentPolicy", "admin-deny"),
                r#"ingress[0] "deny-80""#,
                "Deny",
            ),
        ),
        (81, "allow", network_policy_fields("Accept")),
        (82, "allow", network_policy_fields("Accept")),
        (83, "deny", isolation_fields()),
        (
            84,
            "deny",
            rule_fields(
                ("admin", "ClusterNetworkPolicy", "zz-tie"),
                r#"ingress[0] "cnp-deny-84""#,
                "Deny",
            ),
        ),
        (
            85,
            "allow",
            rule_fields(
                ("admin", "ClusterNetworkPolicy", "zz-tie"),
                r#"ingress[1] "cnp-accept-85""#,
                "Accept",
            ),
        ),
        (
            86,
            "deny",
            rule_fields(
                ("baseline", "SegmentPolicy", "baseline-clients"),
                r#"egress[0] "deny-86""#,
                "Deny",
            ),
        ),
    ];
    for (port, verdict, mut fields) in cases {
        let (to, direction) = if port == 86 {
            (c, "egress")
        } else {
            (b, "ingress")
        };
        let passed_by = if (82..=83).contains(&port) {
            json!(PASS_TRAIL)
        } else {
            Value::Null
        };
        fields.push(("passed_by", passed_by));
        let record = w.record(a, to, Tcp(port), direction, verdict)?;
        assert_fields(&record, &fields);
    }
    Ok(())
}

/// The NetworkPolicy's only rule admits.
fn network_policy_fields(action: &str) -> Fields {
    vec![
        ("policy_band", json!("networkpolicy")),
        ("policy_kind", json!("NetworkPolicy")),
        ("policy_namespace", json!("app")),
        ("policy_name", json!("server-from-client")),
        ("policy_rule", json!("ingress[0]")),
        ("policy_action", json!(action)),
    ]
}

/// The NetworkPolicy isolates and none of its rules admits.
fn isolation_fields() -> Fields {
    vec![
        (
            "decided_by",
            json!("NetworkPolicy isolation in app (server-from-client)"),
        ),
        ("policy_band", json!("networkpolicy")),
        ("policy_kind", json!("NetworkPolicy")),
        ("policy_action", json!("Deny")),
    ]
}
