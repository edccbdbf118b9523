//! The control plane: policy implementation delay (a manifest written on
//! disk until the daemon's status file shows the new revision, which it
//! writes right after the maps) and the daemon's memory at cluster scale,
//! from a manifests directory and (section `kube`) from the API server.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use netseg_testbed::Manifests;
use netseg_testbed::daemon::{DaemonSource, LastChange};
use serde_json::{Value, json};

use crate::bed::Bed;
use crate::netseg::{NetsegDaemon, rule_walk_policy};
use crate::stats::percentile;
use crate::variants::netseg_manifests;

mod kube;
mod scale;
mod stages;

pub use kube::{KubeScale, run as run_kube};
pub use scale::Scale;

/// Milliseconds from each change (`write_change`: a rename into the
/// manifests directory, a write to the API server) to the status file
/// showing a newer revision; `None` when it did not change in 10 s.
pub fn delays(
    daemon: &mut NetsegDaemon,
    changes: usize,
    write_change: impl FnMut(usize) -> Result<()>,
) -> Result<Vec<Option<f64>>> {
    let timed = timed_delays(daemon, changes, write_change)?;
    Ok(timed.into_iter().map(|timed| timed.end_to_end).collect())
}

/// One change: the delay seen from outside, and the daemon's own account
/// of it (the status file's `last_change`, when it names the revision seen).
pub struct Timed {
    pub end_to_end: Option<f64>,
    pub daemon: Option<LastChange>,
}

/// [`delays`], each with the daemon's breakdown of it by stage.
pub fn timed_delays(
    daemon: &mut NetsegDaemon,
    changes: usize,
    mut write_change: impl FnMut(usize) -> Result<()>,
) -> Result<Vec<Timed>> {
    let mut timed = Vec::with_capacity(changes);
    for i in 0..changes {
        let before = daemon.status().map_or(0, |s| s.revision);
        let start = Instant::now();
        write_change(i)?;
        let seen = daemon.wait_for(Duration::from_secs(10), |s| s.revision != before);
        let end_to_end = seen
            .as_ref()
            .ok()
            .map(|_| start.elapsed().as_secs_f64() * 1e3);
        let stages = seen.ok().and_then(|status| {
            let change = status.last_change?;
            (change.revision == status.revision).then_some(change)
        });
        timed.push(Timed {
            end_to_end,
            daemon: stages,
        });
        // Past the watcher's 50 ms hold after a notification, so that each
        // change is read on its own.
        std::thread::sleep(Duration::from_millis(120));
    }
    Ok(timed)
}

fn end_to_end(timed: &[Timed]) -> Vec<Option<f64>> {
    timed.iter().map(|timed| timed.end_to_end).collect()
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
    let small_name = "2 pods, 2 policies (the datapath harness)";
    let small = small_delay(netseg, &work, changes)?;
    md.push_str(&summary_row(small_name, &end_to_end(&small)));
    let (scale_name, at_scale, memory) = scale::run(netseg, &work, changes.min(20), &scale)?;
    md.push_str(&summary_row(&scale_name, &end_to_end(&at_scale)));
    let _ = write!(md, "\n{memory}\n\n");
    md.push_str(&stages::table(&[
        (small_name, &small),
        (&scale_name, &at_scale),
    ]));
    Ok(md)
}

/// The harness of the datapath benchmark with its two policies; each change
/// adds a different /24 ipBlock peer to the server's ingress policy.
fn small_delay(netseg: &Path, work: &Path, changes: usize) -> Result<Vec<Timed>> {
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
    let timed = timed_delays(&mut daemon, changes, |i| edit_ingress(&manifests, i))?;
    if let Some(status) = daemon.status()
        && !status.problems.is_empty()
    {
        bail!("netseg reported problems: {:?}", status.problems);
    }
    std::fs::write(
        work.join("delays-small.json"),
        serde_json::to_string(&end_to_end(&timed))?,
    )?;
    Ok(timed)
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
