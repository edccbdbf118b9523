//! A connection's records, from scripted readings of the conntrack table:
//! when they come, what they count, and whom they name.

use std::time::{Duration, SystemTime};

use netseg_contract::{CONN_CLOSING, CONN_OPEN, ConnKey, ConnValue, FlowEvent};

use super::{Connections, Reading, connection_of};
use crate::flows::{
    FlowContext, FlowRecord, FlowWriter, RecordKind, end_reason,
    tests::{allowed, context},
};
use crate::metrics::Metrics;

const SECOND: u64 = 1_000_000_000;
const UPDATE_EVERY: Duration = Duration::from_secs(60);

/// The entry of a connection opened at `opened_ns`, last seen at
/// `last_seen_ns`, that carried `packets` and `bytes` (source, destination),
/// opened toward the endpoint as [`allowed`]'s was.
fn entry(
    opened_ns: u64,
    last_seen_ns: u64,
    state: u32,
    packets: [u64; 2],
    bytes: [u64; 2],
) -> ConnValue {
    ConnValue {
        last_seen_ns,
        revision: 3,
        rule: 16,
        state,
        origin: allowed().direction,
        _pad: [0; 3],
        opened_ns,
        traffic: [0, 1].map(|side| netseg_contract::traffic::counted(packets[side], bytes[side])),
    }
}

/// Scans the connections tracks, writing what they report.
struct Scanner {
    connections: Connections,
    metrics: Metrics,
    out: Vec<u8>,
}

impl Scanner {
    fn new() -> Self {
        Self {
            connections: Connections::new(UPDATE_EVERY, 0),
            metrics: Metrics::new(),
            out: Vec::new(),
        }
    }

    /// The records `open`'s event writes beside its own.
    fn open(&mut self, open: &FlowEvent, context: &FlowContext) -> Vec<FlowRecord> {
        self.write(|connections, writer| connections.opened(open, context, writer))
    }

    /// The records one reading of `table` at `now` writes.
    fn scan(
        &mut self,
        table: &[(ConnKey, ConnValue)],
        now: u64,
        context: &FlowContext,
    ) -> Vec<FlowRecord> {
        let reading = Reading {
            taken_ns: now,
            entries: table.to_vec(),
        };
        self.write(|connections, writer| connections.scan(reading, context, writer))
    }

    fn write(
        &mut self,
        what: impl FnOnce(&mut Connections, &mut FlowWriter<&mut Vec<u8>>) -> std::io::Result<()>,
    ) -> Vec<FlowRecord> {
        self.out.clear();
        let boot = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut writer = FlowWriter::new(&mut self.out, boot, Some("node-1"), &self.metrics);
        what(&mut self.connections, &mut writer).expect("writing to a Vec");
        writer.flush().expect("flushing a Vec");
        drop(writer);
        String::from_utf8(self.out.clone())
            .expect("JSON is UTF-8")
            .lines()
            .map(crate::flows::tests::read_back)
            .collect()
    }
}

/// The one record of `kind` that `records` must be.
fn only(records: Vec<FlowRecord>, kind: RecordKind) -> FlowRecord {
    assert!(
        records.len() == 1 && records[0].kind == kind,
        "one {kind:?} record, got {records:?}"
    );
    records.into_iter().next().expect("one record")
}

fn traffic(record: &FlowRecord) -> [Option<u64>; 4] {
    [
        record.src_packets,
        record.src_bytes,
        record.dst_packets,
        record.dst_bytes,
    ]
}

