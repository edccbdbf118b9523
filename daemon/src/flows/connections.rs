//! Whole connections: the exporter reads the conntrack table every
//! [`SCAN_INTERVAL`] and turns what the programs counted into `update`
//! records (every `--flow-update-interval` while a connection lives) and
//! one `end` record (once it closed and went quiet, expired, or its entry
//! went). Each record carries the traffic since the connection's previous
//! one, so a connection's records add up to all it carried.
//!
//! A connection keeps the names its parties had when it was first seen
//! (its `open` event, or the first scan after a restart), so a pod deleted
//! since is still named in its records.

use std::{
    collections::HashMap,
    io::{self, Write},
    sync::Arc,
    time::Duration,
};

use aya::maps::MapData;
use tokio::sync::mpsc;

use netseg_contract::{
    CONN_CLOSING, ConnKey, ConnValue, FIRST_COMPILED_RULE, FORWARD, FlowEvent, REPLY, age_ns,
};

use super::{
    FlowWriter,
    context::{FlowContext, JsonText, PartyNames, VerdictNames},
    record::{ConnectionRecord, Traffic},
    schema::{RecordKind, end_reason},
};

/// How often the conntrack table is read.
pub const SCAN_INTERVAL: Duration = Duration::from_secs(2);

/// How long a connection that saw a FIN or RST stays quiet before its
/// `end` record: the other side's FIN and the last ACK come within a
/// round trip, and belong in it.
const CLOSE_SETTLE_NS: u64 = 1_000_000_000;

/// One reading of the conntrack table.
pub struct Reading {
    /// When the reading began (the programs' clock): entries opened since
    /// may be missing from it.
    pub taken_ns: u64,
    pub entries: Vec<(ConnKey, ConnValue)>,
}

/// Reads `table` every [`SCAN_INTERVAL`] off the async threads (a full
/// table takes a while) and sends each reading, or the error that ended
/// the reading, to the exporter.
pub async fn read_every_scan_interval(
    mut table: aya::maps::HashMap<MapData, ConnKey, ConnValue>,
    readings: mpsc::Sender<io::Result<Reading>>,
) {
    let mut tick = tokio::time::interval(SCAN_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let read = tokio::task::spawn_blocking(move || {
            let taken_ns = super::monotonic_now().as_nanos() as u64;
            let entries = table.iter().collect::<Result<Vec<_>, _>>();
            (table, taken_ns, entries)
        })
        .await;
        let (back, taken_ns, entries) = match read {
            Ok(read) => read,
            Err(panicked) => {
                let _ = readings.send(Err(io::Error::other(panicked))).await;
                return;
            }
        };
        table = back;
        let reading = entries
            .map(|entries| Reading { taken_ns, entries })
            .map_err(io::Error::other);
        let failed = reading.is_err();
        if readings.send(reading).await.is_err() || failed {
            return;
        }
    }
}

/// The exporter's view of the connections in the conntrack table.
pub struct Connections {
    tracked: HashMap<ConnKey, Tracked>,
    update_every_ns: u64,
    /// Counts the scans, to tell the entries one scan did not see.
    scans: u64,
}

struct Tracked {
    opened_ns: u64,
    src: Arc<PartyNames>,
    dst: Arc<PartyNames>,
    endpoint: Option<Arc<JsonText>>,
    /// What allows it, as last named; kept when its rule is gone.
    decision: Option<Arc<VerdictNames>>,
    /// The entry as the last scan read it.
    last: ConnValue,
    /// The entry's counts when its previous record was written.
    reported: ConnValue,
    /// When its previous record was written (or it opened).
    reported_at_ns: u64,
    ended: bool,
    seen_in_scan: u64,
    /// Readings in a row that did not have its entry.
    missed: u8,
}

impl Tracked {
    fn new(key: &ConnKey, value: &ConnValue, context: &FlowContext) -> Self {
        let party = |bytes: [u8; 16]| context.party(super::record::address(bytes)).clone();
        let opened = ConnValue {
            packets: [0; 2],
            bytes: [0; 2],
            ..*value
        };
        Self {
            opened_ns: value.opened_ns,
            src: party(key.src),
            dst: party(key.dst),
            endpoint: context.endpoint_names.get(&key.ifindex).cloned(),
            decision: None,
            last: *value,
            reported: opened,
            reported_at_ns: value.opened_ns,
            ended: false,
            seen_in_scan: 0,
            missed: 0,
        }
    }

    /// The traffic since the previous record, by the last reading.
    fn traffic(&self) -> Traffic {
        let grown =
            |now: [u64; 2], before: [u64; 2], side: usize| now[side].wrapping_sub(before[side]);
        Traffic {
            src_packets: grown(self.last.packets, self.reported.packets, FORWARD),
            src_bytes: grown(self.last.bytes, self.reported.bytes, FORWARD),
            dst_packets: grown(self.last.packets, self.reported.packets, REPLY),
            dst_bytes: grown(self.last.bytes, self.reported.bytes, REPLY),
        }
    }

    /// Why the connection is over by the last reading at `now`, if it is.
    fn over(&self, protocol: u8, now: u64) -> Option<&'static str> {
        if self.last.state == CONN_CLOSING {
            (age_ns(now, self.last.last_seen_ns) >= CLOSE_SETTLE_NS).then_some(end_reason::CLOSED)
        } else {
            self.last
                .expired(protocol, now)
                .then_some(end_reason::EXPIRED)
        }
    }
}

