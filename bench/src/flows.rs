//! The flow pipeline, fed by real traffic: how many JSON flow records per
//! second the daemon writes, and what its counters say it lost.
//!
//! Two sources: many short allowed connections (one `new-connection` record
//! per enforcing end, so two per connection), and trafgen sending denied
//! UDP packets with random source and destination ports, so nearly every
//! packet is a new denied flow and gets its own record (denials are
//! sampled once a second per flow). The denial record budgets are lifted,
//! so that this measures the pipeline, not the budgets that protect it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use netseg_testbed::daemon::DaemonSource;

use crate::bed::{Bed, CONN_PORT};
use crate::connrate;
use crate::measures::{TX_PACKETS, Trafgen, dev_counter, trafgen_config};
use crate::netseg::NetsegDaemon;
use crate::variants::netseg_manifests;

const DENIED_DST: std::net::Ipv4Addr = std::net::Ipv4Addr::new(172, 31, 255, 1);
const RUN: Duration = Duration::from_secs(3);
/// Denied trafgen rates (packets/s); 0 = as fast as trafgen goes.
const RATES: [u64; 5] = [50_000, 100_000, 200_000, 400_000, 0];

struct Window {
    lines: u64,
    counters: BTreeMap<String, u64>,
    cpu: f64,
}

fn count_lines(path: &Path) -> Result<u64> {
    match fs::read(path) {
        Ok(bytes) => Ok(bytecount(&bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e).context("reading the flow log"),
    }
}

fn bytecount(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|b| **b == b'\n').count() as u64
}

/// Waits until the flow log stops growing and the status file was
/// rewritten (the daemon refreshes counters every 2 s), then reads both.
fn settle(daemon: &mut NetsegDaemon, log: &Path) -> Result<Window> {
    let mut lines = count_lines(log)?;
    let mut stable_since = Instant::now();
    while stable_since.elapsed() < Duration::from_millis(700) {
        std::thread::sleep(Duration::from_millis(100));
        let now = count_lines(log)?;
        if now != lines {
            lines = now;
            stable_since = Instant::now();
        }
    }
    let modified = fs::metadata(&daemon.status_path)?.modified()?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while fs::metadata(&daemon.status_path)?.modified()? == modified && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = daemon
        .wait_for(Duration::from_secs(5), |_| true)
        .context("status")?;
    Ok(Window {
        lines: count_lines(log)?,
        counters: status.counters,
        cpu: daemon.cpu_seconds()?,
    })
}

fn delta(a: &Window, b: &Window, key: &str) -> u64 {
    b.counters
        .get(key)
        .copied()
        .unwrap_or(0)
        .saturating_sub(a.counters.get(key).copied().unwrap_or(0))
}

pub fn run(netseg: &Path, out: &Path) -> Result<String> {
    let work = out.join("work-flows");
    fs::create_dir_all(&work)?;
    let log = work.join("flows.jsonl");
    let _ = fs::remove_file(&log);
    let mut bed = Bed::new("bench-flows")?;
    let manifests = netseg_manifests(&bed, 0)?;
    // The largest budgets: every denied flow may get its own record.
    let unlimited = u32::MAX.to_string();
    // No rotation either: the records are counted as lines of one file.
    let budgets = [
        "--deny-records-per-endpoint",
        unlimited.as_str(),
        "--deny-records-total",
        unlimited.as_str(),
        "--flow-log-max-bytes",
        unlimited.as_str(),
    ];
    let mut daemon = NetsegDaemon::start(
        netseg,
        &bed.node,
        DaemonSource::Manifests(manifests.dir()),
        &log,
        &work,
        &budgets,
    )?;
    daemon.wait_for(Duration::from_secs(30), |s| {
        s.endpoints == 2 && s.revision > 0
    })?;
    bed.start_servers()?;
    let mut md = String::from(
        "| source | offered | records written | records/s | events-lost | events-sampled | daemon CPU | records per daemon CPU-second |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    let before = settle(&mut daemon, &log)?;
    let addr = SocketAddr::new(bed.server_ip().into(), CONN_PORT);
    let conns = connrate::run_clients(&bed.client, addr, 4, RUN)?;
    let after = settle(&mut daemon, &log)?;
    let kinds = record_kinds(&log, before.lines)?;
    md.push_str(&row(
        &format!(
            "short TCP connections, 4 clients ({} failed; records by verdict/reason: {kinds})",
            conns.failed
        ),
        &format!(
            "{} conn ({:.0}/s) → {} events",
            conns.completed,
            conns.per_second(),
            2 * conns.completed
        ),
        &before,
        &after,
        conns.elapsed,
    ));
    let mut before = after;
    for rate in RATES {
        // An address no rule allows: denied at the client's egress.
        let config = trafgen_config(&bed, DENIED_DST, "drnd(2)", "drnd(2)")?;
        let sent_before = dev_counter(&bed.client, "eth0", TX_PACKETS)?;
        let start = Instant::now();
        let trafgen = Trafgen::start(&bed, &config, (rate > 0).then_some(rate))?;
        std::thread::sleep(RUN);
        drop(trafgen);
        let elapsed = start.elapsed();
        let sent = dev_counter(&bed.client, "eth0", TX_PACKETS)? - sent_before;
        let after = settle(&mut daemon, &log)?;
        let offered = if rate == 0 {
            "as fast as trafgen sends".to_owned()
        } else {
            format!("{rate} pps")
        };
        md.push_str(&row(
            &format!("denied UDP, random ports, {offered}"),
            &format!(
                "{sent} packets ({:.0}/s)",
                sent as f64 / elapsed.as_secs_f64()
            ),
            &before,
            &after,
            elapsed,
        ));
        before = after;
    }
    Ok(md)
}

/// `verdict/reason: count` of the records after the first `skip` lines.
fn record_kinds(log: &Path, skip: u64) -> Result<String> {
    let text = fs::read_to_string(log)?;
    let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
    for line in text.lines().skip(skip as usize) {
        let record: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
        let kind = format!(
            "{}/{}",
            record["verdict"].as_str().unwrap_or("?"),
            record["reason"].as_str().unwrap_or("?")
        );
        *kinds.entry(kind).or_default() += 1;
    }
    Ok(kinds
        .iter()
        .map(|(kind, n)| format!("{kind}: {n}"))
        .collect::<Vec<_>>()
        .join(", "))
}

fn row(source: &str, offered: &str, a: &Window, b: &Window, elapsed: Duration) -> String {
    let records = b.lines - a.lines;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| {source} | {offered} | {records} | {:.0} | {} | {} | {:.2} s | {:.0} |",
        records as f64 / elapsed.as_secs_f64(),
        delta(a, b, "events-lost"),
        delta(a, b, "events-sampled"),
        b.cpu - a.cpu,
        records as f64 / (b.cpu - a.cpu).max(0.01),
    );
    s
}
