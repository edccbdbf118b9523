//! Who is in a Segment: pods by labels, external addresses by CIDR (and
//! never a pod by its address), and membership that follows relabelling,
//! revoking the connections a pod's old conduit admitted.

use anyhow::Result;
use netseg_testbed::{Family, Outside, PROBE_TIMEOUT, TcpEchoServer, TcpSession};
use serde_json::{Value, json};

use super::traffic::{Traffic::*, allowed, check, denied};
use super::world::{Labels, World, assert_fields, posture_fields, rule_fields};

/// Pods labelled `zone: core` form Segment `core`, closed both ways; the
/// conduit admits TCP 80 between its members.
const CORE_SEGMENT: &str = r#"
apiVersion: netseg.dev/v1alpha1
kind: Segment
metadata: { name: core }
spec:
  description: "Pods labelled zone=core"
  members:
    - pods: { podSelector: { matchLabels: { zone: core } } }
  posture: { ingress: Deny, egress: Deny }
"#;

const CORE_CONDUIT: &str = r#"
apiVersion: netseg.dev/v1alpha1
kind: SegmentPolicy
metadata: { name: core-conduit }
spec:
  tier: Admin
  priority: 10
  subject: { segments: [core] }
  ingress:
    - name: core-in
      action: Accept
      from: [{ segments: [core] }]
      protocols: [{ tcp: { destinationPort: { number: 80 } } }]
  egress:
    - name: core-out
      action: Accept
      to: [{ segments: [core] }]
      protocols: [{ tcp: { destinationPort: { number: 80 } } }]
"#;

#[test]
fn members_by_label_talk_only_through_their_conduit_and_non_members_are_untouched() -> Result<()> {
    let core: Labels = &[("zone", "core")];
    let mut w = World::start(
        "seg-labels",
        &[("a", core), ("b", core), ("c", &[]), ("d", &[])],
        &[80, 81],
        &[80],
    )?;
    w.apply("core", &format!("{CORE_SEGMENT}---{CORE_CONDUIT}"))?;
    let (a, b, c, d) = (w.pod("a"), w.pod("b"), w.pod("c"), w.pod("d"));
    let mut expectations = vec![
        allowed(a, b, Tcp(80)),
        allowed(b, a, Tcp(80)),
        allowed(a, b, Tcp(80)).v6(),
        // Only what the conduit names, between members.
        denied(a, b, Tcp(81)),
        denied(a, b, Udp(80)),
        denied(a, b, Icmp),
        denied(a, b, Icmp).v6(),
        // Non-members reach each other as before, on every protocol.
        allowed(c, d, Tcp(81)),
        allowed(d, c, Udp(80)),
        allowed(c, d, Icmp),
    ];
    // Members and non-members: closed both ways, even on the conduit's port.
    for member in [a, b] {
        for other in [c, d] {
            expectations.push(denied(member, other, Tcp(80)));
            expectations.push(denied(other, member, Tcp(80)));
        }
    }
    expectations.push(denied(c, a, Udp(80)));
    expectations.push(denied(a, c, Icmp));
    check(&expectations)?;

    let admitted = w.record(a, b, Tcp(80), "ingress", "allow")?;
    assert_fields(
        &admitted,
        &rule_fields(
            ("admin", "SegmentPolicy", "core-conduit"),
            r#"ingress[0] "core-in""#,
            "Accept",
        ),
    );
    let closed_in = w.record(c, a, Tcp(80), "ingress", "deny")?;
    assert_fields(
        &closed_in,
        &posture_fields("core", "posture.ingress", "Deny"),
    );
    let closed_out = w.record(a, c, Tcp(80), "egress", "deny")?;
    assert_fields(
        &closed_out,
        &posture_fields("core", "posture.egress", "Deny"),
    );
    let untouched = w.record(c, d, Tcp(81), "egress", "allow")?;
    assert_fields(
        &untouched,
        &[
            ("decided_by", json!("default-allow")),
            ("policy_kind", Value::Null),
        ],
    );
    Ok(())
}

/// Segment `core` (pod a) is closed; Segment `beyond` holds the outside
/// host's networks and, to no effect on pods, the pods' own range.
fn beyond(pod_cidr: &str) -> String {
    format!(
        r#"
apiVersion: netseg.dev/v1alpha1
kind: Segment
metadata: {{ name: beyond }}
spec:
  members:
    - networks: ["198.51.100.0/24", "2001:db8::/32", "{pod_cidr}"]
"#
    )
}

const CORE_TO_BEYOND: &str = r#"
apiVersion: netseg.dev/v1alpha1
kind: SegmentPolicy
metadata: { name: core-to-beyond }
spec:
  tier: Admin
  priority: 10
  subject: { segments: [core] }
  egress:
    - name: to-beyond
      action: Accept
      to: [{ segments: [beyond] }]
"#;

