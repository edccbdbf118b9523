//! One endpoint cannot fill the conntrack table for others: it holds at
//! most its share, a full table refuses the newcomer and keeps what it
//! holds, and reclaimed entries return to their endpoint's share.

use std::collections::BTreeSet;

use netseg_contract::{DIRECTION_EGRESS, DIRECTION_INGRESS, USAGE_CONNTRACK, reason};

use super::packet::{ACK, FIN, Frame, SYN};
use super::{Bench, DROP, LIMITS, PASS, bench, bench_sized};
use crate::datapath::{
    FlowEvents, Limits,
    remembered::{Owner, monotonic_ns},
};

/// Longer than any connection lives idle but TCP's (60 s for UDP).
const LONG_AGO_NS: u64 = 61_000_000_000;

fn to_dns(port: u16) -> Frame {
    Frame::udp("10.0.0.1", port, "10.0.0.2", 53)
}

impl Bench {
    fn fill(&mut self, connections: u32) {
        for port in 0..connections {
            assert_eq!(
                self.egress(&to_dns(5000 + port as u16)),
                PASS,
                "flow {port}"
            );
        }
    }

    /// What the endpoint holds of conntrack for the connections it opened.
    fn conntrack_held(&self) -> u64 {
        self.conntrack_held_from(DIRECTION_EGRESS)
    }

    fn conntrack_held_from(&self, origin: u8) -> u64 {
        let owner = Owner { ifindex: 1, origin };
        self.datapath.remembered.held(owner, USAGE_CONNTRACK)
    }

    /// Stamps every tracked connection as last seen long ago.
    fn age_all(&mut self) {
        let conntrack = &mut self.datapath.remembered.conntrack;
        let entries: Vec<_> = conntrack
            .iter()
            .map(|e| e.expect("read conntrack"))
            .collect();
        for (key, mut value) in entries {
            value.last_seen_ns = monotonic_ns() - LONG_AGO_NS;
            conntrack.insert(key, value, 0).expect("write conntrack");
        }
    }
}

#[test]
fn an_endpoint_holds_at_most_its_share_and_is_told_why() {
    let mut bench = bench();
    bench.fill(LIMITS.conntrack_per_endpoint);
    assert_eq!(bench.conntrack_held(), 16);
    assert_eq!(bench.egress(&to_dns(6000)), DROP, "one over the share");
    assert_eq!(bench.counter(reason::CONNTRACK_FULL), 1);
    assert_eq!(
        bench.ingress(&Frame::udp("10.0.0.2", 53, "10.0.0.1", 5000)),
        PASS,
        "what it holds keeps working"
    );
}

#[test]
fn a_full_table_refuses_the_newcomer_and_keeps_what_it_holds() {
    let roomy = Limits {
        conntrack_per_endpoint: 100,
        ..LIMITS
    };
    let mut bench = bench_sized(FlowEvents::All, 8, roomy);
    bench.fill(8);
    assert_eq!(bench.egress(&to_dns(6000)), DROP, "no room in the table");
    assert_eq!(bench.counter(reason::CONNTRACK_FULL), 1);
    for port in 5000..5008 {
        assert_eq!(
            bench.ingress(&Frame::udp("10.0.0.2", 53, "10.0.0.1", port)),
            PASS,
            "the reply of flow {port}"
        );
    }
}

#[test]
fn the_sweep_reclaims_expired_entries_and_returns_the_share() {
    let mut bench = bench();
    bench.fill(LIMITS.conntrack_per_endpoint);
    bench.age_all();
    let live = BTreeSet::from([1]);
    let swept = bench
        .datapath
        .remembered
        .sweep(monotonic_ns(), &live)
        .expect("sweep");
    assert_eq!(swept.connections, 16);
    assert_eq!(bench.conntrack_held(), 0, "each delete uncounted once");
    // A second sweep, and the programs meeting the same entries, reclaim nothing more.
    let again = bench.datapath.remembered.sweep(monotonic_ns(), &live);
    assert_eq!(again.expect("sweep").connections, 0);
    bench.fill(LIMITS.conntrack_per_endpoint);
    assert_eq!(bench.conntrack_held(), 16);
}

