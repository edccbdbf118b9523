//! One endpoint cannot fill the conntrack table for others: it holds at
//! most its share, a full table refuses the newcomer and keeps what it
//! holds, and reclaimed entries return to their endpoint's share.

use std::collections::BTreeSet;

use netseg_contract::{USAGE_CONNTRACK, reason};

use super::packet::Frame;
use super::{Bench, DROP, LIMITS, PASS, bench, bench_sized};
use crate::datapath::{FlowEvents, Limits, remembered::monotonic_ns};

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

    fn conntrack_held(&self) -> u64 {
        self.datapath.remembered.held(1, USAGE_CONNTRACK)
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