impl Connections {
    pub fn new(update_every: Duration) -> Self {
        Self {
            tracked: HashMap::new(),
            update_every_ns: update_every.as_nanos().try_into().unwrap_or(u64::MAX),
            scans: 0,
        }
    }

    /// A connection's `open` event: it is named now, while its parties are.
    pub fn opened(&mut self, event: &FlowEvent, context: &FlowContext) {
        let key = ConnKey {
            ifindex: event.ifindex,
            origin: event.direction,
            protocol: event.protocol,
            _pad: [0; 2],
            src_port: event.src_port,
            dst_port: event.dst_port,
            src: event.src,
            dst: event.dst,
        };
        let value = ConnValue {
            last_seen_ns: event.timestamp_ns,
            revision: event.revision,
            rule: event.rule,
            state: netseg_contract::CONN_HALF_OPEN,
            _pad: 0,
            opened_ns: event.timestamp_ns,
            packets: [0; 2],
            bytes: [0; 2],
        };
        let mut tracked = Tracked::new(&key, &value, context);
        tracked.decision = compiled_names(context, event.rule);
        // A scan may have met the connection first: it keeps its names.
        self.tracked
            .entry(key)
            .and_modify(|known| {
                if known.opened_ns != value.opened_ns {
                    *known = Tracked::new(&key, &value, context);
                }
            })
            .or_insert(tracked);
    }

    /// Takes in one reading of the conntrack table: writes the `update`
    /// and `end` records due.
    pub fn scan<W: Write>(
        &mut self,
        reading: Reading,
        context: &FlowContext,
        writer: &mut FlowWriter<W>,
    ) -> io::Result<()> {
        self.scans += 1;
        let now = reading.taken_ns;
        for (key, value) in reading.entries {
            let tracked = self
                .tracked
                .entry(key)
                .or_insert_with(|| Tracked::new(&key, &value, context));
            if tracked.opened_ns != value.opened_ns {
                // The tuple was reused: the earlier connection is over.
                if !tracked.ended {
                    let why = tracked
                        .over(key.protocol, now)
                        .unwrap_or(end_reason::REMOVED);
                    let time = tracked.last.last_seen_ns;
                    write_record(writer, &key, tracked, RecordKind::End, why, time)?;
                }
                *tracked = Tracked::new(&key, &value, context);
            }
            tracked.seen_in_scan = self.scans;
            tracked.missed = 0;
            tracked.last = value;
            if let Some(names) = compiled_names(context, value.rule) {
                tracked.decision = Some(names);
            }
            if tracked.ended {
                continue;
            }
            if let Some(why) = tracked.over(key.protocol, now) {
                let time = value.last_seen_ns;
                write_record(writer, &key, tracked, RecordKind::End, why, time)?;
                tracked.ended = true;
            } else if age_ns(now, tracked.reported_at_ns) >= self.update_every_ns {
                let established = super::record::reason_name(netseg_contract::reason::ESTABLISHED);
                write_record(writer, &key, tracked, RecordKind::Update, established, now)?;
                tracked.reported = value;
                tracked.reported_at_ns = now;
            }
        }
        // A connection whose entry two readings in a row did not have is
        // gone (one may miss an entry the programs moved while it read),
        // and what was last read of it is its last word. One that opened
        // after the reading began may just be too young for it.
        let scan = self.scans;
        let mut gone = Vec::new();
        for (key, tracked) in &mut self.tracked {
            if tracked.seen_in_scan == scan || tracked.opened_ns >= now {
                continue;
            }
            tracked.missed += 1;
            if tracked.missed >= 2 {
                gone.push(*key);
            }
        }
        for key in gone {
            let Some(tracked) = self.tracked.remove(&key) else {
                continue;
            };
            if !tracked.ended {
                let why = tracked
                    .over(key.protocol, now)
                    .unwrap_or(end_reason::REMOVED);
                let time = tracked.last.last_seen_ns;
                write_record(writer, &key, &tracked, RecordKind::End, why, time)?;
            }
        }
        Ok(())
    }
}

/// The names of compiled verdict `rule` in `context`, when it has them.
fn compiled_names(context: &FlowContext, rule: u32) -> Option<Arc<VerdictNames>> {
    (rule >= FIRST_COMPILED_RULE)
        .then(|| context.verdict_names.get(&rule).cloned())
        .flatten()
}

fn write_record<W: Write>(
    writer: &mut FlowWriter<W>,
    key: &ConnKey,
    tracked: &Tracked,
    kind: RecordKind,
    reason: &str,
    time_ns: u64,
) -> io::Result<()> {
    let record = ConnectionRecord {
        kind,
        reason,
        key,
        src: &tracked.src,
        dst: &tracked.dst,
        endpoint: tracked.endpoint.as_deref(),
        decision: tracked.decision.as_deref(),
        rule: tracked.last.rule,
        revision: tracked.last.revision,
        duration_ms: age_ns(time_ns, tracked.opened_ns) / 1_000_000,
        traffic: tracked.traffic(),
    };
    writer.write_connection(&record, time_ns, tracked.opened_ns)
}

#[cfg(test)]
mod tests;
