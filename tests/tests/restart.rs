//! With --pin-dir, enforcement outlives the daemon: a crash leaves the last
//! policy enforced, a restart takes over without cutting established
//! connections, and `netseg detach` removes everything.

mod common;

use std::{
    path::PathBuf,
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, ensure};
use common::world_with;
use netseg_testbed::{
    Daemon, Family, PROBE_TIMEOUT, TcpEchoServer, TcpSession, netseg_binary, tcp_probe,
};

/// A private bpffs instance, unmounted on drop.
struct Bpffs {
    dir: tempfile::TempDir,
}

impl Bpffs {
    fn mount() -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("netseg-bpffs-").tempdir()?;
        let status = Command::new("mount")
            .args(["-t", "bpf", "bpf"])
            .arg(dir.path())
            .status()?;
        ensure!(
            status.success(),
            "mounting bpffs on {}",
            dir.path().display()
        );
        Ok(Self { dir })
    }

    fn pin_dir(&self) -> PathBuf {
        self.dir.path().join("netseg")
    }
}

impl Drop for Bpffs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

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
