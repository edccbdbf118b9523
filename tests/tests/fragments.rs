//! Fragmented datagrams sent from inside a pod, and what arrives: a later
//! fragment is judged by the policy in force, one pod's first fragments
//! cannot push out another pod's datagram in flight, and an IPv6 datagram
//! with a Destination Options header after its Fragment header (RFC 8200)
//! arrives whole.

use std::net::{Ipv6Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use anyhow::{Result, ensure};
use netseg_testbed::packet::{
    DESTINATION_OPTIONS, FRAGMENT_HEADER, Fragment, Frame, UDP, udp_datagram,
};
use netseg_testbed::raw::carries;
use netseg_testbed::{
    Capture, ContainerPort, Daemon, Family, Manifests, Node, Pod, Protocol, in_netns, require_root,
    send_ip, send_ips,
};

mod common;

use common::{CLIENT_TO_SERVER, FLOW_WAIT, world};

/// Long enough for a forwarded packet to arrive.
const ARRIVAL: Duration = Duration::from_secs(2);
/// How long a capture waits for one more frame of a flood that may be over.
const FLOOD_TAIL: Duration = Duration::from_millis(500);
/// The port b admits UDP on.
const DNS: u16 = 53;
/// Bytes of a datagram's first fragment: its UDP header and the head.
const FIRST_BYTES: usize = 24;

/// The two fragments of a UDP datagram from `from` to `to`:53, id `id`, each
/// carrying a marker the captures look for (`head of <id>`, `tail of <id>`).
struct Datagram {
    first: Vec<u8>,
    later: Vec<u8>,
    head: String,
    tail: String,
}

impl Datagram {
    fn new(from: &Pod, to: &Pod, sport: u16, id: u16) -> Self {
        let (src, dst) = (
            from.ip(Family::V4).to_string(),
            to.ip(Family::V4).to_string(),
        );
        let head = format!("head of {id:05}");
        let tail = format!("tail of {id:05}");
        let payload = format!("{head:<16}{tail}");
        let udp = udp_datagram(&src, sport, &dst, DNS, payload.as_bytes());
        let fragment = |bytes: &[u8], offset: usize, more| {
            let offset = (offset / 8) as u16;
            Frame::new(&src, &dst, UDP, bytes.to_vec())
                .fragmented(Fragment { id, offset, more })
                .ip_bytes()
        };
        Self {
            first: fragment(&udp[..FIRST_BYTES], 0, true),
            later: fragment(&udp[FIRST_BYTES..], FIRST_BYTES, false),
            head,
            tail,
        }
    }
}

fn arrives(capture: &Capture, marker: &str) -> Result<bool> {
    capture.arrives(ARRIVAL, |f| carries(f, marker.as_bytes()))
}

/// b may open TCP 8080 to a: a change of the policy that leaves a's
/// connections to b allowed.
const SERVER_TO_CLIENT: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: server-to-client, namespace: app }
spec:
  podSelector: { matchLabels: { role: server } }
  policyTypes: [Egress]
  egress:
    - to: [{ podSelector: { matchLabels: { role: client } } }]
      ports: [{ port: 8080 }]
"#;

