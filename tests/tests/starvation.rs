//! No pod can starve another of remembered state: a pod that floods the
//! conntrack table with half-open connections fills only its own share, so
//! another pod's idle connection survives and its new connections open; a
//! flood toward a pod fills only its inbound share, so it still opens its
//! own connections.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};

use anyhow::Result;
use netseg_testbed::{
    ContainerPort, Daemon, Family, Manifests, Netns, Node, PROBE_TIMEOUT, Pod, Protocol,
    TcpEchoServer, TcpSession, in_netns, require_root, tcp_probe,
};

mod common;

use common::{CLIENT_TO_SERVER, FLOW_WAIT};

/// Small enough that the flood below would fill it several times over.
const CONNTRACK_ENTRIES: &str = "1024";
const PER_ENDPOINT: &str = "256";
/// Half-open connections the flooding pod tries to open.
const FLOOD: u16 = 4000;
const FLOOD_WAVE: usize = 800;
const FLOOD_ROUNDS: usize = 3;
/// Above the ports the server admits (80, and UDP 53).
const FLOOD_FIRST_PORT: u16 = 1000;

/// A node with a flooding pod and a client (both `role: client`) that may
/// reach a server on TCP 80 (`CLIENT_TO_SERVER`).
struct Clients {
    node: Node,
    flooder: Pod,
    client: Pod,
    server: Pod,
    manifests: Manifests,
}

impl Clients {
    fn new(tag: &str) -> Result<Self> {
        require_root();
        let node = Node::new(tag)?;
        let flooder = node.add_pod("app/flooder")?;
        let client = node.add_pod("app/client")?;
        let server = node.add_pod("app/server")?;
        let manifests = Manifests::new()?;
        manifests.namespace("app", &[])?;
        for pod in [&flooder, &client] {
            manifests.pod(pod, &[("role", "client")], &[])?;
        }
        manifests.pod(
            &server,
            &[("role", "server")],
            &[ContainerPort::new("http", 80, Protocol::Tcp)],
        )?;
        manifests.policy("client-to-server", CLIENT_TO_SERVER)?;
        Ok(Self {
            node,
            flooder,
            client,
            server,
            manifests,
        })
    }
}

/// Sends to `flows` ports of `target` that its ingress denies, so none
/// answers: every flow stays half-open, one entry each at the sender's
/// egress. The flows go in waves that fit the table, each sent more than
/// once so that its entries look in use: a least-recently-used table keeps
/// those and evicts idle ones instead.
fn flood_half_open(from: &impl Netns, target: IpAddr, flows: u16) -> Result<()> {
    in_netns(from.netns_name(), || -> Result<()> {
        let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
        for wave in (FLOOD_FIRST_PORT..FLOOD_FIRST_PORT + flows).step_by(FLOOD_WAVE) {
            let ports = wave..wave.saturating_add(FLOOD_WAVE as u16);
            for _ in 0..FLOOD_ROUNDS {
                for port in ports.clone() {
                    socket.send_to(b"flood", (target, port))?;
                }
            }
        }
        Ok(())
    })?
}

#[test]
fn a_half_open_flood_does_not_evict_another_pods_connection() -> Result<()> {
    let Clients {
        node,
        flooder,
        client,
        server,
        manifests,
    } = Clients::new("starve")?;
    let mut daemon = Daemon::start(
        &node,
        manifests.dir(),
        &[
            "--conntrack-entries",
            CONNTRACK_ENTRIES,
            "--conntrack-per-endpoint",
            PER_ENDPOINT,
        ],
    )?;
    daemon.wait_ready(3)?;
    let _http = TcpEchoServer::start(&server, 80)?;
    let server_ip = server.ip(Family::V4);
    let mut idle = TcpSession::open(&client, server_ip, 80, PROBE_TIMEOUT)?;

    // The flooder's egress allows every port of the server; the server's
    // ingress does not, so nothing answers.
    flood_half_open(&flooder, server_ip, FLOOD)?;

    assert!(
        idle.exchange(PROBE_TIMEOUT),
        "the client's idle connection still carries data after the flood"
    );
    assert!(
        tcp_probe(&client, server_ip, 80, PROBE_TIMEOUT)?,
        "the client still opens new connections"
    );
    // The flooder is refused for want of room, and told why.
    let refused = daemon.wait_for_flow(
        |flow| flow["reason"] == "conntrack-full" && flow["src_pod"] == "app/flooder",
        FLOW_WAIT,
    )?;
    assert_eq!(refused["verdict"], "deny");
    assert!(
        !tcp_probe(&flooder, server_ip, 80, PROBE_TIMEOUT)?,
        "the flooder's own share is full"
    );
    Ok(())
}

