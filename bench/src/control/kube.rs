//! The daemon in Kubernetes mode at cluster scale: the fake API server
//! serves realistic pods (see [`objects`]) across thousands of namespaces,
//! the node's own pods and a handful of NetworkPolicies, and the real
//! daemon (`--kubeconfig`) lists and watches it. Measured: the initial
//! sync (daemon start to the status file showing the source synced,
//! nothing awaited and a published revision), the daemon's memory, the
//! cost of one pod's label change (to the next published revision) and of
//! a status-only change (which must not recompile), and the bytes the fake
//! sent.
//!
//! The fake runs on a thread of this process inside the node namespace,
//! on that namespace's loopback: nothing outside the benchmark's
//! namespaces, and the daemon's memory and CPU (a process of its own) do
//! not include it.

mod objects;

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use netseg_fake_apiserver::FakeApiServer;
use netseg_testbed::daemon::DaemonSource;
use netseg_testbed::{Node, Pod, in_netns};
use serde::Serialize;
use serde_json::{Value, json};

use super::delays;
use super::scale::{EDITED_NS, EXTRA_LOCAL_PODS, local_pod, namespace, namespace_name, policy};
use crate::netseg::NetsegDaemon;
use crate::quiet::{CpuSnapshot, wait_quiet};
use crate::stats::{percentile, summarize};

/// The size of the cluster the fake serves.
#[derive(Debug, Clone, Copy)]
pub struct KubeScale {
    pub pods: usize,
    pub namespaces: usize,
}

/// What one run (a fresh fake and daemon) measured.
#[derive(Debug, Serialize)]
struct Run {
    pods: usize,
    namespaces: usize,
    nodes: usize,
    /// Daemon start to synced, nothing awaited, revision > 0, local pods enforced.
    sync_s: f64,
    /// The daemon's CPU time (user + system) at that moment.
    sync_cpu_s: f64,
    /// CPU time of this process during the sync: the fake serving the
    /// lists, plus polling the status file.
    fake_cpu_s: f64,
    /// What processes this benchmark did not start used during the sync.
    sync_disturbance: f64,
    hwm_at_sync_kib: u64,
    /// 3 s after the sync.
    rss_kib: u64,
    /// After the pod changes.
    rss_after_kib: u64,
    hwm_after_kib: u64,
    /// The daemon's CPU use with nothing changing, in cores.
    idle_cores: f64,
    /// Bytes of pod list responses the fake sent, and how many pages.
    pod_list_bytes: u64,
    pod_list_requests: usize,
    /// Milliseconds from a label change to the next published revision.
    label: Vec<Option<f64>>,
    label_cpu_ms: f64,
    label_watch_bytes: f64,
    /// Milliseconds from a status-only change to the daemon taking in its
    /// source again (`reloads`); `None` when it did not within 500 ms.
    status_reload: Vec<Option<f64>>,
    /// Status-only changes after which the revision changed (should be 0).
    status_revisions: usize,
    status_cpu_ms: f64,
    status_watch_bytes: f64,
    problems: usize,
}

/// Runs every scale `repeats` times, interleaved; returns the markdown.
pub fn run(
    netseg: &Path,
    work: &Path,
    scales: &[KubeScale],
    repeats: usize,
    changes: usize,
) -> Result<String> {
    let mut runs = Vec::new();
    for repeat in 0..repeats {
        for scale in scales {
            eprintln!(
                "netseg-bench: kube source, {} pods, repetition {}",
                scale.pods,
                repeat + 1
            );
            if !wait_quiet(0.3, Duration::from_secs(1), Duration::from_secs(30)) {
                eprintln!("netseg-bench:   the machine is busy; measuring anyway");
            }
            let run = run_once(netseg, work, *scale, changes)?;
            eprintln!("netseg-bench:   {}", serde_json::to_string(&run)?);
            runs.push(run);
        }
    }
    std::fs::write(work.join("kube.json"), serde_json::to_string(&runs)?)?;
    Ok(report(scales, &runs))
}

