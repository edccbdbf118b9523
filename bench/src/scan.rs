//! What the flow exporter's reading of the conntrack table costs in CPU
//! time (it reads it every `SCAN_INTERVAL`): the table iterated through
//! the map handle as `flows::export` does, then `Connections::scan`
//! writing the records due into a sink. The programs are loaded (nothing attached) and their
//! CONNECTIONS is filled directly with open connections of 100 local pods
//! to 10,000 pods (nine TCP to one UDP), opened within the last 50 s, so
//! that no update is due until the interval has passed.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use aya::maps::{HashMap, MapData};
use netseg::datapath::{Datapath, MapSizes, read_whole};
use netseg::flows::{
    Connections, FlowContext, FlowLabels, FlowWriter, Naming, Reading, SCAN_INTERVAL,
    monotonic_epoch,
};
use netseg::metrics::Metrics;
use netseg_contract::{
    CONN_OPEN, ConnKey, ConnValue, DIRECTION_EGRESS, DIRECTION_INGRESS, Ends, FIRST_COMPILED_RULE,
    PROTO_TCP, PROTO_UDP, traffic,
};
use netseg_policy::{
    Action, Band, Compiled, Decider, Direction, PodParty, PodRef, PolicyKind, RuleRef, Verdict,
    Workload,
};

use crate::quiet::{self, Disturbance, thread_cpu_ns};
use crate::stats::summarize;

const LOCAL_PODS: u32 = 100;
const PODS: u32 = 10_000;
const RULES: u32 = 2_000;
const FIRST_IFINDEX: u32 = 10;
/// The daemon's default `--flow-update-interval`.
const UPDATE_EVERY: Duration = Duration::from_secs(60);
const SECOND_NS: u64 = 1_000_000_000;

pub struct ScanPlan {
    /// Entries in the table, one measurement each.
    pub sizes: Vec<usize>,
    pub repeats: usize,
    pub disturbance_threshold: f64,
    pub attempts: usize,
}

/// Milliseconds of one repetition at one size.
#[derive(Clone, Copy, Debug)]
struct ScanTimes {
    /// Iterating the whole table (`HashMap::iter`, two syscalls an entry).
    read: f64,
    /// The tracker's first reading (every entry new to it, as after a restart).
    first: f64,
    /// A reading with no record due: what almost every scan costs.
    steady: f64,
    /// A reading one update interval later: every entry writes a record.
    due: f64,
}

pub fn run(plan: &ScanPlan) -> Result<String> {
    let largest = plan.sizes.iter().copied().max().unwrap_or(0);
    let sizes = MapSizes {
        conntrack: u32::try_from(largest).context("--scan-sizes: too many entries")?,
        events_bytes: 4 << 20,
    };
    let (_datapath, _maps, mut telemetry) =
        Datapath::load(sizes, None).context("loading the programs")?;
    let table = &mut telemetry.connections;
    let context = flow_context();
    let mut results = Vec::new();
    for &size in &plan.sizes {
        let now = monotonic_ns();
        // Every entry is stamped afresh, so all look opened within the last 50 s.
        for i in 0..size {
            let (key, value) = entry(i as u32, now);
            table
                .insert(key, value, 0)
                .with_context(|| format!("writing conntrack entry {i}"))?;
        }
        eprintln!("netseg-bench: conntrack scan, {size} entries");
        let mut repetitions = Vec::new();
        for _ in 0..plan.repeats {
            let measured = quiet::measure(plan.disturbance_threshold, plan.attempts, || {
                scan_once(table, &context, size, now)
            });
            repetitions.push((measured.value.map_err(anyhow::Error::msg)?, measured.others));
        }
        results.push((size, repetitions));
    }
    Ok(report(plan, &results))
}

