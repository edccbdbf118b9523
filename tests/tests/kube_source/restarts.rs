//! Kills, restarts and replaced pods: enforcement never has a gap, and a
//! new pod never inherits what an old one was allowed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use netseg_testbed::netns::ip_batch;
use netseg_testbed::packet::Frame;
use netseg_testbed::raw::carries;
use netseg_testbed::{
    Capture, Daemon, Family, Node, PROBE_TIMEOUT, TcpEchoServer, TcpSession, send_ip, tcp_probe,
};

use super::cluster::{FakeCluster, KubeWorld};
use crate::common::{Bpffs, CLIENT_TO_SERVER, Scene, scene};

/// How long the new daemon runs without reaching the API server.
const API_AWAY: Duration = Duration::from_secs(3);
/// How long a daemon gets to reach the API server again: its watches back
/// off up to several seconds while it is away.
const BACK_TIMEOUT: Duration = Duration::from_secs(30);

/// Takes the node namespace's loopback, where the fake listens, down or up:
/// with it down, connecting to the fake fails (network unreachable), as
/// for an API server that is away.
fn set_loopback(node: &Node, up: bool) -> Result<()> {
    let state = if up { "up" } else { "down" };
    ip_batch(node.netns_name(), &[format!("link set lo {state}")])
}

