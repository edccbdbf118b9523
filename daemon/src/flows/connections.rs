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
    CONN_CLOSING, ConnKey, ConnValue, Ends, FIRST_COMPILED_RULE, FlowEvent, age_ns, traffic::Sent,
};

use super::{
    FlowWriter,
    context::{FlowContext, JsonText, PartyNames, VerdictNames},
    record::{ConnectionRecord, Traffic},
    schema::{RecordKind, end_reason},
};

/// How often the conntrack table is read.
pub const SCAN_INTERVAL: Duration = Duration::from_secs(2);

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
            let entries = crate::datapath::read_whole(&table);
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
    /// Hashed with foldhash, seeded at random per map (a pod chooses its
    /// ports: the keys must not collide at its will); SipHash was about 4 %
    /// of the daemon's time under a stream of short connections.
    tracked: HashMap<ConnKey, Tracked, foldhash::fast::RandomState>,
    update_every_ns: u64,
    /// When this exporter started (the programs' clock): connections
    /// opened before were reported by a previous daemon.
    started_ns: u64,
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
    /// The entry as the last scan read it (or as it opened).
    last: ConnValue,
    /// Whether the last two readings had the same traffic counters.
    quiet: bool,
    /// What each side sent since the previous record.
    unreported: [Sent; 2],
    /// When its previous record was written (or it opened).
    reported_at_ns: u64,
    ended: bool,
    seen_in_scan: u64,
    /// Readings in a row that did not have its entry.
    missed: u8,
}

impl Tracked {
    /// A connection as `value` has it, named now, whose traffic is yet to
    /// be reported from `value`'s counters on.
    fn new(key: &ConnKey, value: &ConnValue, context: &FlowContext) -> Self {
        let party = |bytes: [u8; 16]| context.party(super::record::address(bytes)).clone();
        let ends = key.ends(value.origin);
        Self {
            opened_ns: value.opened_ns,
            src: party(ends.src),
            dst: party(ends.dst),
            endpoint: context.endpoint_names.get(&key.ifindex).cloned(),
            decision: compiled_names(context, value),
            last: *value,
            quiet: false,
            unreported: [Sent::default(); 2],
            reported_at_ns: value.opened_ns,
            ended: false,
            seen_in_scan: 0,
            missed: 0,
        }
    }

    /// Takes in a reading of its entry: what each side sent since the
    /// reading before is yet to be reported. Readings come every
    /// [`SCAN_INTERVAL`], so the counters' differences are exact.
    fn read(&mut self, value: ConnValue) {
        for (unreported, (before, after)) in
            (self.unreported.iter_mut()).zip(self.last.traffic.into_iter().zip(value.traffic))
        {
            let sent = Sent::between(before, after);
            unreported.packets = unreported.packets.wrapping_add(sent.packets);
            unreported.bytes = unreported.bytes.wrapping_add(sent.bytes);
        }
        self.last = value;
    }

    /// The traffic since the previous record, by the last reading.
    fn traffic(&self) -> Traffic {
        let [src, dst] = self.unreported;
        Traffic {
            src_packets: src.packets,
            src_bytes: src.bytes,
            dst_packets: dst.packets,
            dst_bytes: dst.bytes,
        }
    }

    /// A record was written: the traffic so far is reported.
    fn reported(&mut self, now: u64) {
        self.unreported = [Sent::default(); 2];
        self.reported_at_ns = now;
    }

    /// Why the connection is over by the last reading at `now`, if it is:
    /// a FIN or RST was seen and nothing crossed it since the reading
    /// before (a half-closed connection may still carry data), or it was
    /// idle past its lifetime.
    fn over(&self, protocol: u8, now: u64) -> Option<&'static str> {
        if self.last.state == CONN_CLOSING && self.quiet {
            Some(end_reason::CLOSED)
        } else {
            self.last
                .expired(protocol, now)
                .then_some(end_reason::EXPIRED)
        }
    }

    /// Why a connection whose entry went (or was replaced) is over.
    fn gone(&self, protocol: u8, now: u64) -> &'static str {
        if self.last.state == CONN_CLOSING {
            end_reason::CLOSED
        } else if self.last.expired(protocol, now) {
            end_reason::EXPIRED
        } else {
            end_reason::REMOVED
        }
    }
}

/// A connection's entry as it opened, before it counted anything.
fn uncounted(value: &ConnValue) -> ConnValue {
    ConnValue {
        traffic: [0; 2],
        ..*value
    }
}

