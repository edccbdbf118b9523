//! The flow pipeline: ring-buffer events from the programs become JSON flow
//! records (one object per line), named with the pods and the policy rule
//! that decided them.

mod aggregate;
pub mod api;
mod clock;
mod connections;
mod context;
pub mod query;
pub mod recent;
mod record;
mod rotate;
mod schema;

use std::{
    io::{self, Write},
    sync::Arc,
    time::{Duration, SystemTime},
};

use aya::maps::{HashMap, MapData, RingBuf};
use netseg_contract::{ConnKey, ConnValue, DenyCountKey, FlowEvent, VERDICT_ALLOW, reason};
use prometheus_client::metrics::counter::Counter;
use tokio::{
    io::unix::AsyncFd,
    sync::{mpsc, watch},
};

use crate::metrics::Metrics;

pub(crate) use aggregate::DenialReports;
use aggregate::REPORT_INTERVAL;
use clock::Clock;
pub use connections::{Connections, Reading, SCAN_INTERVAL};
pub use context::{FlowContext, FlowLabels, Naming, NotALabelKey};
use recent::RecentFlows;
pub use record::{protocol_name, reason_name};
pub use rotate::{RotatingFile, Rotation};
pub use schema::{FlowRecord, Party, RecordKind, SCHEMA_VERSION, end_reason};

/// CLOCK_MONOTONIC, which `bpf_ktime_get_ns` reads.
pub(crate) fn monotonic_now() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

/// The wall-clock time of CLOCK_MONOTONIC's zero, which `bpf_ktime_get_ns` counts from.
pub fn monotonic_epoch() -> SystemTime {
    SystemTime::now() - monotonic_now()
}

/// The exporter's work for one event: name its parties, write its JSON line,
/// count it. The daemon and the flow pipeline benchmark share it.
pub struct FlowWriter<W> {
    out: W,
    clock: Clock,
    /// The `start` of a connection record, copied out of the clock.
    start: Vec<u8>,
    /// This node's name, rendered as JSON (a string or null).
    node: Box<[u8]>,
    /// Records not yet handed to `out`: it gets one write per
    /// [`FLUSH_AT`] bytes rather than one per record or per token.
    pending: Vec<u8>,
    /// Records written, by [`RecordKind`] in the order of [`RecordKind::ALL`].
    written: [Counter; RecordKind::ALL.len()],
    /// Gets every line written too, for the flow API.
    recent: Option<Arc<RecentFlows>>,
}

/// Bytes of records the writer gathers before writing them out.
const FLUSH_AT: usize = 64 * 1024;

/// How often the exporter reads the flow events the programs left in the
/// ring without waking it (they wake it only once an eighth of the ring is
/// unread): the most a record waits before it is written.
pub const DRAIN_INTERVAL: Duration = Duration::from_millis(50);

impl<W: Write> FlowWriter<W> {
    /// `boot` is the wall-clock time of the events' clock zero
    /// ([`monotonic_epoch`]); `node` names the node in every record.
    pub fn new(out: W, boot: SystemTime, node: Option<&str>, metrics: &Metrics) -> Self {
        let node = serde_json::to_vec(&node).expect("a string or null serializes");
        Self {
            out,
            clock: Clock::new(boot),
            start: Vec::with_capacity(32),
            node: node.into(),
            pending: Vec::with_capacity(FLUSH_AT + 1024),
            written: RecordKind::ALL.map(|kind| metrics.flow_records(kind)),
            recent: None,
        }
    }

    /// Hands every line written to `recent` as well.
    pub fn with_recent(mut self, recent: Option<Arc<RecentFlows>>) -> Self {
        self.recent = recent;
        self
    }

    /// Writes one record, buffered: [`FlowWriter::flush`] makes it visible.
    pub fn write_event(&mut self, context: &FlowContext, event: &FlowEvent) -> io::Result<()> {
        let time = self.clock.text(event.timestamp_ns)?;
        let start = self.pending.len();
        if let Err(error) =
            record::write_record(&mut self.pending, context, &self.node, event, time)
        {
            // Never half a record.
            self.pending.truncate(start);
            return Err(error);
        }
        let kind = if event.verdict == VERDICT_ALLOW {
            RecordKind::Open
        } else {
            RecordKind::Deny
        };
        self.written_one(kind)
    }

