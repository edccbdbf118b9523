//! Conntrack entries shared by hooks that run on several CPUs at once.
//!
//! A test run is one packet on one CPU, so the other CPU is played by
//! writing the entry the way its program would have left it.

use aya::maps::HashMap;
use netseg_contract::{CONN_CLOSING, CONN_OPEN, ConnKey, ConnValue};

use super::packet::{ACK, FIN, Frame, SYN};
use super::{Bench, DROP, PASS, bench};

/// Far enough ahead that even a slow test run reads the clock before it.
const LATER_STAMP_NS: u64 = 1_000_000_000;
/// Longer ago than a closing connection lives (10 s).
const EXPIRED_STAMP_NS: u64 = 11_000_000_000;

/// CLOCK_MONOTONIC, the clock of `bpf_ktime_get_ns`.
fn monotonic_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes only the timespec it is given.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_MONOTONIC)");
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

impl Bench {
    /// Rewrites the state and last-seen stamp of the only tracked connection.
    fn restamp(&mut self, state: u32, last_seen_ns: u64) {
        let map = self
            .datapath
            .ebpf
            .map_mut("CONNTRACK")
            .expect("the conntrack map");
        let mut conntrack: HashMap<_, ConnKey, ConnValue> =
            HashMap::try_from(map).expect("conntrack is a hash map");
        let entries: Vec<(ConnKey, ConnValue)> = conntrack
            .iter()
            .collect::<Result<_, _>>()
            .expect("read conntrack");
        let [(key, mut value)] = entries[..] else {
            panic!("one tracked connection, found {}", entries.len());
        };
        value.state = state;
        value.last_seen_ns = last_seen_ns;
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