impl Connections {
    /// `started_ns`: now, on the programs' clock.
    pub fn new(update_every: Duration, started_ns: u64) -> Self {
        Self {
            tracked: HashMap::default(),
            update_every_ns: update_every.as_nanos().try_into().unwrap_or(u64::MAX),
            started_ns,
            scans: 0,
        }
    }

    /// A connection's `open` event: it is named now, while its parties are.
    /// An earlier connection on the same tuple that has no `end` yet gets it.
    pub fn opened<W: Write>(
        &mut self,
        event: &FlowEvent,
        context: &FlowContext,
        writer: &mut FlowWriter<W>,
    ) -> io::Result<()> {
        let key = connection_of(event);
        let value = ConnValue {
            last_seen_ns: event.timestamp_ns,
            revision: event.revision,
            rule: event.rule,
            state: netseg_contract::CONN_HALF_OPEN,
            origin: event.direction,
            _pad: [0; 3],
            opened_ns: event.timestamp_ns,
            traffic: [0; 2],
        };
        let fresh = || Tracked::new(&key, &value, context);
        match self.tracked.get_mut(&key) {
            // A scan met it first: it keeps the names it got then.
            Some(known) if known.opened_ns == value.opened_ns => {}
            Some(earlier) => {
                if !earlier.ended {
                    let why = earlier.gone(key.protocol, event.timestamp_ns);
                    let time = earlier.last.last_seen_ns;
                    write_record(writer, &key, earlier, RecordKind::End, why, time)?;
                }
                *earlier = fresh();
            }
            None => {
                self.tracked.insert(key, fresh());
            }
        }
        Ok(())
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
            let inherited = value.opened_ns < self.started_ns;
            // A connection a previous daemon reported is reported from
            // here on: never twice.
            let first_met = |value: &ConnValue| {
                if inherited {
                    let mut tracked = Tracked::new(&key, value, context);
                    tracked.reported_at_ns = now;
                    tracked
                } else {
                    Tracked::new(&key, &uncounted(value), context)
                }
            };
            let tracked = self.tracked.entry(key).or_insert_with(|| first_met(&value));
            if tracked.opened_ns != value.opened_ns {
                // The tuple was reused before the open event came.
                if !tracked.ended {
                    let why = tracked.gone(key.protocol, now);
                    let time = tracked.last.last_seen_ns;
                    write_record(writer, &key, tracked, RecordKind::End, why, time)?;
                }
                *tracked = first_met(&value);
            }
            let seen_last_scan = tracked.seen_in_scan == self.scans - 1;
            tracked.seen_in_scan = self.scans;
            tracked.missed = 0;
            // Its records are written: only its going is left to see. (A
            // closed entry stays some seconds in the table, read each scan.)
            if tracked.ended {
                continue;
            }
            tracked.quiet = seen_last_scan && tracked.last.traffic == value.traffic;
            tracked.read(value);
            if let Some(names) = compiled_names(context, &value) {
                tracked.decision = Some(names);
            }
            if let Some(why) = tracked.over(key.protocol, now) {
                let time = value.last_seen_ns;
                write_record(writer, &key, tracked, RecordKind::End, why, time)?;
                tracked.ended = true;
            } else if age_ns(now, tracked.reported_at_ns) >= self.update_every_ns {
                let established = super::record::reason_name(netseg_contract::reason::ESTABLISHED);
                write_record(writer, &key, tracked, RecordKind::Update, established, now)?;
                tracked.reported(now);
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
                let why = tracked.gone(key.protocol, now);
                let time = tracked.last.last_seen_ns;
                write_record(writer, &key, &tracked, RecordKind::End, why, time)?;
            }
        }
        Ok(())
    }
}

/// The conntrack key of the connection an `open` event reports.
pub(super) fn connection_of(event: &FlowEvent) -> ConnKey {
    let ends = Ends {
        src: event.src,
        src_port: event.src_port,
        dst: event.dst,
        dst_port: event.dst_port,
    };
    ConnKey::of(event.ifindex, event.direction, event.protocol, &ends)
}

/// The names of the compiled verdict that allowed the connection of
/// `value`, when `context` has them. An entry a previous daemon handed
/// over (revision 0) holds a verdict id of that daemon's numbering until
/// its next packet is judged: it names nothing.
fn compiled_names(context: &FlowContext, value: &ConnValue) -> Option<Arc<VerdictNames>> {
    (value.rule >= FIRST_COMPILED_RULE && value.revision != 0)
        .then(|| context.verdict_names.get(&value.rule).cloned())
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
        origin: tracked.last.origin,
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
