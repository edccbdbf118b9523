//! With --pin-dir, enforcement outlives the daemon: a crash leaves the last
//! policy enforced, a restart takes over without cutting established
//! connections and counts them to their pods' shares, and `netseg detach`
//! removes everything.

mod common;

use std::{
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, ensure};
use common::{Bpffs, world_with};
use netseg_testbed::{
    Daemon, Family, PROBE_TIMEOUT, TcpEchoServer, TcpSession, netseg_binary, tcp_probe,
};

#[test]
fn pinned_enforcement_survives_a_crash_and_a_restart_keeps_connections() -> Result<()> {
    let bpffs = Bpffs::mount()?;
    let pin_dir = bpffs.pin_dir();
    let pin_arg = format!("--pin-dir={}", pin_dir.display());
    let mut w = world_with("restart", &[&pin_arg])?;
    let _server_b = TcpEchoServer::start(&w.b, 80)?;
    let _server_a = TcpEchoServer::start(&w.a, 80)?;
    w.allow_client_to_server()?;
    let (a, b) = (w.a.ip(Family::V4), w.b.ip(Family::V4));
    let mut session = TcpSession::open(&w.a, b, 80, PROBE_TIMEOUT)?;
    assert!(session.exchange(PROBE_TIMEOUT));

    w.daemon.kill()?;
    assert!(
        !tcp_probe(&w.b, a, 80, PROBE_TIMEOUT)?,
        "denied traffic stays denied while the daemon is down"
    );
    assert!(
        tcp_probe(&w.a, b, 80, PROBE_TIMEOUT)?,
        "the last policy stays enforced"
    );
    assert!(
        session.exchange(PROBE_TIMEOUT),
        "established connections keep flowing"
    );

    w.daemon = Daemon::start(&w.node, w.manifests.dir(), &[&pin_arg])?;
    w.daemon.wait_ready(2)?;
    assert!(
        session.exchange(PROBE_TIMEOUT),
        "the restarted daemon took over the connection"
    );
    assert!(!tcp_probe(&w.b, a, 80, PROBE_TIMEOUT)?);
    assert!(tcp_probe(&w.a, b, 80, PROBE_TIMEOUT)?);
    // Handed-over connections are re-checked: revoking the allow cuts this one.
    w.apply(|m| m.remove_policy("client-to-server"))?;
    assert!(
        !session.exchange(PROBE_TIMEOUT),
        "revocation reaches handed-over connections"
    );

    let exit = w.daemon.stop()?;
    assert!(exit.success());
    assert!(
        !tcp_probe(&w.b, a, 80, PROBE_TIMEOUT)?,
        "SIGTERM with --pin-dir keeps enforcing"
    );
    let detach = Command::new(netseg_binary()?)
        .arg("detach")
        .arg(&pin_arg)
        .output()?;
    ensure!(
        detach.status.success(),
        "{}",
        String::from_utf8_lossy(&detach.stderr)
    );
    // The kernel releases an unpinned tcx link a moment later.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !tcp_probe(&w.b, a, 80, PROBE_TIMEOUT).context("probe")? {
        assert!(
            Instant::now() < deadline,
            "netseg detach removed the programs"
        );
    }
    Ok(())
}

/// What a pod may hold per origin in the test below.
const SHARE: usize = 8;

/// b may open connections to a on port 80, the reverse of `CLIENT_TO_SERVER`.
const SERVER_TO_CLIENT: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: server-to-client, namespace: app }
spec:
  podSelector: { matchLabels: { role: server } }
  policyTypes: [Egress]
  egress:
    - to: [{ podSelector: { matchLabels: { role: client } } }]
      ports: [{ port: 80 }]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: client-from-server, namespace: app }
spec:
  podSelector: { matchLabels: { role: client } }
  policyTypes: [Ingress]
  ingress:
    - from: [{ podSelector: { matchLabels: { role: server } } }]
      ports: [{ port: 80 }]
"#;

