//! Fragment state: keyed alike for first and later fragments, aged, judged
//! by the policy in force, and bounded per endpoint.

use netseg_contract::{POLICY_DENY_ALL, reason};

use super::packet::{DESTINATION_OPTIONS, FRAGMENT_HEADER, Fragment, Frame, UDP};
use super::{Bench, DROP, EGRESS_POLICY, LIMITS, PASS, bench, policy};
use crate::datapath::remembered::monotonic_ns;

/// Longer ago than a fragment entry admits anything (5 s).
const EXPIRED_NS: u64 = 6_000_000_000;

fn part(frame: Frame, id: u16, offset: u16, more: bool) -> Frame {
    frame.fragmented(Fragment { id, offset, more })
}

/// A DNS query to the allowed peer, over IPv4.
fn dns(id: u16, offset: u16, more: bool) -> Frame {
    part(
        Frame::udp("10.0.0.1", 4000, "10.0.0.2", 53),
        id,
        offset,
        more,
    )
}

impl Bench {
    /// Stamps every fragment entry as first seen long ago.
    fn age_fragments(&mut self) {
        let fragments = &mut self.datapath.remembered.fragments;
        let entries: Vec<_> = fragments
            .iter()
            .map(|e| e.expect("read fragments"))
            .collect();
        for (key, mut value) in entries {
            value.first_seen_ns = monotonic_ns() - EXPIRED_NS;
            fragments.insert(key, value, 0).expect("write fragments");
        }
    }
}

/// RFC 8200 allows a Destination Options header after the Fragment header;
/// only the first fragment carries it, so a key by the transport protocol
/// found past it would never match the later fragments.
#[test]
fn ipv6_fragments_with_destination_options_after_the_fragment_header_pass() {
    let mut bench = bench();
    let fragment = |offset, more| {
        part(
            Frame::udp("fd00::1", 4000, "fd00::2", 53)
                .with_extension(FRAGMENT_HEADER)
                .with_extension(DESTINATION_OPTIONS),
            7,
            offset,
            more,
        )
    };
    assert_eq!(bench.egress(&fragment(0, true)), PASS);
    assert_eq!(bench.egress(&fragment(4, true)), PASS);
    assert_eq!(bench.egress(&fragment(8, false)), PASS);
}

#[test]
fn a_later_fragment_is_judged_by_the_policy_in_force() {
    let mut bench = bench();
    assert_eq!(bench.egress(&dns(20, 0, true)), PASS);
    assert_eq!(bench.egress(&dns(20, 4, true)), PASS);
    let mut revoked = policy();
    revoked
        .policy
        .retain(|key, _| key.protocol != Some(UDP) || key.policy != EGRESS_POLICY);
    bench.publisher.publish(&revoked).expect("publish");
    assert_eq!(bench.egress(&dns(20, 8, false)), DROP);
    assert_eq!(bench.counter(reason::REVOKED), 1);
    // A change that still allows the datagram's connection lets it finish.
    let mut bench = super::bench();
    assert_eq!(bench.egress(&dns(21, 0, true)), PASS);
    let mut unrelated = policy();
    unrelated
        .endpoints
        .values_mut()
        .for_each(|e| e.ingress_policy = POLICY_DENY_ALL);
    bench.publisher.publish(&unrelated).expect("publish");
    assert_eq!(bench.egress(&dns(21, 4, false)), PASS);
}

#[test]
fn a_fragment_entry_admits_nothing_after_a_few_seconds() {
    let mut bench = bench();
    assert_eq!(bench.egress(&dns(30, 0, true)), PASS);
    bench.age_fragments();
    assert_eq!(bench.egress(&dns(30, 4, false)), DROP);
    assert_eq!(bench.counter(reason::FRAGMENT_UNKNOWN), 1);
}

#[test]
fn an_endpoint_holds_at_most_its_share_of_datagrams_in_flight() {
    let mut bench = bench();
    for id in 0..LIMITS.fragments_per_endpoint as u16 {
        assert_eq!(bench.egress(&dns(40 + id, 0, true)), PASS, "datagram {id}");
    }
    assert_eq!(bench.egress(&dns(99, 0, true)), DROP, "one over the share");
    assert_eq!(bench.counter(reason::FRAGMENTS_FULL), 1);
    assert_eq!(
        bench.egress(&dns(40, 4, false)),
        PASS,
        "those in flight finish"
    );
}