#[test]
fn a_connection_is_updated_every_interval_and_ends_once_closed_and_quiet() {
    let context = context();
    let open = allowed();
    let t0 = open.timestamp_ns;
    let key = connection_of(&open);
    let mut scanner = Scanner::new();
    scanner.open(&open, &context);

    let young = entry(t0, t0 + SECOND, CONN_OPEN, [3, 2], [180, 2_000]);
    assert_eq!(scanner.scan(&[(key, young)], t0 + 2 * SECOND, &context), []);

    let a_minute = entry(t0, t0 + 59 * SECOND, CONN_OPEN, [30, 20], [1_800, 20_000]);
    let update = only(
        scanner.scan(&[(key, a_minute)], t0 + 60 * SECOND, &context),
        RecordKind::Update,
    );
    assert_eq!(update.kind, RecordKind::Update);
    assert_eq!(update.reason, "established");
    assert_eq!(
        traffic(&update),
        [Some(30), Some(1_800), Some(20), Some(20_000)]
    );
    assert_eq!(update.duration_ms, Some(60_000));
    assert_eq!(update.start.as_deref(), Some("2023-11-15T22:15:23.456Z"));
    assert_eq!(update.time, "2023-11-15T22:16:23.456Z");

    // A FIN was seen, but a half-closed connection may still carry data:
    // it ends once a whole scan interval went by without a packet.
    let fin = entry(
        t0,
        t0 + 70 * SECOND,
        CONN_CLOSING,
        [33, 22],
        [1_920, 20_100],
    );
    assert_eq!(scanner.scan(&[(key, fin)], t0 + 70 * SECOND, &context), []);
    let closed = entry(
        t0,
        t0 + 71 * SECOND,
        CONN_CLOSING,
        [34, 22],
        [1_960, 20_100],
    );
    assert_eq!(
        scanner.scan(&[(key, closed)], t0 + 72 * SECOND, &context),
        []
    );
    let end = only(
        scanner.scan(&[(key, closed)], t0 + 74 * SECOND, &context),
        RecordKind::End,
    );
    assert_eq!(end.kind, RecordKind::End);
    assert_eq!(end.reason, end_reason::CLOSED);
    assert_eq!(traffic(&end), [Some(4), Some(160), Some(2), Some(100)]);
    assert_eq!(end.time, "2023-11-15T22:16:34.456Z", "its last packet");
    assert_eq!(end.duration_ms, Some(71_000));
    assert_eq!(
        end.decided_by,
        "NetworkPolicy app/db-from-web ingress[1] (Accept)"
    );

    // Nothing more of it: not while its entry lingers, nor when it goes.
    assert_eq!(
        scanner.scan(&[(key, closed)], t0 + 76 * SECOND, &context),
        []
    );
    assert_eq!(scanner.scan(&[], t0 + 78 * SECOND, &context), []);
    assert_eq!(scanner.scan(&[], t0 + 80 * SECOND, &context), []);
    assert_eq!(scanner.metrics.flow_records(RecordKind::Update).get(), 1);
    assert_eq!(scanner.metrics.flow_records(RecordKind::End).get(), 1);
}

#[test]
fn a_pod_deleted_since_the_connection_opened_is_still_named() {
    let open = allowed();
    let t0 = open.timestamp_ns;
    let key = connection_of(&open);
    let mut scanner = Scanner::new();
    scanner.open(&open, &context());
    let forgotten = FlowContext::default();
    let gone = entry(t0, t0 + 5 * SECOND, CONN_OPEN, [1, 1], [40, 40]);
    let update = only(
        scanner.scan(&[(key, gone)], t0 + 61 * SECOND, &forgotten),
        RecordKind::Update,
    );
    assert_eq!(update.src.pod.as_deref(), Some("app/web"));
    assert_eq!(update.dst.pod.as_deref(), Some("app/db"));
    assert_eq!(update.endpoint.as_deref(), Some("app/db"));
    assert_eq!(
        update.policy_name.as_deref(),
        Some("db-from-web"),
        "the rule as it was named when last known"
    );
}

#[test]
fn an_entry_that_goes_ends_with_what_was_last_read() {
    let context = context();
    let open = allowed();
    let t0 = open.timestamp_ns;
    let key = connection_of(&open);
    let mut scanner = Scanner::new();
    scanner.open(&open, &context);
    let read = entry(t0, t0 + SECOND, CONN_OPEN, [5, 4], [300, 4_000]);
    assert_eq!(scanner.scan(&[(key, read)], t0 + 2 * SECOND, &context), []);
    // Revoked by a policy change, say: the programs deleted it. One reading
    // may miss an entry the programs moved while it read; two do not.
    assert_eq!(scanner.scan(&[], t0 + 4 * SECOND, &context), []);
    let end = only(
        scanner.scan(&[], t0 + 6 * SECOND, &context),
        RecordKind::End,
    );
    assert_eq!(
        (end.kind, end.reason.as_str()),
        (RecordKind::End, end_reason::REMOVED)
    );
    assert_eq!(traffic(&end), [Some(5), Some(300), Some(4), Some(4_000)]);
}

#[test]
fn an_idle_connection_ends_as_expired() {
    let context = context();
    let open = allowed();
    let t0 = open.timestamp_ns;
    let mut key = connection_of(&open);
    key.protocol = netseg_contract::PROTO_UDP;
    let mut scanner = Scanner::new();
    let quiet = entry(t0, t0 + SECOND, CONN_OPEN, [1, 1], [60, 60]);
    // Found by a scan (a restart lost its open event): tracked all the same.
    let end = only(
        scanner.scan(&[(key, quiet)], t0 + 62 * SECOND, &context),
        RecordKind::End,
    );
    assert_eq!(
        (end.kind, end.reason.as_str()),
        (RecordKind::End, end_reason::EXPIRED)
    );
    assert_eq!(traffic(&end), [Some(1), Some(60), Some(1), Some(60)]);
    assert_eq!(end.src.pod.as_deref(), Some("app/web"));
}