#[test]
fn a_later_fragment_of_a_revoked_connection_does_not_arrive() -> Result<()> {
    let mut w = world("frag-revoked")?;
    w.allow_client_to_server()?;
    let at_b = Capture::start(&w.b, "eth0")?;
    let whole = Datagram::new(&w.a, &w.b, 40_010, 1);
    let kept = Datagram::new(&w.a, &w.b, 40_010, 2);
    let cut = Datagram::new(&w.a, &w.b, 40_010, 3);

    // Without a change of policy, a datagram's fragments all arrive.
    send_ip(&w.a, &whole.first)?;
    ensure!(
        arrives(&at_b, &whole.head)?,
        "a first fragment a may send did not reach b"
    );
    send_ip(&w.a, &whole.later)?;
    ensure!(
        arrives(&at_b, &whole.tail)?,
        "its later fragment did not reach b"
    );

    send_ip(&w.a, &kept.first)?;
    send_ip(&w.a, &cut.first)?;
    ensure!(
        arrives(&at_b, &kept.head)? && arrives(&at_b, &cut.head)?,
        "first fragments"
    );
    let before = w.daemon.status()?.map_or(0, |s| s.revision);
    w.apply(|m| m.policy("server-to-client", SERVER_TO_CLIENT).map(drop))?;
    let after = w.daemon.status()?.map_or(0, |s| s.revision);
    ensure!(
        after != before,
        "the change published no new revision ({before})"
    );
    send_ip(&w.a, &kept.later)?;
    ensure!(
        arrives(&at_b, &kept.tail)?,
        "a later fragment of a connection the new policy still allows did not reach b"
    );

    w.apply(|m| m.remove_policy("client-to-server"))?;
    send_ip(&w.a, &cut.later)?;
    ensure!(
        !arrives(&at_b, &cut.tail)?,
        "a later fragment reached b after the policy stopped allowing its connection"
    );
    let revoked = w.daemon.wait_for_flow(
        |f| f["reason"] == "revoked" && f["protocol"] == "udp" && f["src_pod"] == "app/a",
        FLOW_WAIT,
    )?;
    ensure!(revoked["verdict"] == "deny", "{revoked}");
    Ok(())
}

/// The most datagrams in flight one pod may hold, small so that a flood
/// passes it many times over.
const FRAGMENTS_PER_ENDPOINT: usize = 16;
/// First fragments the flooding pod sends, each of a datagram of its own
/// that it never completes: twice what the fragment table of 46c1b93 held
/// (8192 entries, least recently used evicted), counting the entry at the
/// flooder's egress and the one at the peer's ingress.
const FLOOD: u16 = 8192;

#[test]
fn a_flood_of_first_fragments_does_not_push_out_another_pods_datagram() -> Result<()> {
    require_root();
    let node = Node::new("frag-share")?;
    let flooder = node.add_pod("app/flooder")?;
    let client = node.add_pod("app/client")?;
    let server = node.add_pod("app/server")?;
    let target = node.add_pod("app/target")?;
    let manifests = Manifests::new()?;
    manifests.namespace("app", &[])?;
    for pod in [&flooder, &client] {
        manifests.pod(pod, &[("role", "client")], &[])?;
    }
    for pod in [&server, &target] {
        manifests.pod(
            pod,
            &[("role", "server")],
            &[ContainerPort::new("http", 80, Protocol::Tcp)],
        )?;
    }
    manifests.policy("client-to-server", CLIENT_TO_SERVER)?;
    let per_endpoint = FRAGMENTS_PER_ENDPOINT.to_string();
    let mut daemon = Daemon::start(
        &node,
        manifests.dir(),
        &["--fragments-per-endpoint", &per_endpoint],
    )?;
    daemon.wait_ready(4)?;
    let at_server = Capture::start(&server, "eth0")?;
    let at_target = Capture::start(&target, "eth0")?;

    let in_flight = Datagram::new(&client, &server, 40_020, 1);
    send_ip(&client, &in_flight.first)?;
    ensure!(
        arrives(&at_server, &in_flight.head)?,
        "the client's first fragment"
    );

    // The flooder's datagrams are all allowed: to another server, on UDP 53.
    // Not to the client's server: its inbound share counts the datagrams of
    // every connection opened toward it, so such a flood would fill it and
    // refuse the client's next datagram there (as conntrack does).
    let flood: Vec<Datagram> = (0..FLOOD)
        .map(|id| Datagram::new(&flooder, &target, 40_021, id))
        .collect();
    send_ips(
        &flooder,
        &flood.iter().map(|d| d.first.clone()).collect::<Vec<_>>(),
    )?;

    send_ip(&client, &in_flight.later)?;
    ensure!(
        arrives(&at_server, &in_flight.tail)?,
        "the client's datagram in flight lost its later fragment to the flood"
    );
    let next = Datagram::new(&client, &server, 40_020, 2);
    send_ip(&client, &next.first)?;
    send_ip(&client, &next.later)?;
    ensure!(
        arrives(&at_server, &next.head)? && arrives(&at_server, &next.tail)?,
        "the client could not send a new fragmented datagram after the flood"
    );

    // The flooder got its share through, and no more.
    let mut delivered = 0;
    while at_target
        .wait_for(FLOOD_TAIL, |f| carries(f, b"head of "))?
        .is_some()
    {
        delivered += 1;
    }
    ensure!(
        delivered == FRAGMENTS_PER_ENDPOINT,
        "{delivered} of the flooder's {FLOOD} datagrams reached the target, \
         not its share of {FRAGMENTS_PER_ENDPOINT}"
    );
    let refused = daemon.wait_for_flow(
        |f| f["reason"] == "fragments-full" && f["src_pod"] == "app/flooder",
        FLOW_WAIT,
    )?;
    ensure!(refused["verdict"] == "deny", "{refused}");
    Ok(())
}

