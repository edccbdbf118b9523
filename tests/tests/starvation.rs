//! No pod can starve another of remembered state: a pod that floods the
//! conntrack table with half-open connections fills only its own share, so
//! another pod's idle connection survives and its new connections open.

use std::net::{IpAddr, Ipv4Addr, UdpSocket};

use anyhow::Result;
use netseg_testbed::{
    ContainerPort, Daemon, Family, Manifests, Netns, Node, PROBE_TIMEOUT, Protocol, TcpEchoServer,
    TcpSession, in_netns, require_root, tcp_probe,
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
    require_root();
    let node = Node::new("starve")?;
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
