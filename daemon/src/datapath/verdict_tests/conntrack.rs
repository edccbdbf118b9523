//! Conntrack entries shared by hooks that run on several CPUs at once.
//!
//! A test run is one packet on one CPU, so the other CPU is played by
//! writing the entry the way its program would have left it.

use std::collections::{BTreeMap, BTreeSet};

use netseg_contract::{
    CONN_CLOSING, CONN_HALF_OPEN, CONN_OPEN, ConnKey, ConnValue, DIRECTION_EGRESS, traffic::Sent,
};

use super::packet::{ACK, FIN, Frame, SYN};
use super::{Bench, DROP, PASS, bench};
use crate::datapath::remembered::{ConnStates, monotonic_ns};
use crate::datapath::whole_map::read_in_chunks;

/// Far enough ahead that even a slow test run reads the clock before it.
const LATER_STAMP_NS: u64 = 1_000_000_000;
/// Longer ago than a closing connection lives (10 s).
const EXPIRED_STAMP_NS: u64 = 11_000_000_000;
/// Longer ago than a half-open connection lives (30 s).
const HALF_OPEN_EXPIRED_NS: u64 = 31_000_000_000;

impl Bench {
    /// The only tracked connection.
    fn only_connection(&self) -> (ConnKey, ConnValue) {
        let entries: Vec<(ConnKey, ConnValue)> = self
            .datapath
            .remembered
            .conntrack
            .iter()
            .collect::<Result<_, _>>()
            .expect("read conntrack");
        let [only] = entries[..] else {
            panic!("one tracked connection, found {}", entries.len());
        };
        only
    }

    /// Rewrites the state and last-seen stamp of the only tracked connection.
    fn restamp(&mut self, state: u32, last_seen_ns: u64) {
        let (key, mut value) = self.only_connection();
        value.state = state;
        value.last_seen_ns = last_seen_ns;
        let conntrack = &mut self.datapath.remembered.conntrack;
        conntrack.insert(key, value, 0).expect("write conntrack");
    }

    /// Another CPU classifies a packet of the connection after this CPU has
    /// read the clock: the entry carries a stamp later than this CPU's now.
    fn stamp_later(&mut self, state: u32) {
        self.restamp(state, monotonic_ns() + LATER_STAMP_NS);
    }
}

/// The close that showed it: the server's FIN passes the client's ingress
/// hook on one CPU while the client's ACK is classified at its egress hook on
/// the other, and the ACK's clock read precedes the FIN's stamp. The entry
/// must not look expired to the ACK, or every later segment of the close is
/// dropped as `no-connection` and the close hangs in retransmissions.
#[test]
fn crossing_fins_on_two_cpus_keep_the_connection() {
    let mut bench = bench();
    let out = |flags| Frame::tcp("10.0.0.1", 4000, "10.0.0.2", 80, flags);
    let back = |flags| Frame::tcp("10.0.0.2", 80, "10.0.0.1", 4000, flags);
    assert_eq!(bench.egress(&out(SYN)), PASS);
    assert_eq!(bench.ingress(&back(SYN | ACK)), PASS);
    bench.stamp_later(CONN_CLOSING);
    assert_eq!(bench.egress(&out(ACK)), PASS, "the ACK of the data");
    assert_eq!(bench.egress(&out(FIN | ACK)), PASS, "the client's FIN");
    assert_eq!(bench.ingress(&back(ACK)), PASS, "the last ACK");
}

/// The same race on an open connection: after a second of silence a packet
/// restamps the entry, and a packet crossing it on the other CPU must still
/// belong to the connection.
#[test]
fn an_open_connection_restamped_by_another_cpu_keeps_passing() {
    let mut bench = bench();
    assert_eq!(
        bench.egress(&Frame::tcp("10.0.0.1", 4000, "10.0.0.2", 80, SYN)),
        PASS
    );
    bench.stamp_later(CONN_OPEN);
    assert_eq!(
        bench.ingress(&Frame::tcp("10.0.0.2", 80, "10.0.0.1", 4000, SYN | ACK)),
        PASS
    );
    assert_eq!(
        bench.egress(&Frame::tcp("10.0.0.1", 4000, "10.0.0.2", 80, ACK)),
        PASS
    );
}

/// What the crossing stamps must not undo: a closed connection still
/// expires, and a segment after that opens nothing.
#[test]
fn a_closed_connection_expires_and_a_late_segment_is_denied() {
    let mut bench = bench();
    let out = |flags| Frame::tcp("10.0.0.1", 4000, "10.0.0.2", 80, flags);
    assert_eq!(bench.egress(&out(SYN)), PASS);
    assert_eq!(bench.egress(&out(FIN | ACK)), PASS);
    bench.restamp(CONN_CLOSING, monotonic_ns() - EXPIRED_STAMP_NS);
    assert_eq!(bench.egress(&out(ACK)), DROP);
    assert_eq!(
        bench.ingress(&Frame::tcp("10.0.0.2", 80, "10.0.0.1", 4000, ACK)),
        DROP
    );
}