#[test]
fn handed_over_connections_count_against_the_shares_of_their_origin() -> Result<()> {
    let bpffs = Bpffs::mount()?;
    let pin_arg = format!("--pin-dir={}", bpffs.pin_dir().display());
    let share = SHARE.to_string();
    let args = [pin_arg.as_str(), "--conntrack-per-endpoint", &share];
    let mut w = world_with("restart-share", &args)?;
    let _server_b = TcpEchoServer::start(&w.b, 80)?;
    let _server_a = TcpEchoServer::start(&w.a, 80)?;
    w.allow_client_to_server()?;
    w.apply(|m| m.policy("server-to-client", SERVER_TO_CLIENT).map(drop))?;
    let (a, b) = (w.a.ip(Family::V4), w.b.ip(Family::V4));
    // a's outbound share and b's inbound share, full of live connections.
    let sessions = (0..SHARE)
        .map(|_| TcpSession::open(&w.a, b, 80, PROBE_TIMEOUT))
        .collect::<Result<Vec<_>>>()?;

    w.daemon.kill()?;
    w.daemon = Daemon::start(&w.node, w.manifests.dir(), &args)?;
    w.daemon.wait_ready(2)?;
    assert!(
        !tcp_probe(&w.a, b, 80, PROBE_TIMEOUT)?,
        "the handed-over connections still fill a's share"
    );
    assert!(
        tcp_probe(&w.b, a, 80, PROBE_TIMEOUT)?,
        "the connections a opened toward b count against b's inbound share only"
    );
    drop(sessions);
    Ok(())
}

/// A restarted daemon that cannot read its manifests must not replace the
/// previous daemon's policy with an empty one: the pinned programs keep
/// enforcing it (and its connections) until the directory can be read,
/// then the new daemon takes over with its own policy.
#[test]
fn a_restart_that_cannot_read_its_manifests_leaves_the_previous_policy_enforced() -> Result<()> {
    let bpffs = Bpffs::mount()?;
    let pin_arg = format!("--pin-dir={}", bpffs.pin_dir().display());
    let mut w = world_with("unread", &[&pin_arg])?;
    let _server_b = TcpEchoServer::start(&w.b, 80)?;
    let _server_a = TcpEchoServer::start(&w.a, 80)?;
    w.allow_client_to_server()?;
    let (a, b) = (w.a.ip(Family::V4), w.b.ip(Family::V4));
    let mut session = TcpSession::open(&w.a, b, 80, PROBE_TIMEOUT)?;
    assert!(session.exchange(PROBE_TIMEOUT));
    w.daemon.kill()?;

    let later = tempfile::Builder::new().prefix("netseg-later-").tempdir()?;
    let unread = later.path().join("manifests");
    w.daemon = Daemon::start(&w.node, &unread, &[&pin_arg])?;
    w.daemon
        .wait_status("a reload", Duration::from_secs(10), |s| s.reloads >= 1)?;
    // Long enough for reconciles (every 2 s) to have taken over, had they.
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        session.exchange(PROBE_TIMEOUT),
        "an established connection survives a restart that could not read its manifests"
    );
    assert!(
        tcp_probe(&w.a, b, 80, PROBE_TIMEOUT)?,
        "the previous policy stays enforced"
    );
    assert!(!tcp_probe(&w.b, a, 80, PROBE_TIMEOUT)?);

    // Readable at last: the new daemon takes over with its own policy, as
    // revoking the allow there shows.
    let copied = Command::new("cp")
        .arg("-r")
        .arg(w.manifests.dir())
        .arg(&unread)
        .status()?;
    ensure!(copied.success(), "copying the manifests");
    w.daemon
        .wait_status("the policy published", Duration::from_secs(10), |s| {
            s.endpoints == 2
        })?;
    assert!(
        session.exchange(PROBE_TIMEOUT),
        "the take-over keeps the connection"
    );
    std::fs::remove_file(unread.join("policy-client-to-server.yaml"))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while session.exchange(PROBE_TIMEOUT) {
        ensure!(
            Instant::now() < deadline,
            "the new daemon's revocation never reached the connection: no take-over"
        );
    }
    Ok(())
}
