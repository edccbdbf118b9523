//! The flow pipeline: ring-buffer events from the programs become JSON flow
//! records (one object per line), named with the pods and the policy rule
//! that decided them.

mod aggregate;
pub mod api;
mod clock;
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
use netseg_contract::{DenyCountKey, FlowEvent, VERDICT_ALLOW};
use prometheus_client::metrics::counter::Counter;
use tokio::{
    io::unix::AsyncFd,
    sync::{mpsc, watch},
};

use crate::metrics::Metrics;

pub(crate) use aggregate::DenialReports;
use aggregate::REPORT_INTERVAL;
use clock::Clock;
pub use context::FlowContext;
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
    /// Records not yet handed to `out`: it gets one write per
    /// [`FLUSH_AT`] bytes rather than one per record or per token.
    pending: Vec<u8>,
    allowed: Counter,
    denied: Counter,
    /// Gets every line written too, for the flow API.
    recent: Option<Arc<RecentFlows>>,
}

/// Bytes of records the writer gathers before writing them out.
const FLUSH_AT: usize = 64 * 1024;

impl<W: Write> FlowWriter<W> {
    /// `boot` is the wall-clock time of the events' clock zero ([`monotonic_epoch`]).
    pub fn new(out: W, boot: SystemTime, metrics: &Metrics) -> Self {
        Self {
            out,
            clock: Clock::new(boot),
            pending: Vec::with_capacity(FLUSH_AT + 1024),
            allowed: metrics.flow_records("allow"),
            denied: metrics.flow_records("deny"),
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
        if let Err(error) = record::write_record(&mut self.pending, context, event, time) {
            // Never half a record.
            self.pending.truncate(start);
            return Err(error);
        }
        if event.verdict == VERDICT_ALLOW {
            self.allowed.inc();
        } else {
            self.denied.inc();
        }
        if self.pending.len() >= FLUSH_AT {
            self.write_pending()?;
        }
        Ok(())
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
        record::write_aggregate(&mut self.pending, context, key, count, time);
        self.denied.inc();
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

/// Reads flow events, and every second the counts of denials without a
/// record of their own, writing one JSON record per line to `out`.
/// `detached` names the interfaces the programs left: their counts are
/// removed after a last reading. Every line also goes to `recent`.
/// Returns on the first failed read or write.
pub async fn export(
    events: RingBuf<MapData>,
    mut denials: HashMap<MapData, DenyCountKey, u64>,
    mut detached: mpsc::UnboundedReceiver<u32>,
    context: watch::Receiver<Arc<FlowContext>>,
    out: Box<dyn Write + Send>,
    recent: Option<Arc<RecentFlows>>,
    metrics: Arc<Metrics>,
) -> io::Result<()> {
    let mut writer = FlowWriter::new(out, monotonic_epoch(), &metrics).with_recent(recent);
    let mut reports = DenialReports::default();
    let mut report = tokio::time::interval(REPORT_INTERVAL);
    report.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // SAFETY: the ring buffer owns its fd and AsyncFd owns the ring buffer,
    // so the fd stays open for as long as it is registered.
    let mut ready = unsafe { AsyncFd::register(events) }.map_err(io::Error::from)?;
    loop {
        tokio::select! {
            guard = ready.readable_mut() => {
                let mut guard = guard?;
                let context = context.borrow().clone();
                write_events(guard.get_inner_mut(), &mut writer, &context)?;
                guard.clear_ready();
            }
            _ = report.tick() => {
                let context = context.borrow().clone();
                // Records of their own first: the counts come after them.
                write_events(ready.get_mut(), &mut writer, &context)?;
                while let Ok(ifindex) = detached.try_recv() {
                    reports.detached(ifindex);
                }
                reports.report(&mut denials, &mut writer, &context)?;
            }
        }
        writer.flush()?;
    }
}

fn write_events<W: Write>(
    ring: &mut RingBuf<MapData>,
    writer: &mut FlowWriter<W>,
    context: &FlowContext,
) -> io::Result<()> {
    while let Some(item) = ring.next() {
        if item.len() < size_of::<FlowEvent>() {
            continue;
        }
        // SAFETY: the programs submit FlowEvent records; the length was checked.
        let event: FlowEvent = unsafe { std::ptr::read_unaligned(item.as_ptr().cast()) };
        writer.write_event(context, &event)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