fn run_once(netseg: &Path, work: &Path, scale: KubeScale, changes: usize) -> Result<Run> {
    let node = Node::new("bench-kube")?;
    let local: Vec<Pod> = (0..EXTRA_LOCAL_PODS)
        .map(|i| node.add_pod(&format!("{}/local-{i}", namespace_name(i + 1))))
        .collect::<Result<_>>()?;
    // Its listening socket, and so every connection, is in the node namespace.
    let fake = in_netns(node.netns_name(), FakeApiServer::start)??;
    let cluster = populate(&fake, &node, &local, scale)?;
    let kubeconfig = work.join("kubeconfig");
    fake.write_kubeconfig(&kubeconfig)?;
    let others = CpuSnapshot::take();
    let own_cpu = own_cpu_seconds();
    let started = Instant::now();
    let mut daemon = NetsegDaemon::start(
        netseg,
        &node,
        DaemonSource::Kubeconfig(&kubeconfig),
        &work.join("flows-kube.jsonl"),
        work,
        &[],
    )?;
    let status = daemon.wait_for(Duration::from_secs(600), |s| {
        s.synced && s.waiting_for.is_none() && s.revision > 0 && s.endpoints == local.len() as u64
    })?;
    let sync_s = started.elapsed().as_secs_f64();
    let sync_cpu_s = daemon.cpu_seconds()?;
    let fake_cpu_s = own_cpu_seconds() - own_cpu;
    let sync_disturbance = others.since().other_cores;
    let (_, hwm_at_sync_kib) = daemon.memory_kib()?;
    std::thread::sleep(Duration::from_secs(3));
    let (rss_kib, _) = daemon.memory_kib()?;
    let idle_cores = cpu_rate(&daemon, Duration::from_secs(5))?;
    let (pod_list_bytes, pod_list_requests) = pod_lists(&fake)?;

    let mut edited = cluster.edited.clone();
    let (label_cpu_ms, label_watch_bytes, label) =
        costs(&mut daemon, &fake, idle_cores, changes, |daemon| {
            delays(daemon, changes, |i| {
                let tier = if i % 2 == 0 { "db" } else { "frontend" };
                edited["metadata"]["labels"]["tier"] = json!(tier);
                fake.apply(edited.clone())?;
                Ok(())
            })
        })?;

    let mut flapping = cluster.flapping.clone();
    let mut status_revisions = 0;
    let (status_cpu_ms, status_watch_bytes, status_reload) =
        costs(&mut daemon, &fake, idle_cores, changes, |daemon| {
            let mut reloads = Vec::with_capacity(changes);
            for i in 0..changes {
                let before = daemon.status().context("status file")?;
                let start = Instant::now();
                let since = format!("2026-11-30T09:{:02}:{:02}Z", i / 60, i % 60);
                objects::set_ready(&mut flapping, i % 2 == 1, &since);
                fake.apply(flapping.clone())?;
                let seen =
                    daemon.wait_for(Duration::from_millis(500), |s| s.reloads > before.reloads);
                reloads.push(seen.ok().map(|_| start.elapsed().as_secs_f64() * 1e3));
                std::thread::sleep(Duration::from_millis(300).saturating_sub(start.elapsed()));
                let after = daemon.status().context("status file")?;
                if after.revision != before.revision {
                    status_revisions += 1;
                }
            }
            Ok(reloads)
        })?;
    let (rss_after_kib, hwm_after_kib) = daemon.memory_kib()?;
    drop(daemon);
    drop(fake);
    Ok(Run {
        pods: scale.pods,
        namespaces: scale.namespaces,
        nodes: cluster.nodes,
        sync_s,
        sync_cpu_s,
        fake_cpu_s,
        sync_disturbance,
        hwm_at_sync_kib,
        rss_kib,
        rss_after_kib,
        hwm_after_kib,
        idle_cores,
        pod_list_bytes,
        pod_list_requests,
        label,
        label_cpu_ms,
        label_watch_bytes,
        status_reload,
        status_revisions,
        status_cpu_ms,
        status_watch_bytes,
        problems: status.problems.len(),
    })
}

