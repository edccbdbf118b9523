//! The flow log under a flood of denied flows: bounded in records and
//! bytes, rotated at its size limit, and still counting every denial.

mod common;

use std::{
    net::{IpAddr, SocketAddr, UdpSocket},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use common::{World, world, world_with};
use netseg_testbed::{Family, Pod, in_netns};
use serde_json::Value;

/// A port nothing listens on and no policy allows.
const DENIED_PORT: u16 = 9999;
/// The flood's source ports: 60,000 distinct flows.
const SOURCE_PORTS: std::ops::Range<u16> = 2000..62000;

/// Sends one datagram from each source port to `to`, round after round,
/// until `length` has passed. Returns the datagrams the pod's kernel accepted.
fn flood(from: &Pod, to: IpAddr, length: Duration) -> Result<u64> {
    in_netns(from.netns_name(), || -> Result<u64> {
        let deadline = Instant::now() + length;
        let target = SocketAddr::new(to, DENIED_PORT);
        let mut sent = 0;
        while Instant::now() < deadline {
            for port in SOURCE_PORTS {
                let socket = UdpSocket::bind(("0.0.0.0", port))
                    .with_context(|| format!("binding UDP port {port}"))?;
                sent += socket.send_to(b"flood", target).map_or(0, |_| 1);
                if port % 1024 == 0 && Instant::now() >= deadline {
                    break;
                }
            }
        }
        Ok(sent)
    })?
}

/// `count` datagrams of one flow from `from` to `to`.
fn send_one_flow(from: &Pod, to: IpAddr, count: u32) -> Result<()> {
    in_netns(from.netns_name(), || -> Result<()> {
        let socket = UdpSocket::bind("0.0.0.0:0")?;
        for _ in 0..count {
            socket.send_to(b"quiet", SocketAddr::new(to, DENIED_PORT))?;
        }
        Ok(())
    })?
}

/// The flow log and the files it was rotated into, oldest first.
fn log_files(current: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = (1..100)
        .map(|n| PathBuf::from(format!("{}.{n}", current.display())))
        .take_while(|path| path.exists())
        .collect();
    files.reverse();
    files.push(current.to_owned());
    files
}

/// Every record of the log and its rotated files, and their bytes.
fn records(current: &Path) -> Result<(Vec<Value>, u64)> {
    let mut records = Vec::new();
    let mut bytes = 0;
    for path in log_files(current) {
        let text = std::fs::read_to_string(&path)?;
        bytes += text.len() as u64;
        for line in text.lines() {
            records.push(serde_json::from_str(line).with_context(|| format!("line {line}"))?);
        }
    }
    Ok((records, bytes))
}

/// `policy-denied` denials the log accounts for: each record stands for
/// `count` packets. Other denials (a pod's first neighbour discovery before
/// its endpoint is published, say) are not the test's traffic.
fn denials_logged(records: &[Value]) -> u64 {
    records
        .iter()
        .filter(|r| r["verdict"] == "deny" && r["reason"] == "policy-denied")
        .map(|r| r["count"].as_u64().unwrap_or(1))
        .sum()
}

/// Waits until the programs counted `expected` denied packets and the log
/// and the lost-events counter account for each, and returns (records, bytes).
fn settled_accounting(w: &mut World, expected: u64) -> Result<(Vec<Value>, u64)> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let status = w.daemon.status()?.context("a status file")?;
        let denied = status.counters.get("policy-denied").copied().unwrap_or(0);
        let lost = status.counters.get("events-lost").copied().unwrap_or(0);
        let (records, bytes) = records(&w.daemon.flow_log_path())?;
        let logged = denials_logged(&records);
        if (denied == expected && logged + lost == denied) || Instant::now() >= deadline {
            assert_eq!(
                denied, expected,
                "the programs saw every datagram the pod sent"
            );
            assert_eq!(
                logged + lost,
                denied,
                "denials in the log ({logged}) plus events lost ({lost}) account for every \
                 denied packet the programs saw ({denied}); {} records",
                records.len()
            );
            return Ok((records, bytes));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// One denied datagram so that the pod has resolved its gateway before the
/// flood (a datagram waiting for ARP may be dropped before any program sees it).
fn resolve_gateway(w: &mut World) -> Result<()> {
    send_one_flow(&w.a, w.b.ip(Family::V4), 1)?;
    w.daemon
        .wait_status("the first denial", Duration::from_secs(10), |s| {
            s.counters.get("policy-denied") == Some(&1)
        })?;
    Ok(())
}

#[test]
fn a_flood_of_denied_flows_is_bounded_and_every_denial_is_counted() -> Result<()> {
    // Rotation at 64 KiB, with room for every file: no record may be lost
    // when the log rotates.
    let mut w = world_with(
        "flood",
        &["--flow-log-max-bytes", "65536", "--flow-log-keep", "100"],
    )?;
    resolve_gateway(&mut w)?;
    let started = Instant::now();
    let sent = flood(&w.a, w.b.ip(Family::V4), Duration::from_secs(5))?;
    let seconds = started.elapsed().as_secs() + 1;
    let (records, bytes) = settled_accounting(&mut w, sent + 1)?;
    let files = log_files(&w.daemon.flow_log_path());
    eprintln!(
        "flood: {sent} datagrams denied, {} records, {bytes} bytes in {} files",
        records.len(),
        files.len()
    );
    // The default budget: 100 records a second for the endpoint, plus an
    // aggregate a second, over the flood and the seconds it took to settle.
    let bound = 101 * (seconds + 4);
    assert!(
        (records.len() as u64) <= bound,
        "{} records for {sent} denied datagrams (at most {bound})",
        records.len()
    );
    assert!(bytes <= bound * 600, "{bytes} bytes of flow log");
    assert!(
        records
            .iter()
            .any(|r| r["kind"] == "deny-count" && r["endpoint"] == "app/a"),
        "an aggregated record of the flooding endpoint"
    );
    assert!(files.len() >= 2, "the log rotated: {files:?}");
    // The records of the flood were written below the rest of the daemon.
    let threads = thread_nice_values(w.daemon.pid().context("the daemon's pid")?)?;
    let nice_of = |wanted: &str| {
        let mut of = threads
            .iter()
            .filter(|(name, _)| name == wanted)
            .map(|(_, nice)| *nice);
        of.next().filter(|first| of.all(|nice| nice == *first))
    };
    let daemon = nice_of("netseg").context("the main thread")?;
    assert_eq!(
        nice_of("netseg-flows"),
        Some((daemon + 10).min(19)),
        "{threads:?}"
    );
    assert_eq!(nice_of("netseg-attach"), Some(daemon), "{threads:?}");
    Ok(())
}

/// Each thread of process `pid`: its name and nice value.
fn thread_nice_values(pid: u32) -> Result<Vec<(String, i64)>> {
    let mut threads = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let stat = std::fs::read_to_string(task?.path().join("stat"))?;
        // `pid (comm) state ...`: the fields after the name, nice the 17th.
        let (name, rest) = stat
            .split_once(" (")
            .and_then(|(_, rest)| rest.rsplit_once(") "))
            .context("a thread's stat")?;
        let nice = rest.split(' ').nth(16).context("its nice value")?.parse()?;
        threads.push((name.to_owned(), nice));
    }
    Ok(threads)
}

#[test]
fn the_flow_log_rotates_at_its_size_limit_and_keeps_at_most_keep_files() -> Result<()> {
    const MAX_BYTES: u64 = 32 * 1024;
    const KEEP: usize = 2;
    let mut w = world_with(
        "rotate",
        &["--flow-log-max-bytes", "32768", "--flow-log-keep", "2"],
    )?;
    resolve_gateway(&mut w)?;
    // The per-endpoint budget writes about 40 KiB a second: the log
    // rotates more often than it keeps files.
    let sent = flood(&w.a, w.b.ip(Family::V4), Duration::from_secs(4))?;
    // Whatever the files kept, the current one goes on counting the flood.
    w.daemon.wait_for_flow(
        |r| r["kind"] == "deny-count" && r["endpoint"] == "app/a",
        Duration::from_secs(5),
    )?;
    let files = log_files(&w.daemon.flow_log_path());
    assert_eq!(
        files.len(),
        KEEP + 1,
        "the log and {KEEP} rotated files: {files:?}"
    );
    for file in &files {
        let size = std::fs::metadata(file)?.len();
        assert!(size <= MAX_BYTES, "{} has {size} bytes", file.display());
    }
    // Every file holds whole records; the files deleted beyond KEEP took
    // the rest of the denials (the first datagram included).
    let (records, bytes) = records(&w.daemon.flow_log_path())?;
    let logged = denials_logged(&records);
    assert!(
        logged < sent + 1,
        "{logged} of {} denials still in {bytes} bytes: nothing was deleted",
        sent + 1
    );
    Ok(())
}

#[test]
fn denials_of_a_flow_that_went_quiet_still_reach_the_log() -> Result<()> {
    let mut w = world("quiet")?;
    // Five datagrams of one flow within a millisecond, then silence: at
    // most one of them gets a record of its own; the others must be counted
    // in the log anyway, without waiting for a sixth.
    send_one_flow(&w.a, w.b.ip(Family::V4), 5)?;
    let sent = Instant::now();
    let (records, _) = settled_accounting(&mut w, 5)?;
    assert_eq!(denials_logged(&records), 5, "{records:?}");
    assert!(
        sent.elapsed() < Duration::from_secs(4),
        "the log counted them {:?} after the last one",
        sent.elapsed()
    );
    Ok(())
}
