//! Segment posture: per direction, for members only, below every policy;
//! a pod in several Segments is denied a direction if any of them denies
//! it, and the record names the first denying Segment by name.

use anyhow::Result;

use super::traffic::{Traffic::*, allowed, check, denied};
use super::world::{World, assert_fields, posture_fields};

/// `inbound-closed` (pod a) admits nothing and sends anything. Pod d is in
/// `a-open` (open both ways) and `b-closed` (ingress open, egress unset and
/// so closed): `a-open` comes first by name, but `b-closed` denies egress.
const POSTURES: &str = r#"
apiVersion: netseg.dev/v1alpha1
kind: Segment
metadata: { name: inbound-closed }
spec:
  members: [{ pods: { podSelector: { matchLabels: { inbound: closed } } } }]
  posture: { ingress: Deny, egress: Accept }
---
apiVersion: netseg.dev/v1alpha1
kind: Segment
metadata: { name: a-open }
spec:
  members: [{ pods: { podSelector: { matchLabels: { multi: "yes" } } } }]
  posture: { ingress: Accept, egress: Accept }
---
apiVersion: netseg.dev/v1alpha1
kind: Segment
metadata: { name: b-closed }
spec:
  members: [{ pods: { podSelector: { matchLabels: { multi: "yes" } } } }]
  posture: { ingress: Accept }
"#;

#[test]
fn posture_applies_per_direction_and_any_denying_segment_of_a_pod_denies() -> Result<()> {
    let mut w = World::start(
        "seg-posture",
        &[
            ("a", &[("inbound", "closed")]),
            ("c", &[]),
            ("d", &[("multi", "yes")]),
        ],
        &[80],
        &[53],
    )?;
    w.apply("postures", POSTURES)?;
    let (a, c, d) = (w.pod("a"), w.pod("c"), w.pod("d"));
    check(&[
        allowed(a, c, Tcp(80)),
        allowed(a, c, Udp(53)),
        denied(c, a, Tcp(80)),
        denied(c, a, Udp(53)),
        denied(c, a, Icmp).v6(),
        denied(d, c, Tcp(80)),
        denied(d, c, Icmp),
        allowed(c, d, Tcp(80)),
        // Both ends decide: a may send, d may receive.
        allowed(a, d, Tcp(80)),
        // d may not send, a may not receive.
        denied(d, a, Tcp(80)),
    ])?;
    let sent = w.record(a, c, Tcp(80), "egress", "allow")?;
    assert_fields(
        &sent,
        &posture_fields("inbound-closed", "posture.egress", "Accept"),
    );
    let refused = w.record(c, a, Tcp(80), "ingress", "deny")?;
    assert_fields(
        &refused,
        &posture_fields("inbound-closed", "posture.ingress", "Deny"),
    );
    let held_in = w.record(d, c, Tcp(80), "egress", "deny")?;
    assert_fields(
        &held_in,
        &posture_fields("b-closed", "posture.egress", "Deny"),
    );
    let admitted = w.record(c, d, Tcp(80), "ingress", "allow")?;
    assert_fields(
        &admitted,
        &posture_fields("a-open", "posture.ingress", "Accept"),
    );
    Ok(())
}