/// Runs `changes` changes through `measure`; returns the daemon's CPU
/// milliseconds per change beyond its idle use, and the watch bytes the
/// fake sent per change, with what `measure` returned.
fn costs<T>(
    daemon: &mut NetsegDaemon,
    fake: &FakeApiServer,
    idle_cores: f64,
    changes: usize,
    measure: impl FnOnce(&mut NetsegDaemon) -> Result<T>,
) -> Result<(f64, f64, T)> {
    let cpu = daemon.cpu_seconds()?;
    let bytes = fake.watch_bytes_sent();
    let start = Instant::now();
    let measured = measure(daemon)?;
    let elapsed = start.elapsed().as_secs_f64();
    let spent = daemon.cpu_seconds()? - cpu - idle_cores * elapsed;
    let per = |total: f64| total / changes.max(1) as f64;
    Ok((
        per(spent * 1e3),
        per((fake.watch_bytes_sent() - bytes) as f64),
        measured,
    ))
}

/// User and system CPU time of this process, all threads.
fn own_cpu_seconds() -> f64 {
    // SAFETY: an all-zero rusage is valid, and getrusage only writes into it.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

fn cpu_rate(daemon: &NetsegDaemon, window: Duration) -> Result<f64> {
    let before = daemon.cpu_seconds()?;
    std::thread::sleep(window);
    Ok((daemon.cpu_seconds()? - before) / window.as_secs_f64())
}

/// Bytes and pages of the pod lists the fake answered.
fn pod_lists(fake: &FakeApiServer) -> Result<(u64, usize)> {
    let lists: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.verb == "list" && r.path_and_query.starts_with("/api/v1/pods"))
        .collect();
    let bytes = lists
        .iter()
        .map(|r| r.body_bytes.context("a list body is sent whole"))
        .sum::<Result<u64>>()?;
    Ok((bytes, lists.len()))
}

/// What the benchmark changes later.
struct Cluster {
    nodes: usize,
    /// A frontend pod in the namespace of the local backend `local-1`,
    /// whose ingress policy admits frontends: its tier decides an entry.
    edited: Value,
    /// A pod of the same namespace whose readiness flaps.
    flapping: Value,
}

fn populate(fake: &FakeApiServer, node: &Node, local: &[Pod], scale: KubeScale) -> Result<Cluster> {
    let nodes = scale.pods.div_ceil(objects::PODS_PER_NODE);
    fake.apply(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": { "name": node.name(), "labels": { "kubernetes.io/hostname": node.name() } },
        "status": { "addresses": [{ "type": "InternalIP", "address": node.ipv4().to_string() }] },
    }))?;
    for i in 0..nodes {
        fake.apply(objects::node(i))?;
    }
    fake.apply(
        json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": "kube-system", "labels": { "kubernetes.io/metadata.name": "kube-system" } } }),
    )?;
    for i in 0..2 {
        let mut dns = objects::pod("kube-system", i, scale.pods + i);
        dns["metadata"]["name"] = json!(format!("coredns-{i}"));
        dns["metadata"]["labels"] = json!({ "k8s-app": "kube-dns" });
        fake.apply(dns)?;
    }
    let per_ns = scale.pods.div_ceil(scale.namespaces);
    let mut index = 0;
    for ns in 0..scale.namespaces {
        fake.apply(namespace(ns))?;
        for j in 0..per_ns.min(scale.pods - index) {
            fake.apply(objects::pod(&namespace_name(ns), j, index))?;
            index += 1;
        }
    }
    for (j, pod) in local.iter().enumerate() {
        fake.apply(local_pod(pod, j)?)?;
        // Four policies in each local pod's namespace: the shapes of `scale`.
        for shape in 0..4 {
            fake.apply(policy(j + 1, shape, 0))?;
        }
    }
    if per_ns < 2 || scale.namespaces <= EDITED_NS {
        bail!("the changed pods need two pods in namespace {EDITED_NS}");
    }
    let first = EDITED_NS * per_ns;
    Ok(Cluster {
        nodes: nodes + 1,
        edited: objects::pod(&namespace_name(EDITED_NS), 0, first),
        flapping: objects::pod(&namespace_name(EDITED_NS), 1, first + 1),
    })
}

/// A percentile in milliseconds, or "-" when nothing was seen.
fn ms(values: &[f64], p: f64) -> String {
    if values.is_empty() {
        "-".to_owned()
    } else {
        format!("{:.1}", percentile(values, p))
    }
}

