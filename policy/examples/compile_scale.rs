//! One full compile and a series of recompiles of the benchmark cluster
//! (`benches/cluster`), timed on the CPU as well as by the clock, with the
//! process's peak memory: what `benches/compile.rs` cannot say on a shared
//! machine (criterion times the wall clock) or at all (memory).
//!
//! `cargo run --release -p netseg-policy --example compile_scale -- [large] [relabel|edit] [ROUNDS]`
//!
//! `relabel` or `edit` times only that change (to profile it alone).
//!
//! Memory is the process's own (`/proc/self/status`): `VmRSS` once the
//! snapshot is built (the Kubernetes objects the compiler reads, which a
//! daemon holds as well), then `VmHWM` (the peak) once a fresh compiler has
//! compiled it and holds its memo and the output: the difference is what
//! compiling adds. Linux only.

#[path = "../tests/common/mod.rs"]
mod common;

#[path = "../benches/cluster/mod.rs"]
mod cluster;

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use cluster::{Scale, cluster, edited, options, relabelled, summary};
use netseg_policy::{Compiled, Compiler, Snapshot, diff_maps};

/// A change to the cluster: the snapshot after it.
type Change = fn(&Snapshot) -> Snapshot;

fn main() -> Result<()> {
    let mut scale = Scale::DEFAULT;
    let mut rounds = 15;
    let mut only = None;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "large" => scale = Scale::LARGE,
            "relabel" => only = Some("pod relabel"),
            "edit" => only = Some("policy edit"),
            n => {
                rounds = n
                    .parse()
                    .with_context(|| format!("not a round count: {n}"))?
            }
        }
    }
    let snapshot = cluster(scale);
    let options = options();
    let snapshot_rss = status_kib("VmRSS")?;
    let mut compiler = Compiler::new();
    let (base, full) = timed(|| compiler.compile(&snapshot, &options))?;
    let peak = status_kib("VmHWM")?;
    println!("{}", summary(&snapshot, &base));
    println!("full compile (fresh compiler): {full}");
    println!(
        "memory: {} MiB with the snapshot built; peak {} MiB after compiling, so compiling adds {} MiB",
        snapshot_rss / 1024,
        peak / 1024,
        (peak - snapshot_rss) / 1024
    );
    let changes: [(&str, Change); 2] = [("pod relabel", relabelled), ("policy edit", edited)];
    for (name, change) in changes {
        if only.is_some_and(|only| only != name) {
            continue;
        }
        let changed = change(&snapshot);
        recompiles(&mut compiler, &base, (&snapshot, &changed), name, rounds)?;
    }
    Ok(())
}

/// Recompiles `rounds` times after the change from `snapshots.0` to
/// `snapshots.1` and back, printing the median times.
fn recompiles(
    compiler: &mut Compiler,
    base: &Compiled,
    snapshots: (&Snapshot, &Snapshot),
    name: &str,
    rounds: usize,
) -> Result<()> {
    let options = options();
    let mut times = Vec::new();
    let mut touched = 0;
    for _ in 0..rounds {
        let (after, time) = timed(|| compiler.compile(snapshots.1, &options))?;
        touched = touched_entries(base, &after);
        drop(after);
        times.push(time);
        let (back, time) = timed(|| compiler.compile(snapshots.0, &options))?;
        drop(back);
        times.push(time);
    }
    // On-CPU time can be counted in scheduler ticks (4 ms here): the
    // median of such counts is a multiple of the tick, their mean is not.
    let cpu = times.iter().map(|t| t.cpu).sum::<Duration>() / times.len().max(1) as u32;
    times.sort_by_key(|t| t.wall);
    let wall = times[times.len() / 2].wall;
    println!(
        "recompile after one {name} (and back), {} times: {:.1} ms on the CPU (mean), {:.1} ms wall (median); the diff touches {touched} entries",
        times.len(),
        ms(cpu),
        ms(wall)
    );
    Ok(())
}

/// How many entries of the three maps the diff from `a` to `b` writes or removes.
fn touched_entries(a: &Compiled, b: &Compiled) -> usize {
    let policy = diff_maps(&a.policy, &b.policy);
    let ipcache = diff_maps(&a.ipcache, &b.ipcache);
    let endpoints = diff_maps(&a.endpoints, &b.endpoints);
    (policy.upserts.len() + policy.removals.len())
        + (ipcache.upserts.len() + ipcache.removals.len())
        + (endpoints.upserts.len() + endpoints.removals.len())
}

struct Time {
    wall: Duration,
    cpu: Duration,
}

impl std::fmt::Display for Time {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.1} ms on the CPU, {:.1} ms wall",
            ms(self.cpu),
            ms(self.wall)
        )
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// `run`'s result, how long it took and how long this thread was on a CPU
/// meanwhile (the scheduler's count, so that other processes sharing the
/// CPUs do not count).
fn timed<T>(run: impl FnOnce() -> T) -> Result<(T, Time)> {
    let (cpu, wall) = (thread_cpu()?, Instant::now());
    let out = run();
    let time = Time {
        wall: wall.elapsed(),
        cpu: thread_cpu()? - cpu,
    };
    Ok((out, time))
}

fn thread_cpu() -> Result<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat")
        .context("reading /proc/thread-self/schedstat")?;
    let ns = stat
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .context("/proc/thread-self/schedstat: no on-CPU time")?;
    Ok(Duration::from_nanos(ns))
}

/// A `kB` field of `/proc/self/status`.
fn status_kib(field: &str) -> Result<u64> {
    let status =
        std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().strip_suffix("kB")?.trim().parse().ok())
        .with_context(|| format!("/proc/self/status: no {field}"))
}
