//! The capabilities the daemon needs, and nothing more: CAP_BPF,
//! CAP_NET_ADMIN and CAP_PERFMON (what deploy/daemonset.yaml grants). The
//! daemon runs under `setpriv` with every other capability dropped from its
//! effective, permitted, inheritable, ambient and bounding sets.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use netseg_testbed::{
    Daemon, DaemonSource, Family, Node, PROBE_TIMEOUT, TcpEchoServer, netseg_binary, require_root,
    tcp_probe,
};

use super::cluster::FakeCluster;
use crate::common::{CLIENT_TO_SERVER, scene};

const CAP_NET_ADMIN: u32 = 12;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// `setpriv` arguments that leave the daemon `caps` (`+bpf,+net_admin`) only.
fn only(caps: &str) -> Vec<String> {
    ["--inh-caps", "--ambient-caps", "--bounding-set"]
        .iter()
        .map(|set| format!("{set}=-all,{caps}"))
        .collect()
}

/// The effective capabilities of process `pid`.
fn effective(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let hex = status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .context("CapEff")?;
    Ok(u64::from_str_radix(hex.trim(), 16)?)
}

#[test]
fn the_daemon_loads_attaches_and_enforces_with_bpf_net_admin_and_perfmon_alone() -> Result<()> {
    let scene = scene("kube-caps")?;
    scene
        .manifests
        .policy("client-to-server", CLIENT_TO_SERVER)?;
    let _servers = (
        TcpEchoServer::start(&scene.b, 80)?,
        TcpEchoServer::start(&scene.a, 80)?,
    );
    let mut cluster = FakeCluster::start(&scene.node)?;
    cluster.mirror(&scene.manifests)?;
    let kubeconfig = cluster.kubeconfig();
    let mut wrapper = vec!["setpriv".to_owned()];
    wrapper.extend(only("+bpf,+net_admin,+perfmon"));
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    let mut daemon = Daemon::launch(
        &netseg_binary()?,
        &wrapper,
        &scene.node,
        DaemonSource::Kubeconfig(&kubeconfig),
        &[],
    )?;
    daemon.wait_in_charge(2)?;
    let pid = daemon.pid().context("the daemon runs")?;
    assert_eq!(
        effective(pid)?,
        (1 << CAP_BPF) | (1 << CAP_NET_ADMIN) | (1 << CAP_PERFMON),
        "the daemon holds these three capabilities and no other"
    );
    let (a, b) = (scene.a.ip(Family::V4), scene.b.ip(Family::V4));
    assert!(tcp_probe(&scene.a, b, 80, PROBE_TIMEOUT)?, "allowed");
    assert!(!tcp_probe(&scene.b, a, 80, PROBE_TIMEOUT)?, "denied");
    Ok(())
}

#[test]
fn without_a_needed_capability_the_daemon_fails_fast_naming_it() -> Result<()> {
    require_root();
    let node = Node::new("kube-nocaps")?;
    let manifests = tempfile::tempdir()?;
    for (caps, missing) in [
        (
            "+bpf,+perfmon",
            "missing: CAP_NET_ADMIN (load networking programs",
        ),
        (
            "+bpf,+net_admin",
            "missing: CAP_PERFMON (without it the verifier",
        ),
        ("+net_admin,+perfmon", "missing: CAP_BPF (create maps"),
    ] {
        let mut wrapper = vec!["setpriv".to_owned()];
        wrapper.extend(only(caps));
        let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
        let mut daemon = Daemon::launch(
            &netseg_binary()?,
            &wrapper,
            &node,
            DaemonSource::Manifests(manifests.path()),
            &[],
        )?;
        let deadline = Instant::now() + Duration::from_secs(5);
        let exit = loop {
            if let Some(exit) = daemon.try_exit()? {
                break exit;
            }
            if Instant::now() > deadline {
                bail!(
                    "with {caps} only the daemon still runs after 5 s:\n{}",
                    daemon.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let log = daemon.log();
        assert!(!exit.success(), "with {caps} only: {exit}\n{log}");
        assert!(
            log.contains(missing),
            "with {caps} only, the message names {missing:?}:\n{log}"
        );
    }
    Ok(())
}