#[test]
fn a_reused_tuple_ends_the_earlier_connection_and_starts_a_new_one() {
    let context = context();
    let open = allowed();
    let t0 = open.timestamp_ns;
    let key = connection_of(&open);
    let mut scanner = Scanner::new();
    scanner.open(&open, &context);
    let first = entry(t0, t0 + SECOND, CONN_OPEN, [2, 2], [80, 80]);
    assert_eq!(scanner.scan(&[(key, first)], t0 + 2 * SECOND, &context), []);
    let t1 = t0 + 3 * SECOND;
    let second = entry(t1, t1, CONN_OPEN, [1, 0], [40, 0]);
    // The new connection's open event comes before the next reading.
    let end = only(
        scanner.open(
            &FlowEvent {
                timestamp_ns: t1,
                ..open
            },
            &context,
        ),
        RecordKind::End,
    );
    assert_eq!(
        (end.kind, end.reason.as_str()),
        (RecordKind::End, end_reason::REMOVED)
    );
    assert_eq!(traffic(&end), [Some(2), Some(80), Some(2), Some(80)]);
    let update = only(
        scanner.scan(&[(key, second)], t1 + 61 * SECOND, &context),
        RecordKind::Update,
    );
    assert_eq!(traffic(&update), [Some(1), Some(40), Some(0), Some(0)]);
    assert_eq!(update.duration_ms, Some(61_000));
}

#[test]
fn a_connection_younger_than_the_reading_is_not_taken_for_gone() {
    let context = context();
    let open = allowed();
    let t0 = open.timestamp_ns;
    let mut scanner = Scanner::new();
    scanner.open(&open, &context);
    // Readings that began before it opened do not have it.
    assert_eq!(scanner.scan(&[], t0 - SECOND, &context), []);
    assert_eq!(scanner.scan(&[], t0 - 1, &context), []);
    let key = connection_of(&open);
    let live = entry(t0, t0 + SECOND, CONN_OPEN, [1, 1], [40, 40]);
    let update = only(
        scanner.scan(&[(key, live)], t0 + 60 * SECOND, &context),
        RecordKind::Update,
    );
    assert_eq!(traffic(&update), [Some(1), Some(40), Some(1), Some(40)]);
}

#[test]
fn a_connection_a_previous_daemon_reported_is_reported_from_its_first_reading_on() {
    let context = context();
    let open = allowed();
    let t0 = open.timestamp_ns;
    let key = connection_of(&open);
    let mut scanner = Scanner {
        connections: Connections::new(UPDATE_EVERY, t0 + 10 * SECOND),
        ..Scanner::new()
    };
    // Handed over by the previous daemon: revision 0, its verdict numbering.
    let inherited = ConnValue {
        revision: 0,
        ..entry(t0, t0 + 9 * SECOND, CONN_OPEN, [50, 40], [5_000, 40_000])
    };
    assert_eq!(
        scanner.scan(&[(key, inherited)], t0 + 11 * SECOND, &context),
        []
    );
    let grown = ConnValue {
        revision: 0,
        ..entry(t0, t0 + 70 * SECOND, CONN_OPEN, [52, 41], [5_100, 40_500])
    };
    let update = only(
        scanner.scan(&[(key, grown)], t0 + 71 * SECOND, &context),
        RecordKind::Update,
    );
    assert_eq!(traffic(&update), [Some(2), Some(100), Some(1), Some(500)]);
    assert_eq!(
        update.decided_by, "conntrack",
        "its verdict id is the previous daemon's"
    );
    assert_eq!(update.duration_ms, Some(71_000));
}

#[test]
fn an_update_counts_more_than_one_reading_of_the_packed_counters_can_say() {
    // Each side's counter holds 26 bits of packets and 38 of bytes; an
    // update interval of a busy connection carries more than that, read
    // every 2 s.
    let context = context();
    let open = allowed();
    let t0 = open.timestamp_ns;
    let key = connection_of(&open);
    let mut scanner = Scanner::new();
    scanner.open(&open, &context);
    let (packets_a_reading, bytes_a_packet) = (3_000_000, 9_000);
    let mut update = Vec::new();
    for reading in 1..=30 {
        let sent = reading * packets_a_reading;
        let live = entry(
            t0,
            t0 + reading * 2 * SECOND,
            CONN_OPEN,
            [sent, sent / 2],
            [sent * bytes_a_packet, sent / 2 * 40],
        );
        update = scanner.scan(&[(key, live)], t0 + reading * 2 * SECOND, &context);
    }
    let update = only(update, RecordKind::Update);
    let sent = 30 * packets_a_reading;
    assert!(sent > 1 << 26 && sent * bytes_a_packet > 1 << 38);
    assert_eq!(
        traffic(&update),
        [
            Some(sent),
            Some(sent * bytes_a_packet),
            Some(sent / 2),
            Some(sent / 2 * 40)
        ]
    );
}