#[test]
fn members_by_cidr_are_the_external_addresses_a_conduit_reaches() -> Result<()> {
    let mut w = World::start(
        "seg-cidr",
        &[("a", &[("zone", "core")]), ("c", &[])],
        &[80],
        &[],
    )?;
    let outside = Outside::attach(&w.node)?;
    let _outside_server = TcpEchoServer::start(&outside, 80)?;
    let segments = format!("{CORE_SEGMENT}---{}", beyond(&w.node.pod_cidr_v4()));
    w.apply("segments", &segments)?;
    let (a, c) = (w.pod("a"), w.pod("c"));
    check(&[
        denied(a, &outside, Tcp(80)),
        denied(a, &outside, Tcp(80)).v6(),
        // c's address lies in `beyond`'s networks: that makes no pod a member
        // (whose posture, Deny both ways, would shut c in).
        allowed(c, &outside, Tcp(80)),
        denied(&outside, a, Tcp(80)),
    ])?;
    let closed = w.record(a, &outside, Tcp(80), "egress", "deny")?;
    assert_fields(&closed, &posture_fields("core", "posture.egress", "Deny"));

    w.apply("core-to-beyond", CORE_TO_BEYOND)?;
    let (a, c) = (w.pod("a"), w.pod("c"));
    check(&[
        allowed(a, &outside, Tcp(80)),
        allowed(a, &outside, Tcp(80)).v6(),
        allowed(a, &outside, Icmp),
        // A pod inside `beyond`'s networks is still no member of it.
        denied(a, c, Tcp(80)),
        // The conduit opens egress only.
        denied(&outside, a, Tcp(80)),
    ])?;
    let through = w.record(a, &outside, Tcp(80), "egress", "allow")?;
    assert_fields(
        &through,
        &rule_fields(
            ("admin", "SegmentPolicy", "core-to-beyond"),
            r#"egress[0] "to-beyond""#,
            "Accept",
        ),
    );
    let still_closed = w.record(a, c, Tcp(80), "egress", "deny")?;
    assert_fields(
        &still_closed,
        &posture_fields("core", "posture.egress", "Deny"),
    );
    Ok(())
}

/// Segment `name` holds the pods labelled `seg: name`, with no posture set
/// (so Deny both ways), and a conduit for TCP 80 among its members.
fn closed_zone(name: &str) -> String {
    format!(
        r#"
apiVersion: netseg.dev/v1alpha1
kind: Segment
metadata: {{ name: {name} }}
spec:
  members:
    - pods: {{ podSelector: {{ matchLabels: {{ seg: {name} }} }} }}
---
apiVersion: netseg.dev/v1alpha1
kind: SegmentPolicy
metadata: {{ name: {name}-conduit }}
spec:
  tier: Admin
  priority: 10
  subject: {{ segments: [{name}] }}
  ingress:
    - name: {name}-in
      action: Accept
      from: [{{ segments: [{name}] }}]
      protocols: [{{ tcp: {{ destinationPort: {{ number: 80 }} }} }}]
  egress:
    - name: {name}-out
      action: Accept
      to: [{{ segments: [{name}] }}]
      protocols: [{{ tcp: {{ destinationPort: {{ number: 80 }} }} }}]
"#
    )
}

#[test]
fn relabelling_moves_a_pod_between_segments_and_cuts_what_its_old_conduit_admitted() -> Result<()> {
    let (blue, red): (Labels, Labels) = (&[("seg", "blue")], &[("seg", "red")]);
    let mut w = World::start(
        "seg-relabel",
        &[("a", blue), ("b", blue), ("c", red)],
        &[80],
        &[],
    )?;
    w.apply(
        "zones",
        &format!("{}---{}", closed_zone("blue"), closed_zone("red")),
    )?;
    let mut session = {
        let (a, b, c) = (w.pod("a"), w.pod("b"), w.pod("c"));
        check(&[allowed(a, b, Tcp(80)), denied(a, c, Tcp(80))])?;
        TcpSession::open(a, b.ip(Family::V4), 80, PROBE_TIMEOUT)?
    };
    let port = session.local_addr()?.port();

    w.relabel("a", red)?;
    assert!(
        !session.exchange(PROBE_TIMEOUT),
        "a left blue: its connection to b, admitted by blue's conduit, is cut"
    );
    let revoked = w.daemon.wait_for_flow(
        |f| f["reason"] == "revoked" && f["src_port"] == port,
        std::time::Duration::from_secs(5),
    )?;
    assert_fields(&revoked, &[("verdict", json!("deny"))]);
    let (a, b, c) = (w.pod("a"), w.pod("b"), w.pod("c"));
    check(&[
        denied(a, b, Tcp(80)),
        allowed(a, c, Tcp(80)),
        allowed(c, a, Tcp(80)),
    ])?;
    let joined = w.record(a, c, Tcp(80), "ingress", "allow")?;
    assert_fields(
        &joined,
        &rule_fields(
            ("admin", "SegmentPolicy", "red-conduit"),
            r#"ingress[0] "red-in""#,
            "Accept",
        ),
    );
    let left = w.record(a, b, Tcp(80), "egress", "deny")?;
    assert_fields(&left, &posture_fields("red", "posture.egress", "Deny"));
    Ok(())
}