fn report(scales: &[KubeScale], runs: &[Run]) -> String {
    let mib = |kib: u64| kib as f64 / 1024.0;
    let mut md = String::from(
        "| pods | namespaces | nodes | pod list bytes/pod (pages) | initial sync s | daemon CPU s at sync | fake CPU s during sync | VmHWM at sync MiB | VmRSS 3 s later MiB | VmRSS / VmHWM after changes MiB | idle CPU % |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let mut changes_md = String::from(
        "| pods | change | changes | p50 ms | p99 ms | max ms | not seen | daemon CPU ms/change | watch bytes/change | revisions |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
    );
    let mut steady = Vec::new();
    for scale in scales {
        let mine: Vec<&Run> = runs.iter().filter(|r| r.pods == scale.pods).collect();
        let Some(first) = mine.first() else { continue };
        let med = |f: &dyn Fn(&Run) -> f64| {
            let values: Vec<f64> = mine.iter().map(|r| f(r)).collect();
            summarize(&values).map_or_else(
                || "-".to_owned(),
                |s| format!("{:.2} [{:.2}–{:.2}]", s.median, s.min, s.max),
            )
        };
        let rss = summarize(&mine.iter().map(|r| mib(r.rss_kib)).collect::<Vec<_>>());
        if let Some(rss) = rss {
            steady.push((scale.pods, rss.median));
        }
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.0} ({}) | {} | {} | {} | {} | {} | {} / {} | {} |",
            scale.pods,
            scale.namespaces,
            first.nodes,
            first.pod_list_bytes as f64 / (scale.pods + 2 + EXTRA_LOCAL_PODS) as f64,
            first.pod_list_requests,
            med(&|r| r.sync_s),
            med(&|r| r.sync_cpu_s),
            med(&|r| r.fake_cpu_s),
            med(&|r| mib(r.hwm_at_sync_kib)),
            med(&|r| mib(r.rss_kib)),
            med(&|r| mib(r.rss_after_kib)),
            med(&|r| mib(r.hwm_after_kib)),
            med(&|r| r.idle_cores * 100.0),
        );
        let pooled = |f: &dyn Fn(&Run) -> &Vec<Option<f64>>| {
            let all: Vec<Option<f64>> = mine.iter().flat_map(|r| f(r).clone()).collect();
            let got: Vec<f64> = all.iter().flatten().copied().collect();
            (all.len(), got.len(), got)
        };
        let (count, seen, got) = pooled(&|r| &r.label);
        let _ = writeln!(
            changes_md,
            "| {} | a peer pod's label (decides an entry) → next revision | {count} | {} | {} | {} | {} | {} | {} | {seen} of {count} |",
            scale.pods,
            ms(&got, 50.0),
            ms(&got, 99.0),
            ms(&got, 100.0),
            count - seen,
            med(&|r| r.label_cpu_ms),
            med(&|r| r.label_watch_bytes),
        );
        let (count, seen, got) = pooled(&|r| &r.status_reload);
        let revisions: usize = mine.iter().map(|r| r.status_revisions).sum();
        let _ = writeln!(
            changes_md,
            "| {} | a peer pod's readiness (status only) → daemon reload | {count} | {} | {} | {} | {} | {} | {} | {revisions} of {count} |",
            scale.pods,
            ms(&got, 50.0),
            ms(&got, 99.0),
            ms(&got, 100.0),
            count - seen,
            med(&|r| r.status_cpu_ms),
            med(&|r| r.status_watch_bytes),
        );
    }
    let _ = write!(md, "\n{changes_md}");
    if let [(small_pods, small), .., (large_pods, large)] = steady[..]
        && large_pods > small_pods
    {
        let _ = write!(
            md,
            "\nSteady VmRSS grows by {:.0} bytes per pod between {small_pods} and {large_pods} pods (medians).\n",
            (large - small) * 1024.0 * 1024.0 / (large_pods - small_pods) as f64
        );
    }
    let problems: usize = runs.iter().map(|r| r.problems).max().unwrap_or(0);
    let _ = write!(
        md,
        "\nRepetitions: {} runs; at most {problems} problems reported by the daemon at sync; \
         median other-process CPU during the sync {:.0}% of a core.\n",
        runs.len(),
        summarize(
            &runs
                .iter()
                .map(|r| r.sync_disturbance * 100.0)
                .collect::<Vec<_>>()
        )
        .map_or(0.0, |s| s.median),
    );
    md
}