#[test]
fn entries_of_an_interface_that_is_gone_hold_no_share() {
    let mut bench = bench();
    bench.fill(LIMITS.conntrack_per_endpoint);
    // No interface is attached: ifindex 1 is gone as far as the sweep knows.
    let swept = bench.datapath.sweep().expect("sweep");
    assert_eq!(swept.connections, 16);
    assert_eq!(bench.conntrack_held(), 0);
    bench.fill(LIMITS.conntrack_per_endpoint);
}

#[test]
fn the_programs_reclaim_the_expired_entries_they_meet() {
    let mut bench = bench();
    bench.fill(LIMITS.conntrack_per_endpoint);
    bench.age_all();
    // Each flow's next packet meets its expired entry, deletes and uncounts
    // it, and opens the flow again in the freed room.
    bench.fill(LIMITS.conntrack_per_endpoint);
    assert_eq!(bench.conntrack_held(), 16);
}

/// A peer the policy lets reach the endpoint opens connections toward it:
/// they count against the endpoint's inbound share only, so the endpoint
/// still opens its own.
#[test]
fn connections_opened_toward_an_endpoint_leave_its_own_share() {
    let mut bench = bench();
    for port in 0..LIMITS.conntrack_per_endpoint as u16 {
        let syn = Frame::tcp("10.0.0.2", 5000 + port, "10.0.0.1", 8000, SYN);
        assert_eq!(bench.ingress(&syn), PASS, "inbound connection {port}");
    }
    let one_more = Frame::tcp("10.0.0.2", 6000, "10.0.0.1", 8000, SYN);
    assert_eq!(bench.ingress(&one_more), DROP, "the inbound share is full");
    assert_eq!(
        bench.egress(&to_dns(7000)),
        PASS,
        "its own connection opens"
    );
    assert_eq!(bench.conntrack_held_from(DIRECTION_INGRESS), 16);
    assert_eq!(bench.conntrack_held(), 1);
    bench.fill(LIMITS.conntrack_per_endpoint - 1);
    assert_eq!(bench.egress(&to_dns(6000)), DROP, "one over its own share");
    assert_eq!(bench.counter(reason::CONNTRACK_FULL), 2);
}

/// A packet and its reply share one entry, so a closed connection's tuple
/// can be reused the other way (the peer's SYN to the port the pod just
/// closed from): the new connection takes the entry, and the room moves
/// from the share of the closed one's opener to the new opener's.
#[test]
fn a_closed_connection_reused_the_other_way_moves_to_its_new_openers_share() {
    let mut bench = bench();
    let out = |flags| Frame::tcp("10.0.0.1", 8000, "10.0.0.2", 80, flags);
    let back = |flags| Frame::tcp("10.0.0.2", 80, "10.0.0.1", 8000, flags);
    assert_eq!(bench.egress(&out(SYN)), PASS, "the pod opens");
    assert_eq!(bench.egress(&out(FIN | ACK)), PASS, "and closes");
    assert_eq!(
        (
            bench.conntrack_held_from(DIRECTION_EGRESS),
            bench.conntrack_held_from(DIRECTION_INGRESS)
        ),
        (1, 0)
    );
    assert_eq!(
        bench.ingress(&back(SYN)),
        PASS,
        "the peer opens the reverse"
    );
    assert_eq!(
        (
            bench.conntrack_held_from(DIRECTION_EGRESS),
            bench.conntrack_held_from(DIRECTION_INGRESS)
        ),
        (0, 1),
        "the room moved with the entry"
    );
    assert_eq!(bench.egress(&out(SYN | ACK)), PASS, "the pod answers it");
    assert_eq!(bench.counter(reason::NEW_ALLOWED), 2);
    // The pod's whole share is its own again.
    bench.fill(LIMITS.conntrack_per_endpoint);
    assert_eq!(
        bench.conntrack_held(),
        u64::from(LIMITS.conntrack_per_endpoint)
    );
}