/// The daemon is SIGKILLed while an allowed connection exchanges data and a
/// denied one is attempted over and over; a new daemon starts while the API
/// server cannot be reached, so it cannot sync and the pinned programs go
/// on enforcing; then the API server is back and the new daemon takes over.
/// Throughout, the allowed connection never misses an exchange and the
/// denied one never gets through.
#[test]
fn sigkill_and_a_restart_without_the_api_server_neither_cut_nor_leak() -> Result<()> {
    let bpffs = Bpffs::mount()?;
    let pin_arg = bpffs.pin_arg();
    let args = [pin_arg.as_str()];
    let mut w = KubeWorld::start("kube-kill", &args, |m| {
        m.policy("client-to-server", CLIENT_TO_SERVER).map(drop)
    })?;
    let _servers = (
        TcpEchoServer::start(&w.b, 80)?,
        TcpEchoServer::start(&w.a, 80)?,
    );
    let (a, b) = (w.a.ip(Family::V4), w.b.ip(Family::V4));
    let mut session = TcpSession::open(&w.a, b, 80, PROBE_TIMEOUT)?;
    let done = AtomicBool::new(false);
    let server = &w.b;
    let ((exchanged, missed), (attempts, leaks)) = std::thread::scope(|scope| -> Result<_> {
        let allowed = scope.spawn(|| {
            let (mut exchanged, mut missed) = (0u32, 0u32);
            while !done.load(Ordering::Relaxed) {
                if session.exchange(PROBE_TIMEOUT) {
                    exchanged += 1;
                } else {
                    missed += 1;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            (exchanged, missed)
        });
        let denied = scope.spawn(|| -> Result<(u32, u32)> {
            let (mut attempts, mut leaks) = (0u32, 0u32);
            while !done.load(Ordering::Relaxed) {
                attempts += 1;
                if tcp_probe(server, a, 80, Duration::from_millis(300))? {
                    leaks += 1;
                }
            }
            Ok((attempts, leaks))
        });
        let mut run = || -> Result<()> {
            std::thread::sleep(Duration::from_millis(500));
            w.daemon.kill()?;
            set_loopback(&w.node, false)?;
            std::thread::sleep(Duration::from_millis(500));
            w.daemon = Daemon::start_kube(&w.node, &w.cluster.kubeconfig(), &args)?;
            std::thread::sleep(API_AWAY);
            let away = w.daemon.status()?;
            ensure!(
                away.as_ref()
                    .is_some_and(|s| !s.synced && s.waiting_for.is_some()),
                "a daemon that cannot reach the API server waits: {away:?}"
            );
            set_loopback(&w.node, true)?;
            w.daemon.wait_status("the take-over", BACK_TIMEOUT, |s| {
                s.synced && s.waiting_for.is_none() && s.endpoints == 2
            })?;
            std::thread::sleep(Duration::from_secs(1));
            Ok(())
        };
        let outcome = run();
        done.store(true, Ordering::Relaxed);
        let allowed = allowed
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        let denied = denied
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
        outcome?;
        Ok((allowed, denied))
    })?;
    assert_eq!(
        missed,
        0,
        "the allowed connection missed {missed} of {} exchanges",
        exchanged + missed
    );
    assert!(exchanged >= 10, "only {exchanged} exchanges");
    assert_eq!(
        leaks, 0,
        "{leaks} of {attempts} denied attempts got through"
    );
    assert!(attempts >= 10, "only {attempts} denied attempts");
    Ok(())
}

/// A pod whose interface appears while the daemon is down is not in the
/// API yet when the daemon returns: its interface denies both ways until
/// its Pod is listed, and then gets what its labels allow.
#[test]
fn a_pod_interface_that_appeared_while_the_daemon_was_down_is_denied() -> Result<()> {
    let bpffs = Bpffs::mount()?;
    let pin_arg = bpffs.pin_arg();
    let args = [pin_arg.as_str()];
    let mut w = KubeWorld::start("kube-late", &args, |m| {
        m.policy("client-to-server", CLIENT_TO_SERVER).map(drop)
    })?;
    let _server_b = TcpEchoServer::start(&w.b, 80)?;
    let b = w.b.ip(Family::V4);
    w.daemon.kill()?;
    let c = w.node.add_pod("app/c")?;
    let _server_c = TcpEchoServer::start(&c, 80)?;
    w.restart_daemon(&args)?;
    let status = w.daemon.wait_in_charge(2)?;
    let unknown = status
        .interfaces
        .iter()
        .find(|i| i.name == c.host_ifname())
        .unwrap_or_else(|| panic!("c's interface attached: {status:?}"));
    assert_eq!(unknown.pod, None, "{status:?}");
    assert!(!tcp_probe(&c, b, 80, PROBE_TIMEOUT)?, "c sends nothing");
    assert!(
        !tcp_probe(&w.a, c.ip(Family::V4), 80, PROBE_TIMEOUT)?,
        "c receives nothing"
    );
    w.apply(|m| m.pod(&c, &[("role", "client")], &[]).map(drop))?;
    w.daemon.wait_in_charge(3)?;
    // c's neighbour resolution failed while it was denied everything (ARP
    // included); the kernel retries it within a few seconds.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !tcp_probe(&c, b, 80, PROBE_TIMEOUT)? {
        assert!(
            Instant::now() < deadline,
            "listed as a client, c reaches the server"
        );
    }
    Ok(())
}

const ACK_PSH: u8 = 0x18;

/// The scene with a allowed to b, mirrored into a fake, and a daemon in
/// charge of both pods. The scene is kept apart from a [`KubeWorld`] so
/// that its pods can be consumed.
fn client_and_server(tag: &str) -> Result<(Scene, FakeCluster, Daemon)> {
    let scene = scene(tag)?;
    scene
        .manifests
        .policy("client-to-server", CLIENT_TO_SERVER)?;
    let mut cluster = FakeCluster::start(&scene.node)?;
    cluster.mirror(&scene.manifests)?;
    let mut daemon = Daemon::start_kube(&scene.node, &cluster.kubeconfig(), &[])?;
    daemon.wait_in_charge(2)?;
    Ok((scene, cluster, daemon))
}

/// The old pod `app/a` (a client) goes, from the API and then from the
/// node, while one of its connections is established; a new pod `app/a2`,
/// not a client, gets its addresses. The new pod cannot open what the old
/// one could, and neither end of the old connection carries its packets:
/// not a2's to b, not b's to a2.
#[test]
fn a_reused_pod_address_gets_neither_the_old_pods_policy_nor_its_connections() -> Result<()> {
    let (scene, mut cluster, mut daemon) = client_and_server("kube-reuse")?;
    let _server = TcpEchoServer::start(&scene.b, 80)?;
    let b = scene.b.ip(Family::V4);
    let session = TcpSession::open(&scene.a, b, 80, PROBE_TIMEOUT)?;
    let old = session.local_addr()?;

    scene.manifests.remove_pod(&scene.a)?;
    cluster.publish(&scene.manifests, &mut daemon)?;
    let a2 = scene.node.reuse_addresses(scene.a, "app/a2")?;
    ensure!(a2.ip(Family::V4) == old.ip(), "a2 has a's address");
    scene.manifests.pod(&a2, &[("role", "other")], &[])?;
    cluster.publish(&scene.manifests, &mut daemon)?;
    daemon.wait_in_charge(2)?;
    assert!(
        !tcp_probe(&a2, b, 80, PROBE_TIMEOUT)?,
        "what a's labels allowed, a2's do not"
    );

    let to_b = Frame::tcp(old.ip(), old.port(), b, 80, ACK_PSH);
    let to_a2 = Frame::tcp(b, 80, old.ip(), old.port(), ACK_PSH);
    let through_old_connection = || -> Result<(bool, bool)> {
        let mut forward = to_b.clone();
        forward.l4.extend_from_slice(b"reuse-forward");
        let mut back = to_a2.clone();
        back.l4.extend_from_slice(b"reuse-back");
        let at_b = Capture::start(&scene.b, "eth0")?;
        let at_a2 = Capture::start(&a2, "eth0")?;
        send_ip(&a2, &forward.ip_bytes())?;
        send_ip(&scene.b, &back.ip_bytes())?;
        let arrived = (
            at_b.arrives(PROBE_TIMEOUT, |f| carries(f, b"reuse-forward"))?,
            at_a2.arrives(PROBE_TIMEOUT, |f| carries(f, b"reuse-back"))?,
        );
        Ok(arrived)
    };
    assert_eq!(
        through_old_connection()?,
        (false, false),
        "a2's packets on the tuple of a's connection reach neither end"
    );
    drop(session);
    // The control: with the programs detached, the same packets arrive.
    ensure!(daemon.stop()?.success());
    assert_eq!(through_old_connection()?, (true, true));
    Ok(())
}

/// The old pod's object is still there (terminating) when a new pod comes
/// up with its address: both route to the new interface, which cannot tell
/// whose it is, so it serves neither, even the old pod whose labels were
/// allowed, until one of them is gone.
#[test]
fn an_interface_two_pods_claim_denies_everything_until_one_is_gone() -> Result<()> {
    let (scene, mut cluster, mut daemon) = client_and_server("kube-claim")?;
    let _server = TcpEchoServer::start(&scene.b, 80)?;
    let b = scene.b.ip(Family::V4);
    let (namespace, name) = (scene.a.namespace().to_owned(), scene.a.name().to_owned());
    let old_pod = format!("{namespace}/{name}");
    // Named to sort before the old pod, so that it is not merely the last
    // one written that wins the interface.
    let new = scene.node.reuse_addresses(scene.a, "app/0-new")?;
    scene.manifests.pod(&new, &[("role", "other")], &[])?;
    cluster.publish(&scene.manifests, &mut daemon)?;
    assert!(
        !tcp_probe(&new, b, 80, PROBE_TIMEOUT)?,
        "the interface serves neither the old pod's allowance nor anything else"
    );
    let status = daemon.status()?.expect("a status");
    assert!(
        status.pods_without_interface.contains(&old_pod),
        "{:?}",
        status.pods_without_interface
    );

    scene.manifests.remove_pod_named(&namespace, &name)?;
    cluster.publish(&scene.manifests, &mut daemon)?;
    daemon.wait_in_charge(2)?;
    assert!(
        !tcp_probe(&new, b, 80, PROBE_TIMEOUT)?,
        "the new pod's own labels allow nothing"
    );
    Ok(())
}
