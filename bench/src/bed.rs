//! The namespace harness of one configuration: an isolated node namespace
//! that forwards between a client and a server pod, the servers the
//! measures talk to, and receive work of the client's host-side veth steered
//! to the second core (RPS) so that the sender and the forwarding path do
//! not share a core.

use std::net::Ipv4Addr;
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result, bail};
use netseg_testbed::{Node, Pod};

use crate::connrate::ConnServer;

pub const IPERF_PORT: u16 = 5201;
pub const SOCKPERF_PORT: u16 = 11111;
pub const CONN_PORT: u16 = 7000;
/// trafgen's UDP packets go here; nothing listens (the kernel's ICMP
/// errors are rate limited to 1000/s and are the same for every variant).
pub const SINK_PORT: u16 = 9;
/// The CPU trafgen and the measuring clients run on; RPS steers the node's
/// receive work to the other one.
pub const SENDER_CPU: usize = 0;
pub const FORWARD_CPU: usize = 1;

pub struct Bed {
    servers: Vec<Child>,
    conn_server: Option<ConnServer>,
    pub client: Pod,
    pub server: Pod,
    pub node: Node,
}

impl Bed {
    pub fn new(tag: &str) -> Result<Self> {
        let node = Node::new(tag)?;
        let client = node.add_pod("bench/client")?;
        let server = node.add_pod("bench/server")?;
        let bed = Self {
            servers: Vec::new(),
            conn_server: None,
            client,
            server,
            node,
        };
        netns_sh(
            bed.node.netns_name(),
            &format!(
                "echo {:x} > /sys/class/net/{}/queues/rx-0/rps_cpus",
                1 << FORWARD_CPU,
                bed.client.host_ifname()
            ),
        )?;
        // The connection-rate client opens tens of thousands of connections
        // a run: a wide port range and TIME_WAIT reuse, inside the pod only.
        netseg_testbed::netns::write_sysctls(
            bed.client.netns_name(),
            &[
                ("net/ipv4/ip_local_port_range", "1024 65000"),
                ("net/ipv4/tcp_tw_reuse", "1"),
            ],
        )?;
        Ok(bed)
    }

    /// Starts iperf3, sockperf and the connection server in the server pod.
    pub fn start_servers(&mut self) -> Result<()> {
        let ns = self.server.netns_name().to_owned();
        let ip = self.server.ipv4().to_string();
        self.servers.push(spawn_in(
            &ns,
            &["iperf3", "-s", "-B", &ip, "-p", &IPERF_PORT.to_string()],
        )?);
        self.servers.push(spawn_in(
            &ns,
            &[
                "sockperf",
                "server",
                "-i",
                &ip,
                "-p",
                &SOCKPERF_PORT.to_string(),
            ],
        )?);
        self.conn_server = Some(ConnServer::start(&self.server, CONN_PORT)?);
        // Give the servers a moment to bind.
        std::thread::sleep(std::time::Duration::from_millis(300));
        Ok(())
    }

    pub fn server_ip(&self) -> Ipv4Addr {
        self.server.ipv4()
    }

    pub fn client_ip(&self) -> Ipv4Addr {
        self.client.ipv4()
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        // Sockets keep a namespace alive: stop the servers before the pods go.
        for child in &mut self.servers {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.conn_server.take();
    }
}

/// Spawns `ip netns exec <ns> <argv...>` with output discarded.
pub fn spawn_in(ns: &str, argv: &[&str]) -> Result<Child> {
    Command::new("ip")
        .args(["netns", "exec", ns])
        .args(argv)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {argv:?} in {ns}"))
}

/// Runs `ip netns exec <ns> <argv...>` and returns stdout.
pub fn run_in(ns: &str, argv: &[&str]) -> Result<String> {
    let out = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(argv)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {argv:?} in {ns}"))?;
    if !out.status.success() {
        bail!(
            "{argv:?} in {ns} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs a shell command inside a namespace (sysfs there shows its devices).
pub fn netns_sh(ns: &str, script: &str) -> Result<String> {
    run_in(ns, &["sh", "-c", script])
}

/// Feeds `input` to `ip netns exec <ns> <argv...>` on stdin.
pub fn run_in_with_input(ns: &str, argv: &[&str], input: &str) -> Result<()> {
    use std::io::Write;
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(argv)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {argv:?} in {ns}"))?;
    let mut stdin = child.stdin.take().context("stdin")?;
    stdin.write_all(input.as_bytes())?;
    drop(stdin);
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "{argv:?} in {ns} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The MAC address of `ifname` in `ns`.
pub fn mac_of(ns: &str, ifname: &str) -> Result<[u8; 6]> {
    let text = netns_sh(ns, &format!("cat /sys/class/net/{ifname}/address"))?;
    let bytes: Vec<u8> = text
        .trim()
        .split(':')
        .map(|b| u8::from_str_radix(b, 16))
        .collect::<Result<_, _>>()
        .with_context(|| format!("MAC of {ifname}: {text}"))?;
    bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("MAC of {ifname}: {text}"))
}
