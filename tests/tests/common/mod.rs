//! What the daemon tests share: a node with a client and a server pod, and
//! the daemon enforcing a manifests directory that describes them.
// Each test file compiles this module on its own and uses a part of it.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use netseg_testbed::{
    ContainerPort, Daemon, Manifests, Node, Pod, Protocol, in_netns, require_root,
};

pub const FLOW_WAIT: Duration = Duration::from_secs(5);

/// A node with pods `app/a` and `app/b` described in a manifests directory,
/// and the daemon enforcing it (default deny).
/// Fields drop in order: the daemon stops before its manifests and pods go,
/// and the pods before their node.
pub struct World {
    pub daemon: Daemon,
    pub manifests: Manifests,
    pub a: Pod,
    pub b: Pod,
    pub node: Node,
}

/// What a [`World`] enforces, before any daemon runs: the node, pods
/// `app/a` (role client) and `app/b` (role server, port `http` 80), and
/// the manifests that describe them.
pub struct Scene {
    pub manifests: Manifests,
    pub a: Pod,
    pub b: Pod,
    pub node: Node,
}

pub fn scene(tag: &str) -> Result<Scene> {
    require_root();
    let node = Node::new(tag)?;
    let a = node.add_pod("app/a")?;
    let b = node.add_pod("app/b")?;
    let manifests = Manifests::new()?;
    manifests.namespace("app", &[])?;
    manifests.pod(&a, &[("role", "client")], &[])?;
    manifests.pod(
        &b,
        &[("role", "server")],
        &[ContainerPort::new("http", 80, Protocol::Tcp)],
    )?;
    Ok(Scene {
        manifests,
        a,
        b,
        node,
    })
}

/// A private bpffs instance for `--pin-dir`, unmounted on drop.
pub struct Bpffs {
    dir: tempfile::TempDir,
}

impl Bpffs {
    pub fn mount() -> Result<Self> {
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

    pub fn pin_dir(&self) -> PathBuf {
        self.dir.path().join("netseg")
    }

    /// `--pin-dir=<pin_dir>`
    pub fn pin_arg(&self) -> String {
        format!("--pin-dir={}", self.pin_dir().display())
    }
}

impl Drop for Bpffs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

pub fn world(tag: &str) -> Result<World> {
    world_with(tag, &[])
}

/// [`world`] with extra daemon arguments.
pub fn world_with(tag: &str, daemon_args: &[&str]) -> Result<World> {
    let Scene {
        manifests,
        a,
        b,
        node,
    } = scene(tag)?;
    let mut daemon = Daemon::start(&node, manifests.dir(), daemon_args)?;
    daemon.wait_ready(2)?;
    Ok(World {
        daemon,
        manifests,
        a,
        b,
        node,
    })
}

/// a may send anything to b; b admits TCP on its named port `http` (80), UDP 53
/// and SCTP 9 from a. Everything else stays denied (default deny).
pub const CLIENT_TO_SERVER: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: client-to-server, namespace: app }
spec:
  podSelector: { matchLabels: { role: client } }
  policyTypes: [Egress]
  egress:
    - to: [{ podSelector: { matchLabels: { role: server } } }]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: server-from-client, namespace: app }
spec:
  podSelector: { matchLabels: { role: server } }
  policyTypes: [Ingress]
  ingress:
    - from: [{ podSelector: { matchLabels: { role: client } } }]
      ports: [{ port: http }, { port: 53, protocol: UDP }, { port: 9, protocol: SCTP }]
"#;

impl World {
    pub fn allow_client_to_server(&mut self) -> Result<()> {
        self.apply(|m| m.policy("client-to-server", CLIENT_TO_SERVER).map(drop))
    }

    /// Changes the manifests and waits until the daemon has read them.
    pub fn apply(&mut self, change: impl FnOnce(&Manifests) -> Result<()>) -> Result<()> {
        let reloads = self.daemon.status()?.map_or(0, |s| s.reloads);
        change(&self.manifests)?;
        self.daemon.wait_reload_after(reloads)?;
        Ok(())
    }
}

/// `GET path` from the daemon's metrics server at `addr` inside `netns`:
/// the whole HTTP/1.0 response, status line first.
pub fn http_get(netns: &str, addr: &str, path: &str) -> Result<String> {
    let request = format!("GET {path} HTTP/1.0\r\nHost: netseg\r\n\r\n");
    in_netns(netns, move || -> Result<String> {
        let mut stream = TcpStream::connect(addr).context("connecting to the metrics server")?;
        stream.write_all(request.as_bytes())?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        Ok(response)
    })?
}
