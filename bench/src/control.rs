//! The control plane: policy implementation delay (a manifest written on
//! disk until the daemon's status file shows the new revision, which it
//! writes right after the maps) and the daemon's memory at cluster scale,
//! from a manifests directory and (section `kube`) from the API server.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use netseg_testbed::Manifests;
use netseg_testbed::daemon::DaemonSource;
use serde_json::{Value, json};

use crate::bed::Bed;
use crate::netseg::{NetsegDaemon, rule_walk_policy};
use crate::stats::percentile;
use crate::variants::netseg_manifests;

mod kube;
mod scale;

pub use kube::{KubeScale, run as run_kube};
pub use scale::Scale;

/// Milliseconds from each change (`write_change`: a rename into the
/// manifests directory, a write to the API server) to the status file
/// showing a newer revision; `None` when it did not change in 10 s.
pub fn delays(
    daemon: &mut NetsegDaemon,
    changes: usize,
    mut write_change: impl FnMut(usize) -> Result<()>,
) -> Result<Vec<Option<f64>>> {
    let mut delays = Vec::with_capacity(changes);
    for i in 0..changes {
        let before = daemon.status().map_or(0, |s| s.revision);
        let start = Instant::now();
        write_change(i)?;
        let seen = daemon.wait_for(Duration::from_secs(10), |s| s.revision != before);
        delays.push(seen.ok().map(|_| start.elapsed().as_secs_f64() * 1e3));
        // Let the watcher's 50 ms quiet period pass so changes do not merge.
        std::thread::sleep(Duration::from_millis(120));
    }
    Ok(delays)
}

fn summary_row(what: &str, delays: &[Option<f64>]) -> String {
    let got: Vec<f64> = delays.iter().flatten().copied().collect();
    let missed = delays.len() - got.len();
    format!(
        "| {what} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {missed} |\n",
        delays.len(),
        percentile(&got, 0.0),
        percentile(&got, 50.0),
        percentile(&got, 99.0),
        percentile(&got, 100.0),
    )
}

pub fn run(netseg: &Path, out: &Path, changes: usize, scale: Scale) -> Result<String> {
    let work = out.join("work-control");
    std::fs::create_dir_all(&work)?;
    let mut md = String::from(
        "| what | changes | min ms | p50 ms | p99 ms | max ms | not seen in 10 s |\n|---|---|---|---|---|---|---|\n",
    );
    md.push_str(&small_delay(netseg, &work, changes)?);
    let (rows, memory) = scale::run(netseg, &work, changes.min(20), &scale)?;
    md.push_str(&rows);
    let _ = write!(md, "\n{memory}\n");
    Ok(md)
}

/// The harness of the datapath benchmark with its two policies; each change
/// adds a different /24 ipBlock peer to the server's ingress policy.
fn small_delay(netseg: &Path, work: &Path, changes: usize) -> Result<String> {
    let bed = Bed::new("bench-delay")?;
    let manifests = netseg_manifests(&bed, 0)?;
    let mut daemon = NetsegDaemon::start(
        netseg,
        &bed.node,
        DaemonSource::Manifests(manifests.dir()),
        &work.join("flows.jsonl"),
        work,
        &[],
    )?;
    daemon.wait_for(Duration::from_secs(30), |s| {
        s.endpoints == 2 && s.revision > 0
    })?;
    let delays = delays(&mut daemon, changes, |i| edit_ingress(&manifests, i))?;
    if let Some(status) = daemon.status()
        && !status.problems.is_empty()
    {
        bail!("netseg reported problems: {:?}", status.problems);
    }
    std::fs::write(
        work.join("delays-small.json"),
        serde_json::to_string(&delays)?,
    )?;
    Ok(summary_row(
        "2 pods, 2 policies (the datapath harness)",
        &delays,
    ))
}

fn edit_ingress(manifests: &Manifests, i: usize) -> Result<()> {
    let mut policy: Value = rule_walk_policy("server-ingress", "server", "ingress", 0, "client");
    let peers = policy["spec"]["ingress"][0]["from"]
        .as_array_mut()
        .context("peers")?;
    peers.insert(
        0,
        json!({ "ipBlock": { "cidr": format!("192.168.{}.0/24", i % 250) } }),
    );
    manifests.write("policy-server-ingress.json", &policy.to_string())?;
    Ok(())
}