/// A SYN nobody answered holds its entry 30 s, not the hours of an
/// established connection: the answer after that finds nothing, while an
/// answered connection as idle lives on.
#[test]
fn a_half_open_connection_expires_early_and_an_answered_one_does_not() {
    let mut bench = bench();
    let out = |flags| Frame::tcp("10.0.0.1", 4000, "10.0.0.2", 80, flags);
    let back = |flags| Frame::tcp("10.0.0.2", 80, "10.0.0.1", 4000, flags);
    assert_eq!(bench.egress(&out(SYN)), PASS);
    bench.restamp(CONN_HALF_OPEN, monotonic_ns() - HALF_OPEN_EXPIRED_NS);
    assert_eq!(bench.ingress(&back(SYN | ACK)), DROP, "the late answer");

    assert_eq!(
        bench.egress(&out(SYN)),
        PASS,
        "a retransmitted SYN opens again"
    );
    assert_eq!(bench.ingress(&back(SYN | ACK)), PASS);
    bench.restamp(CONN_OPEN, monotonic_ns() - HALF_OPEN_EXPIRED_NS);
    assert_eq!(bench.egress(&out(ACK)), PASS, "answered, idle for 31 s");
}

/// Each connection's entry counts the packets and IP bytes of each side:
/// what its first packet's sender sent, and what came back.
#[test]
fn the_entry_counts_packets_and_ip_bytes_of_each_side() {
    let mut bench = bench();
    let out = |flags| Frame::tcp("10.0.0.1", 4000, "10.0.0.2", 80, flags);
    let back = |flags| Frame::tcp("10.0.0.2", 80, "10.0.0.1", 4000, flags);
    let before = monotonic_ns();
    assert_eq!(bench.egress(&out(SYN)), PASS);
    assert_eq!(bench.ingress(&back(SYN | ACK)), PASS);
    assert_eq!(bench.egress(&out(ACK)), PASS);
    assert_eq!(bench.egress(&out(FIN | ACK)), PASS);
    // Denied packets are not the connection's traffic.
    assert_eq!(
        bench.ingress(&Frame::tcp("10.0.0.3", 80, "10.0.0.1", 4000, ACK)),
        DROP
    );
    let (_, value) = bench.only_connection();
    // An IPv4 header and a TCP header without options: 40 bytes a segment.
    let sent = value.traffic.map(|counter| Sent::between(0, counter));
    let sent = sent.map(|side| (side.packets, side.bytes));
    assert_eq!(sent, [(3, 120), (1, 40)]);
    assert!(value.opened_ns >= before && value.opened_ns <= value.last_seen_ns);
}

/// The sweep that reclaims expired entries counts the connections it
/// leaves, by state, and how full the table is (the metrics show both).
#[test]
fn the_sweep_counts_the_connections_it_leaves_by_state() {
    let mut bench = bench();
    let out = |port, flags| Frame::tcp("10.0.0.1", port, "10.0.0.2", 80, flags);
    let back = |port, flags| Frame::tcp("10.0.0.2", 80, "10.0.0.1", port, flags);
    assert_eq!(bench.egress(&out(4000, SYN)), PASS);
    assert_eq!(
        bench.ingress(&back(4000, SYN | ACK)),
        PASS,
        "answered: open"
    );
    assert_eq!(bench.egress(&out(4001, SYN)), PASS, "unanswered: half-open");
    assert_eq!(bench.egress(&out(4002, SYN)), PASS);
    assert_eq!(bench.ingress(&back(4002, SYN | ACK)), PASS);
    assert_eq!(bench.egress(&out(4002, FIN | ACK)), PASS, "closing");
    let live = BTreeSet::from([1]);
    let swept = bench
        .datapath
        .remembered
        .sweep(monotonic_ns(), &live)
        .expect("sweep");
    assert_eq!(
        swept.states,
        ConnStates {
            open: 1,
            half_open: 1,
            closing: 1
        }
    );
    let [conntrack, fragments] = swept.tables;
    assert_eq!(
        (conntrack.map, conntrack.entries, conntrack.capacity),
        ("conntrack", 3, 1024)
    );
    assert_eq!((fragments.map, fragments.entries), ("fragments", 0));
    assert!(fragments.capacity > 0);
}

/// The exporter and the sweep read the table whole, in batches: every entry
/// once, however the batches fall (a bucket larger than a batch included).
#[test]
fn a_whole_table_reading_has_every_entry_once() {
    let mut bench = bench();
    let conntrack = &mut bench.datapath.remembered.conntrack;
    let mut inserted = BTreeMap::new();
    for n in 0..1000u16 {
        let key = ConnKey {
            ifindex: 1,
            protocol: 6,
            _pad: [0; 3],
            pod_port: n,
            peer_port: 80,
            pod: [1; 16],
            peer: [2; 16],
        };
        let value = ConnValue {
            last_seen_ns: u64::from(n),
            revision: 1,
            rule: u32::from(n),
            state: CONN_OPEN,
            origin: DIRECTION_EGRESS,
            _pad: [0; 3],
            opened_ns: 0,
            traffic: [u64::from(n); 2],
        };
        conntrack.insert(key, value, 0).expect("room for 1000");
        inserted.insert(key, value);
    }
    for chunk in [1, 100, 4096] {
        let read = read_in_chunks(conntrack, chunk).expect("read whole");
        assert_eq!(read.len(), inserted.len(), "chunks of {chunk}");
        assert_eq!(read.into_iter().collect::<BTreeMap<_, _>>(), inserted);
    }
}