/// One tracker's first, steady and due readings of the table, whose
/// entries were stamped at `filled_ns`. The tracker is told that clock
/// (and one update interval later for the due reading), so the readings do
/// not depend on how long the benchmark has been running.
fn scan_once(
    table: &HashMap<MapData, ConnKey, ConnValue>,
    context: &FlowContext,
    size: usize,
    filled_ns: u64,
) -> Result<ScanTimes> {
    let metrics = Metrics::new();
    let lines = Rc::new(Cell::new(0));
    let sink = LineCount(lines.clone());
    let mut writer = FlowWriter::new(sink, monotonic_epoch(), Some("node-1"), &metrics);
    let mut tracker = Connections::new(UPDATE_EVERY, 0);
    let mut scan = |now: u64| -> Result<(f64, f64, u64)> {
        let started = thread_cpu_ns();
        let entries = read_whole(table).context("reading CONNECTIONS")?;
        let read = thread_cpu_ns() - started;
        ensure!(
            entries.len() == size,
            "read {} of {size} entries",
            entries.len()
        );
        let reading = Reading {
            taken_ns: now,
            entries,
        };
        let started = thread_cpu_ns();
        tracker.scan(reading, context, &mut writer)?;
        writer.flush()?;
        let scanned = thread_cpu_ns() - started;
        Ok((ms(read), ms(scanned), lines.replace(0)))
    };
    let (_, first, written) = scan(filled_ns)?;
    ensure!(written == 0, "a first reading wrote {written} records");
    let (read, steady, written) = scan(filled_ns)?;
    ensure!(written == 0, "a steady reading wrote {written} records");
    let (_, due, written) = scan(filled_ns + UPDATE_EVERY.as_nanos() as u64)?;
    ensure!(
        written == size as u64,
        "a reading an interval later wrote {written} records for {size} connections"
    );
    Ok(ScanTimes {
        read,
        first,
        steady,
        due,
    })
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// A sink that counts the lines written to it.
struct LineCount(Rc<Cell<u64>>);

impl Write for LineCount {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let lines = bytes.iter().filter(|b| **b == b'\n').count() as u64;
        self.0.set(self.0.get() + lines);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// CLOCK_MONOTONIC, the programs' clock, in nanoseconds.
fn monotonic_ns() -> u64 {
    netseg::datapath::remembered::monotonic_ns()
}

/// Open connection `i`: local pod `i % 100` with one of 10,000 pods; even
/// ones opened by the local pod, odd ones by the other; one in ten UDP.
fn entry(i: u32, now: u64) -> (ConnKey, ConnValue) {
    let local = i % LOCAL_PODS;
    let peer = (i.wrapping_mul(7919)) % PODS;
    let local_port = (1024 + i / LOCAL_PODS) as u16;
    let (protocol, service_port): (u8, u16) = if i.is_multiple_of(10) {
        (PROTO_UDP, 53)
    } else {
        (PROTO_TCP, 8080)
    };
    let (origin, src, src_port, dst, dst_port) = if i.is_multiple_of(2) {
        (
            DIRECTION_EGRESS,
            pod(local),
            local_port,
            pod(peer),
            service_port,
        )
    } else {
        (
            DIRECTION_INGRESS,
            pod(peer),
            local_port,
            pod(local),
            service_port,
        )
    };
    let ends = Ends {
        src: mapped(src),
        src_port: src_port.to_be(),
        dst: mapped(dst),
        dst_port: dst_port.to_be(),
    };
    let key = ConnKey::of(FIRST_IFINDEX + local, origin, protocol, &ends);
    let packets = [u64::from(i % 1000) + 1, u64::from(i % 800) + 1];
    let value = ConnValue {
        last_seen_ns: now - u64::from(i % 1000) * 1_000_000,
        revision: 1,
        rule: FIRST_COMPILED_RULE + i % RULES,
        state: CONN_OPEN,
        origin,
        _pad: [0; 3],
        opened_ns: now - u64::from(i % 50 + 1) * SECOND_NS,
        traffic: [
            traffic::counted(packets[0], packets[0] * 600),
            traffic::counted(packets[1], packets[1] * 1400),
        ],
    };
    (key, value)
}

fn pod(n: u32) -> Ipv4Addr {
    Ipv4Addr::new(10, 244, (n / 256) as u8, n as u8)
}

fn mapped(address: Ipv4Addr) -> [u8; 16] {
    address.to_ipv6_mapped().octets()
}

/// A pod of a Deployment, named as the compiler names it.
fn pod_party(pod: PodRef) -> Arc<PodParty> {
    let app = pod.name.split('-').next().unwrap_or_default().to_owned();
    Arc::new(PodParty {
        pod,
        workload: Some(Workload {
            kind: "Deployment".into(),
            name: app.as_str().into(),
        }),
        labels: Arc::new(BTreeMap::from([("app".to_owned(), app)])),
        segments: Vec::new(),
    })
}

/// Names for every party and rule of the entries, as the daemon builds them.
fn flow_context() -> FlowContext {
    let pod_ref =
        |n: u32| PodRef::new(format!("team-{}", n / 20), format!("app-7d9f8b6c5-{n:05x}"));
    let endpoints = (0..LOCAL_PODS)
        .map(|n| (FIRST_IFINDEX + n, pod_ref(n)))
        .collect();
    let pod_addresses = (0..PODS)
        .map(|n| (IpAddr::V4(pod(n)), pod_party(pod_ref(n))))
        .collect();
    let verdicts = (0..RULES)
        .map(|n| {
            let rule = RuleRef {
                kind: PolicyKind::NetworkPolicy,
                band: Band::NetworkPolicy,
                namespace: format!("team-{}", n % 500),
                name: format!("allow-{n}"),
                direction: Direction::Ingress,
                index: 0,
                rule_name: None,
                action: Action::Accept,
            };
            (
                FIRST_COMPILED_RULE + n,
                Verdict::plain(true, Decider::Rule(rule)),
            )
        })
        .collect();
    let compiled = Compiled {
        pod_addresses,
        verdicts,
        ..Compiled::default()
    };
    let naming = Naming {
        endpoints: &endpoints,
        compiled: &compiled,
        node_addresses: &[IpAddr::V4(Ipv4Addr::new(192, 168, 0, 10))],
        labels: &FlowLabels::default(),
    };
    FlowContext::new(&naming, &FlowContext::default())
}

fn report(plan: &ScanPlan, results: &[(usize, Vec<(ScanTimes, Disturbance)>)]) -> String {
    let interval = SCAN_INTERVAL.as_secs_f64() * 1e3;
    let update = UPDATE_EVERY.as_secs_f64() * 1e3;
    let mut md = format!(
        "#### The exporter's reading of the conntrack table (ms; median [min–max] of {} repetitions)\n\n\
         | entries | read the table | tracker, steady | tracker, first reading | tracker, a record each | share of a core at {:.0} s ¹ |\n\
         |---|---|---|---|---|---|\n",
        plan.repeats,
        SCAN_INTERVAL.as_secs_f64()
    );
    let mut most: f64 = 0.0;
    for (size, repetitions) in results {
        let column = |f: fn(&ScanTimes) -> f64| -> Vec<f64> {
            repetitions.iter().map(|(t, _)| f(t)).collect()
        };
        let cell = |values: Vec<f64>| match summarize(&values) {
            Some(s) => format!("{:.1} [{:.1}–{:.1}]", s.median, s.min, s.max),
            None => "–".to_owned(),
        };
        let share = column(|t| t.read + t.steady);
        let share: Vec<f64> = share
            .iter()
            .zip(column(|t| t.due - t.steady))
            .map(|(scan, records)| scan / interval + records / update)
            .collect();
        let share = summarize(&share).map_or("–".to_owned(), |s| {
            format!(
                "{:.1} % [{:.1}–{:.1}]",
                s.median * 100.0,
                s.min * 100.0,
                s.max * 100.0
            )
        });
        let _ = writeln!(
            md,
            "| {size} | {} | {} | {} | {} | {share} |",
            cell(column(|t| t.read)),
            cell(column(|t| t.steady)),
            cell(column(|t| t.first)),
            cell(column(|t| t.due)),
        );
        most = repetitions
            .iter()
            .map(|(_, others)| others.other_cores)
            .fold(most, f64::max);
    }
    let _ = writeln!(
        md,
        "\n¹ (iterate + steady) every {:.0} s, plus (a record each − steady) once per {:.0} s update interval. Others used at most {:.0} % of a core during a repetition.",
        SCAN_INTERVAL.as_secs_f64(),
        UPDATE_EVERY.as_secs_f64(),
        most * 100.0
    );
    md
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn a_full_table_of_entries_are_distinct_open_connections() {
        let now = 100 * SECOND_NS;
        let entries: Vec<(ConnKey, ConnValue)> = (0..262_144).map(|i| entry(i, now)).collect();
        let keys: HashSet<ConnKey> = entries.iter().map(|(key, _)| *key).collect();
        assert_eq!(keys.len(), entries.len());
        for (key, value) in &entries {
            assert!(!value.expired(key.protocol, now), "{key:?}");
            assert!(now - value.opened_ns < UPDATE_EVERY.as_nanos() as u64);
        }
    }
}