/// A UDP socket on `pod`'s IPv6 address, port 53.
fn udp_listener(pod: &Pod) -> Result<UdpSocket> {
    let address = SocketAddr::new(pod.ip(Family::V6), DNS);
    let socket = in_netns(pod.netns_name(), || UdpSocket::bind(address))??;
    socket.set_read_timeout(Some(ARRIVAL))?;
    Ok(socket)
}

#[test]
fn an_ipv6_datagram_with_destination_options_after_its_fragment_header_arrives() -> Result<()> {
    let mut w = world("frag-destopts")?;
    w.allow_client_to_server()?;
    let socket = udp_listener(&w.b)?;
    let at_b = Capture::start(&w.b, "eth0")?;
    let (a, b) = (
        w.a.ip(Family::V6).to_string(),
        w.b.ip(Family::V6).to_string(),
    );
    // The first fragment ends inside "head of the datagram".
    let payload = b"head of the datagram, tail of the datagram, options after its fragment header";
    // The fragmentable part: a Destination Options header (six Pad1
    // options), then the UDP datagram.
    let mut fragmentable = vec![UDP, 0, 0, 0, 0, 0, 0, 0];
    fragmentable.extend(udp_datagram(&a, 40_030, &b, DNS, payload));
    let split = 32;
    let fragment = |bytes: &[u8], offset: usize, more| {
        let offset = (offset / 8) as u16;
        Frame::new(&a, &b, DESTINATION_OPTIONS, bytes.to_vec())
            .with_extension(FRAGMENT_HEADER)
            .fragmented(Fragment {
                id: 9,
                offset,
                more,
            })
            .ip_bytes()
    };
    send_ip(&w.a, &fragment(&fragmentable[..split], 0, true))?;
    send_ip(&w.a, &fragment(&fragmentable[split..], split, false))?;
    ensure!(
        arrives(&at_b, "head of the")?,
        "the first fragment did not reach b"
    );
    ensure!(
        arrives(&at_b, "tail of the")?,
        "the later fragment did not reach b"
    );
    let mut received = vec![0; 2048];
    let (len, from) = socket.recv_from(&mut received).map_err(|e| {
        anyhow::anyhow!("b's socket received no reassembled datagram within {ARRIVAL:?}: {e}")
    })?;
    ensure!(
        &received[..len] == payload,
        "b received {:?}",
        String::from_utf8_lossy(&received[..len])
    );
    let expected = SocketAddr::new(a.parse::<Ipv6Addr>()?.into(), 40_030);
    ensure!(
        from == expected,
        "the datagram came from {from}, not {expected}"
    );
    Ok(())
}
