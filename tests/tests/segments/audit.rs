//! Audit mode: an Audit SegmentPolicy never changes what is enforced, and
//! the record of each new connection, a single datagram included, says
//! where its verdict would differ and which of its rules would decide.

use anyhow::Result;
use serde_json::{Value, json};

use super::traffic::{Traffic, Traffic::*, allowed, check, denied};
use super::world::{Fields, World, assert_fields, posture_fields, rule_fields};

/// b's Segment is closed to ingress; the enforced conduit admits a on TCP
/// 80 and UDP 53. The audit policy, ahead of it, would deny those and
/// would accept TCP 81 and UDP 54.
const AUDITED: &str = r#"
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
  posture: { ingress: Deny, egress: Accept }
---
apiVersion: netseg.dev/v1alpha1
kind: SegmentPolicy
metadata: { name: conduit }
spec:
  tier: Admin
  priority: 20
  subject: { segments: [servers] }
  ingress:
    - name: from-clients
      action: Accept
      from: [{ segments: [clients] }]
      protocols:
        - tcp: { destinationPort: { number: 80 } }
        - udp: { destinationPort: { number: 53 } }
---
apiVersion: netseg.dev/v1alpha1
kind: SegmentPolicy
metadata: { name: preview }
spec:
  tier: Admin
  priority: 10
  mode: Audit
  subject: { segments: [servers] }
  ingress:
    - name: would-deny
      action: Deny
      from: [{ segments: [clients] }]
      protocols:
        - tcp: { destinationPort: { number: 80 } }
        - udp: { destinationPort: { number: 53 } }
    - name: would-allow
      action: Accept
      from: [{ segments: [clients] }]
      protocols:
        - tcp: { destinationPort: { number: 81 } }
        - udp: { destinationPort: { number: 54 } }
"#;

const WOULD_DENY: &str = r#"SegmentPolicy preview ingress[0] "would-deny" (Deny)"#;
const WOULD_ALLOW: &str = r#"SegmentPolicy preview ingress[1] "would-allow" (Accept)"#;

#[test]
fn an_audit_policy_changes_no_verdict_and_records_where_it_would() -> Result<()> {
    let mut w = World::start(
        "seg-audit",
        &[("a", &[("role", "client")]), ("b", &[("role", "server")])],
        &[80, 81, 82],
        &[53, 54],
    )?;
    w.apply("audited", AUDITED)?;
    let (a, b) = (w.pod("a"), w.pod("b"));
    check(&[
        allowed(a, b, Tcp(80)),
        allowed(a, b, Udp(53)),
        denied(a, b, Tcp(81)),
        denied(a, b, Udp(54)),
        denied(a, b, Tcp(82)),
    ])?;
    let conduit = rule_fields(
        ("admin", "SegmentPolicy", "conduit"),
        r#"ingress[0] "from-clients""#,
        "Accept",
    );
    let closed = posture_fields("servers", "posture.ingress", "Deny");
    let cases: [(Traffic, &str, &Fields, Value, Value); 5] = [
        (
            Tcp(80),
            "allow",
            &conduit,
            json!("audit-would-deny"),
            json!(WOULD_DENY),
        ),
        (
            Udp(53),
            "allow",
            &conduit,
            json!("audit-would-deny"),
            json!(WOULD_DENY),
        ),
        (
            Tcp(81),
            "deny",
            &closed,
            json!("audit-would-allow"),
            json!(WOULD_ALLOW),
        ),
        (
            Udp(54),
            "deny",
            &closed,
            json!("audit-would-allow"),
            json!(WOULD_ALLOW),
        ),
        // Where the audit policy says nothing, the record says nothing of it.
        (Tcp(82), "deny", &closed, Value::Null, Value::Null),
    ];
    for (traffic, verdict, decided, audit, audit_by) in cases {
        let record = w.record(a, b, traffic, "ingress", verdict)?;
        let mut fields = decided.clone();
        fields.extend([("audit", audit), ("audit_by", audit_by)]);
        assert_fields(&record, &fields);
    }
    // At a's egress, which the audit policy does not cover, nothing differs.
    let sent = w.record(a, b, Udp(53), "egress", "allow")?;
    assert_fields(&sent, &[("audit", Value::Null), ("audit_by", Value::Null)]);
    Ok(())
}
