//! A rule that names a Segment that does not exist fails closed: a Deny or
//! Pass rule denies all traffic of its subjects in its direction, an
//! Accept rule matches nothing. Once the Segment exists, each rule means
//! what it says.

use anyhow::Result;

use super::traffic::{Traffic::*, allowed, check, denied};
use super::world::{World, assert_fields, posture_fields, rule_fields};

/// Pod a is in `clients` (open both ways), pod b in `servers` (closed to
/// ingress); every rule names the Segment `nowhere`.
const NAMING_NOWHERE: &str = r#"
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
metadata: { name: deny-unknown }
spec:
  tier: Admin
  priority: 10
  subject: { segments: [clients] }
  egress:
    - name: to-nowhere
      action: Deny
      to: [{ segments: [nowhere] }]
      protocols: [{ tcp: { destinationPort: { number: 80 } } }]
---
apiVersion: netseg.dev/v1alpha1
kind: SegmentPolicy
metadata: { name: unknown-for-servers }
spec:
  tier: Admin
  priority: 10
  subject: { segments: [servers] }
  ingress:
    - name: from-nowhere
      action: Accept
      from: [{ segments: [nowhere] }, { pods: { podSelector: {} } }]
  egress:
    - name: pass-nowhere
      action: Pass
      to: [{ segments: [nowhere] }]
"#;

/// The Segment the rules name, holding no pod.
const NOWHERE: &str = r#"
---
apiVersion: netseg.dev/v1alpha1
kind: Segment
metadata: { name: nowhere }
spec:
  members: [{ networks: ["203.0.113.0/24"] }]
"#;

#[test]
fn rules_naming_an_unknown_segment_fail_closed_until_it_exists() -> Result<()> {
    let mut w = World::start(
        "seg-unknown",
        &[
            ("a", &[("role", "client")]),
            ("b", &[("role", "server")]),
            ("c", &[]),
        ],
        &[80, 81],
        &[53],
    )?;
    // The daemon says which rules fail closed and what they become.
    w.apply_reporting(
        "policies",
        NAMING_NOWHERE,
        &[
            "SegmentPolicy deny-unknown: spec.egress[0].to[0].segments[0]: Segment \"nowhere\"",
            "SegmentPolicy unknown-for-servers: spec.egress[0].to[0].segments[0]: Segment \"nowhere\"",
            "SegmentPolicy unknown-for-servers: spec.ingress[0].from[0].segments[0]: Segment \"nowhere\"",
        ],
    )?;
    let (a, b, c) = (w.pod("a"), w.pod("b"), w.pod("c"));
    check(&[
        // Deny to `nowhere` on TCP 80: every egress of a, any peer, any protocol.
        denied(a, c, Tcp(81)),
        denied(a, c, Udp(53)),
        denied(a, c, Icmp).v6(),
        denied(a, b, Tcp(80)),
        // Its ingress is no subject of that rule.
        allowed(c, a, Tcp(80)),
        // Pass to `nowhere`: every egress of b denied.
        denied(b, c, Tcp(80)),
        denied(b, a, Udp(53)),
        // Accept from `nowhere` or any pod: matches nothing, so b's posture denies.
        denied(c, b, Tcp(80)),
    ])?;
    let denied_all = w.record(a, c, Tcp(81), "egress", "deny")?;
    assert_fields(
        &denied_all,
        &rule_fields(
            ("admin", "SegmentPolicy", "deny-unknown"),
            r#"egress[0] "to-nowhere""#,
            "Deny",
        ),
    );
    let passed_none = w.record(b, c, Tcp(80), "egress", "deny")?;
    assert_fields(
        &passed_none,
        &rule_fields(
            ("admin", "SegmentPolicy", "unknown-for-servers"),
            r#"egress[0] "pass-nowhere""#,
            "Deny",
        ),
    );
    let accepted_none = w.record(c, b, Tcp(80), "ingress", "deny")?;
    assert_fields(
        &accepted_none,
        &posture_fields("servers", "posture.ingress", "Deny"),
    );

    w.apply("policies", &format!("{NAMING_NOWHERE}{NOWHERE}"))?;
    let (a, b, c) = (w.pod("a"), w.pod("b"), w.pod("c"));
    check(&[
        allowed(a, c, Tcp(81)),
        allowed(a, b, Tcp(80)),
        allowed(b, c, Tcp(80)),
        allowed(c, b, Tcp(80)),
    ])?;
    let accepted = w.record(c, b, Tcp(80), "ingress", "allow")?;
    assert_fields(
        &accepted,
        &rule_fields(
            ("admin", "SegmentPolicy", "unknown-for-servers"),
            r#"ingress[0] "from-nowhere""#,
            "Accept",
        ),
    );
    Ok(())
}