    /// Writes the aggregated record of `count` denials of `key` (see
    /// [`aggregate`]), reported at `timestamp_ns` of the events' clock.
    pub fn write_aggregate(
        &mut self,
        context: &FlowContext,
        key: &DenyCountKey,
        count: u64,
        timestamp_ns: u64,
    ) -> io::Result<()> {
        let time = self.clock.text(timestamp_ns)?;
        record::write_aggregate(&mut self.pending, context, &self.node, key, count, time);
        self.written_one(RecordKind::DenyCount)
    }

    /// Writes a connection's `update` or `end` record, taken at `time_ns`,
    /// of the connection that opened at `start_ns` (the events' clock).
    fn write_connection(
        &mut self,
        connection: &record::ConnectionRecord<'_>,
        time_ns: u64,
        start_ns: u64,
    ) -> io::Result<()> {
        self.start.clear();
        self.start.extend_from_slice(self.clock.text(start_ns)?);
        let time = self.clock.text(time_ns)?;
        let at = self.pending.len();
        if let Err(error) =
            record::write_connection(&mut self.pending, &self.node, connection, time, &self.start)
        {
            self.pending.truncate(at);
            return Err(error);
        }
        self.written_one(connection.kind)
    }

    fn written_one(&mut self, kind: RecordKind) -> io::Result<()> {
        self.written[kind as usize].inc();
        if self.pending.len() >= FLUSH_AT {
            self.write_pending()?;
        }
        Ok(())
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.write_pending()?;
        self.out.flush()
    }

    fn write_pending(&mut self) -> io::Result<()> {
        let written = self.out.write_all(&self.pending);
        if let Some(recent) = &self.recent {
            recent.push_lines(&self.pending);
        }
        self.pending.clear();
        written
    }
}

/// What the exporter reads and where it writes.
pub struct Export {
    pub events: RingBuf<MapData>,
    /// Denials without a record of their own (`DENY_COUNTS`).
    pub denials: HashMap<MapData, DenyCountKey, u64>,
    /// The conntrack table, read for `update` and `end` records; `None`
    /// when allowed connections are not reported.
    pub connections: Option<HashMap<MapData, ConnKey, ConnValue>>,
    /// The interfaces the programs left: their denial counts are removed
    /// after a last reading.
    pub detached: mpsc::UnboundedReceiver<u32>,
    pub context: watch::Receiver<Arc<FlowContext>>,
    pub out: Box<dyn Write + Send>,
    /// Gets every line written too, for the flow API.
    pub recent: Option<Arc<RecentFlows>>,
    pub node: Option<String>,
    /// How often a live connection gets an `update` record.
    pub update_every: Duration,
    pub metrics: Arc<Metrics>,
}

/// How far below the daemon's other threads the exporter runs (in nice
/// steps): a flood of records waits (and, past the ring, is counted as
/// lost) rather than delaying a compile, an attach or a CNI answer, or the
/// traffic on the node's cores. Lowering a thread's priority needs no
/// privilege.
const EXPORTER_NICER_BY: libc::c_int = 10;

/// The exporter's own runtime: one thread (and its blocking pool, for the
/// conntrack readings), [`EXPORTER_NICER_BY`] below the daemon.
pub struct ExporterThread {
    runtime: Option<tokio::runtime::Runtime>,
}

impl ExporterThread {
    /// Starts [`export`] on a thread of its own; the handle tells how it ended.
    pub fn spawn(export: Export) -> io::Result<(Self, tokio::task::JoinHandle<io::Result<()>>)> {
        let nice = (thread_nice()? + EXPORTER_NICER_BY).min(19);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("netseg-flows")
            .on_thread_start(move || set_thread_nice(nice))
            .enable_all()
            .build()?;
        let task = runtime.spawn(self::export(export));
        Ok((
            Self {
                runtime: Some(runtime),
            },
            task,
        ))
    }
}