/// What the pod flooded below may hold per origin: few, so that the flood
/// fills its inbound share many times over.
const SMALL_SHARE: u16 = 32;
/// Flows the flooder opens toward the pod, each from a source port of its own.
const FLOWS_TOWARD: u16 = 4 * SMALL_SHARE;
const DNS: u16 = 53;
const BACKEND_PORT: u16 = 8080;

/// The servers may open connections to the backends on 8080.
const SERVER_TO_BACKEND: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: server-to-backend, namespace: app }
spec:
  podSelector: { matchLabels: { role: server } }
  policyTypes: [Egress]
  egress:
    - to: [{ podSelector: { matchLabels: { role: backend } } }]
      ports: [{ port: 8080 }]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: backend-from-server, namespace: app }
spec:
  podSelector: { matchLabels: { role: backend } }
  policyTypes: [Ingress]
  ingress:
    - from: [{ podSelector: { matchLabels: { role: server } } }]
      ports: [{ port: 8080 }]
"#;

/// Opens `flows` UDP flows from `from` to `target` (port 53, which its
/// policy admits), each from a socket of its own, sent twice.
fn flood_toward(from: &Pod, target: SocketAddr, flows: u16) -> Result<()> {
    in_netns(from.netns_name(), || -> Result<()> {
        let sockets = (0..flows)
            .map(|_| UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)))
            .collect::<std::io::Result<Vec<_>>>()?;
        for _ in 0..2 {
            for socket in &sockets {
                socket.send_to(b"flood", target)?;
            }
        }
        Ok(())
    })?
}

#[test]
fn a_flood_toward_a_pod_leaves_it_its_own_connections() -> Result<()> {
    let Clients {
        node,
        flooder,
        client,
        server,
        manifests,
    } = Clients::new("toward")?;
    let backend = node.add_pod("app/backend")?;
    manifests.pod(
        &backend,
        &[("role", "backend")],
        &[ContainerPort::tcp(BACKEND_PORT)],
    )?;
    manifests.policy("server-to-backend", SERVER_TO_BACKEND)?;
    let share = SMALL_SHARE.to_string();
    let mut daemon = Daemon::start(
        &node,
        manifests.dir(),
        &["--conntrack-per-endpoint", &share],
    )?;
    daemon.wait_ready(4)?;
    let _http = TcpEchoServer::start(&server, 80)?;
    let _backend = TcpEchoServer::start(&backend, BACKEND_PORT)?;
    let server_ip = server.ip(Family::V4);
    // Bound so that the flood's datagrams find a socket and get no answer,
    // not even a port-unreachable error: every flow stays half-open.
    let _silent = in_netns(server.netns_name(), || {
        UdpSocket::bind((Ipv4Addr::UNSPECIFIED, DNS))
    })??;

    flood_toward(&flooder, SocketAddr::new(server_ip, DNS), FLOWS_TOWARD)?;

    // The flood filled the server's inbound share: a client is refused.
    assert!(
        !tcp_probe(&client, server_ip, 80, PROBE_TIMEOUT)?,
        "the flood toward the server filled its inbound share"
    );
    let refused = daemon.wait_for_flow(
        |flow| flow["reason"] == "conntrack-full" && flow["src_pod"] == "app/client",
        FLOW_WAIT,
    )?;
    assert_eq!(refused["dst_pod"], "app/server", "{refused}");
    assert!(
        tcp_probe(&server, backend.ip(Family::V4), BACKEND_PORT, PROBE_TIMEOUT)?,
        "the server still opens its own connection to the backend"
    );
    Ok(())
}
