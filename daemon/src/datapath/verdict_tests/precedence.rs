//! The compiler resolves precedence into POLICY values; the datapath reads
//! them back in two lookups: the peer's identity first (a deny there
//! stands, whatever any peer's entry says), then any peer, and within one
//! the longest prefix. Denials and revocations name the verdict that denied.

use netseg_contract::{identity, reason};
use packet::{Frame, SYN, TCP};

use super::{DROP, EGRESS_POLICY, PASS, allow, bench, deny, entry, packet, policy};

/// Identity 16 (10.0.0.2) is denied TCP 8080 by verdict 200 and everything
/// else of TCP by verdict 201; any other peer is allowed TCP by verdict 202.
fn layered() -> super::SlotState {
    let mut state = policy();
    state.policy.extend([
        (
            entry(EGRESS_POLICY, 16, Some(TCP), Some((8080, 16))),
            deny(200),
        ),
        (
            entry(EGRESS_POLICY, 16, Some(TCP), Some((80, 16))),
            allow(100),
        ),
        (entry(EGRESS_POLICY, 16, Some(TCP), None), deny(201)),
        (
            entry(EGRESS_POLICY, identity::ANY, Some(TCP), None),
            allow(202),
        ),
    ]);
    state
}

#[test]
fn a_deny_for_the_peer_stands_over_an_allow_for_any_peer_and_names_its_verdict() {
    let mut bench = bench();
    bench.publisher.publish(&layered()).expect("publish");
    bench.flow_events();
    let to = |peer: &str, port: u16| Frame::tcp("10.0.0.1", 4000 + port, peer, port, SYN);
    assert_eq!(
        bench.egress(&to("10.0.0.2", 80)),
        PASS,
        "the longest prefix allows"
    );
    assert_eq!(bench.egress(&to("10.0.0.2", 8080)), DROP);
    assert_eq!(
        bench.egress(&to("10.0.0.2", 443)),
        DROP,
        "the peer's protocol entry"
    );
    assert_eq!(bench.egress(&to("10.0.0.9", 443)), PASS, "any other peer");
    let decided: Vec<(u8, u32)> = bench
        .flow_events()
        .iter()
        .map(|event| (event.reason, event.rule))
        .collect();
    assert_eq!(
        decided,
        [
            (reason::NEW_ALLOWED, 100),
            (reason::POLICY_DENIED, 200),
            (reason::POLICY_DENIED, 201),
            (reason::NEW_ALLOWED, 202),
        ]
    );
}

#[test]
fn a_revoked_connection_names_the_verdict_that_now_denies_it() {
    let mut bench = bench();
    let syn = Frame::tcp("10.0.0.1", 4000, "10.0.0.2", 443, SYN);
    let mut open = policy();
    open.policy
        .insert(entry(EGRESS_POLICY, 16, Some(TCP), None), allow(150));
    bench.publisher.publish(&open).expect("publish");
    assert_eq!(bench.egress(&syn), PASS);
    bench.publisher.publish(&layered()).expect("publish");
    bench.flow_events();
    let next = Frame::tcp("10.0.0.1", 4000, "10.0.0.2", 443, packet::ACK);
    assert_eq!(bench.egress(&next), DROP);
    let revoked: Vec<(u8, u32)> = bench
        .flow_events()
        .iter()
        .map(|event| (event.reason, event.rule))
        .collect();
    assert_eq!(revoked, [(reason::REVOKED, 201)]);
}