impl Drop for ExporterThread {
    fn drop(&mut self) {
        // Dropped on the daemon's runtime, which must not wait for it.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// This thread's nice value.
fn thread_nice() -> io::Result<libc::c_int> {
    // SAFETY: plain syscalls about this thread. -1 is a valid nice value:
    // errno tells.
    unsafe {
        *libc::__errno_location() = 0;
        let nice = libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t);
        match *libc::__errno_location() {
            0 => Ok(nice),
            errno => Err(io::Error::from_raw_os_error(errno)),
        }
    }
}

/// Sets this thread's nice value. On Linux it is the thread's own
/// (PRIO_PROCESS with a thread id); a new thread starts with its creator's.
fn set_thread_nice(nice: libc::c_int) {
    // SAFETY: a plain syscall about this thread.
    let set = unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, nice) };
    if set != 0 {
        tracing::warn!(error = %io::Error::last_os_error(), "the flow exporter runs at the daemon's priority");
    }
}

/// Reads flow events, every second the counts of denials without a record
/// of their own, and every [`connections::SCAN_INTERVAL`] the conntrack
/// table, writing one JSON record per line. Returns on the first failed read or write.
pub async fn export(export: Export) -> io::Result<()> {
    let Export {
        events,
        mut denials,
        connections,
        mut detached,
        context,
        out,
        recent,
        node,
        update_every,
        metrics,
    } = export;
    let mut writer =
        FlowWriter::new(out, monotonic_epoch(), node.as_deref(), &metrics).with_recent(recent);
    let mut reports = DenialReports::default();
    let mut tracker = Connections::new(update_every, monotonic_now().as_nanos() as u64);
    let mut readings = connections.map(|table| {
        let (send, receive) = mpsc::channel(1);
        tokio::spawn(connections::read_every_scan_interval(table, send));
        receive
    });
    let mut report = tokio::time::interval(REPORT_INTERVAL);
    report.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut drain = tokio::time::interval(DRAIN_INTERVAL);
    drain.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // SAFETY: the ring buffer owns its fd and AsyncFd owns the ring buffer,
    // so the fd stays open for as long as it is registered.
    let mut ready = unsafe { AsyncFd::register(events) }.map_err(io::Error::from)?;
    loop {
        tokio::select! {
            guard = ready.readable_mut() => {
                let mut guard = guard?;
                let context = context.borrow().clone();
                write_events(guard.get_inner_mut(), &mut writer, &mut tracker, &context)?;
                guard.clear_ready();
            }
            _ = drain.tick() => {
                let context = context.borrow().clone();
                write_events(ready.get_mut(), &mut writer, &mut tracker, &context)?;
            }
            _ = report.tick() => {
                let context = context.borrow().clone();
                // Records of their own first: the counts come after them.
                write_events(ready.get_mut(), &mut writer, &mut tracker, &context)?;
                while let Ok(ifindex) = detached.try_recv() {
                    reports.detached(ifindex);
                }
                reports.report(&mut denials, &mut writer, &context)?;
            }
            reading = next_reading(&mut readings) => {
                let reading = reading?;
                let context = context.borrow().clone();
                // Opened before they are updated or ended.
                write_events(ready.get_mut(), &mut writer, &mut tracker, &context)?;
                tracker.scan(reading, &context, &mut writer)?;
            }
        }
        writer.flush()?;
    }
}

/// The next reading of the conntrack table; never, when connections are
/// not reported.
async fn next_reading(
    readings: &mut Option<mpsc::Receiver<io::Result<connections::Reading>>>,
) -> io::Result<connections::Reading> {
    let Some(readings) = readings else {
        return std::future::pending().await;
    };
    readings
        .recv()
        .await
        .unwrap_or_else(|| Err(io::Error::other("the conntrack reader stopped")))
}

fn write_events<W: Write>(
    ring: &mut RingBuf<MapData>,
    writer: &mut FlowWriter<W>,
    tracker: &mut Connections,
    context: &FlowContext,
) -> io::Result<()> {
    while let Some(item) = ring.next() {
        if item.len() < size_of::<FlowEvent>() {
            continue;
        }
        // SAFETY: the programs submit FlowEvent records; the length was checked.
        let event: FlowEvent = unsafe { std::ptr::read_unaligned(item.as_ptr().cast()) };
        writer.write_event(context, &event)?;
        if event.reason == reason::NEW_ALLOWED {
            tracker.opened(&event, context, writer)?;
        }
    }
    Ok(())
}

#[cfg(test)]
pub(super) mod tests;
