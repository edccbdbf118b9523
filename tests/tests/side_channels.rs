//! Hostile packets sent from inside a pod, and what arrives: an ICMP error,
//! neighbour discovery or an IPv4-mapped address must not carry data past
//! default deny to an address off the node (the outside host) or into the
//! node's neighbour table, while the legitimate uses still work.

use std::net::{IpAddr, UdpSocket};
use std::time::Duration;

use anyhow::{Result, ensure};
use netseg_testbed::netns::run;
use netseg_testbed::packet::{Frame, ICMPV6};
use netseg_testbed::raw::{carries, ethernet, mac_address};
use netseg_testbed::{
    Capture, Family, Netns, Outside, PROBE_TIMEOUT, Pod, TcpEchoServer, in_netns, outside,
    send_frame, send_ip, tcp_probe,
};

mod common;

use common::{World, world};

/// Long enough for a forwarded packet (and the node's neighbour
/// resolution toward the outside host) to arrive.
const ARRIVAL: Duration = Duration::from_secs(2);

/// a may reach the outside host over IPv4.
const CLIENT_TO_OUTSIDE: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: client-to-outside, namespace: app }
spec:
  podSelector: { matchLabels: { role: client } }
  policyTypes: [Egress]
  egress:
    - to: [{ ipBlock: { cidr: 198.51.100.0/24 } }]
"#;

/// a may open anything to b, b admits UDP 53 from a; the outside host
/// hangs off the node.
fn scene(tag: &str) -> Result<(World, Outside)> {
    let mut w = world(tag)?;
    let outside = Outside::attach(&w.node)?;
    w.allow_client_to_server()?;
    Ok((w, outside))
}

fn addr(pod: &Pod, family: Family) -> String {
    pod.ip(family).to_string()
}

fn unreachable(family: Family) -> u8 {
    match family {
        Family::V4 => 3,
        Family::V6 => 1,
    }
}

/// a's UDP flow to b:53, opened from a fixed port so errors can quote it.
fn open_udp_flow(w: &World, family: Family, port: u16) -> Result<Frame> {
    let sent = Frame::udp(&addr(&w.a, family), port, &addr(&w.b, family), 53);
    send_ip(&w.a, &sent.ip_bytes())?;
    Ok(sent)
}

#[test]
fn an_icmp_error_carries_nothing_off_the_node() -> Result<()> {
    let (w, outside) = scene("icmp-carrier")?;
    let off_node = Capture::start(&outside, outside::IFNAME)?;
    let at_b = Capture::start(&w.b, "eth0")?;
    for family in [Family::V4, Family::V6] {
        open_udp_flow(&w, family, 40_000)?;
        // The reply a would have received: what a's error quotes.
        let reply = Frame::udp(&addr(&w.b, family), 53, &addr(&w.a, family), 40_000);
        let a = addr(&w.a, family);
        let exfiltrated = format!("exfiltrated over icmp {family:?}");
        let carrier = Frame::icmp_error(
            &a,
            &Outside::ip(family).to_string(),
            unreachable(family),
            &reply,
            exfiltrated.as_bytes(),
        );
        send_ip(&w.a, &carrier.ip_bytes())?;
        ensure!(
            !off_node.arrives(ARRIVAL, |f| carries(f, exfiltrated.as_bytes()))?,
            "an ICMP error quoting a's connection reached an address off the node ({family:?})"
        );
        // Between the two ends of the connection, an error still passes.
        let legit = format!("legitimate error {family:?}");
        let error = Frame::icmp_error(
            &a,
            &addr(&w.b, family),
            unreachable(family),
            &reply,
            legit.as_bytes(),
        );
        send_ip(&w.a, &error.ip_bytes())?;
        ensure!(
            at_b.arrives(ARRIVAL, |f| carries(f, legit.as_bytes()))?,
            "an ICMP error between the ends of a's connection did not reach b ({family:?})"
        );
    }
    Ok(())
}

#[test]
fn an_icmp_error_of_a_revoked_connection_does_not_arrive() -> Result<()> {
    let (mut w, _outside) = scene("icmp-revoked")?;
    let at_a = Capture::start(&w.a, "eth0")?;
    let sent = open_udp_flow(&w, Family::V4, 40_001)?;
    let (a, b) = (addr(&w.a, Family::V4), addr(&w.b, Family::V4));
    let error =
        |marker: &str| Frame::icmp_error(&b, &a, unreachable(Family::V4), &sent, marker.as_bytes());
    send_ip(&w.b, &error("before revocation").ip_bytes())?;
    ensure!(
        at_a.arrives(ARRIVAL, |f| carries(f, b"before revocation"))?,
        "b's error about a's allowed connection did not reach a"
    );
    w.apply(|m| m.remove_policy("client-to-server"))?;
    send_ip(&w.b, &error("after revocation").ip_bytes())?;
    ensure!(
        !at_a.arrives(ARRIVAL, |f| carries(f, b"after revocation"))?,
        "an ICMP error of a revoked connection reached a"
    );
    let revoked = w.daemon.wait_for_flow(
        |f| f["reason"] == "revoked" && f["protocol"] == "icmp",
        common::FLOW_WAIT,
    )?;
    ensure!(revoked["verdict"] == "deny", "{revoked}");
    Ok(())
}

/// A neighbour solicitation for `target` from `src` to `dst`, with the
/// sender's link-layer address option and `marker` after it.
fn solicitation(src: &str, dst: &str, target: &str, marker: &[u8]) -> Frame {
    let target: std::net::Ipv6Addr = target.parse().expect("target");
    let mut body = vec![0; 4];
    body.extend_from_slice(&target.octets());
    body.extend_from_slice(&[1, 1, 0x02, 0, 0, 0, 0, 0x66]);
    body.extend_from_slice(marker);
    Frame::icmp(src, dst, 135, &body)
}

#[test]
fn neighbour_discovery_carries_nothing_off_the_node() -> Result<()> {
    let (w, outside) = scene("nd-carrier")?;
    let off_node = Capture::start(&outside, outside::IFNAME)?;
    // From a foreign address to the node's own: the node must not learn it.
    let foreign = solicitation("2001:db8::66", "ff02::1:ff00:1", "fe80::1", &[]);
    send_ip(&w.a, &foreign.ip_bytes())?;
    std::thread::sleep(PROBE_TIMEOUT);
    let neighbours = run(
        "ip",
        &[
            "-n",
            w.node.netns_name(),
            "-6",
            "neigh",
            "show",
            "dev",
            w.a.host_ifname(),
        ],
    )?;
    ensure!(
        !neighbours.contains("2001:db8::66"),
        "the node learnt a neighbour from a's foreign-sourced solicitation: {neighbours}"
    );
    let a = addr(&w.a, Family::V6);
    let marker = b"exfiltrated over neighbour discovery";
    let off_link = solicitation(&a, "2001:db8::1", "2001:db8::1", marker);
    send_ip(&w.a, &off_link.ip_bytes())?;
    ensure!(
        !off_node.arrives(ARRIVAL, |f| carries(f, marker))?,
        "a neighbour solicitation from a reached an address off the node"
    );
    Ok(())
}

#[test]
fn pods_on_ipv6_still_resolve_their_gateway() -> Result<()> {
    let (w, _outside) = scene("nd-gateway")?;
    let _server = TcpEchoServer::start(&w.b, 80)?;
    for (netns, dev) in [
        (w.a.netns_name(), "eth0"),
        (w.b.netns_name(), "eth0"),
        (w.node.netns_name(), w.a.host_ifname()),
        (w.node.netns_name(), w.b.host_ifname()),
    ] {
        run("ip", &["-n", netns, "-6", "neigh", "flush", "dev", dev])?;
    }
    ensure!(
        tcp_probe(&w.a, w.b.ip(Family::V6), 80, PROBE_TIMEOUT)?,
        "a reaches b over IPv6 through a freshly resolved gateway fe80::1"
    );
    Ok(())
}

#[test]
fn an_ipv4_mapped_address_carries_nothing_off_the_node() -> Result<()> {
    let (mut w, outside) = scene("mapped")?;
    w.apply(|m| m.policy("client-to-outside", CLIENT_TO_OUTSIDE).map(drop))?;
    let off_node = Capture::start(&outside, outside::IFNAME)?;
    let mapped = match Outside::ip(Family::V4) {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().to_string(),
        IpAddr::V6(_) => unreachable!("an IPv4 address"),
    };
    let marker = b"exfiltrated to an ipv4-mapped address";
    let mut packet = Frame::udp(&addr(&w.a, Family::V6), 40_002, &mapped, 53);
    packet.l4.extend_from_slice(marker);
    send_ip(&w.a, &packet.ip_bytes())?;
    ensure!(
        !off_node.arrives(ARRIVAL, |f| carries(f, marker))?,
        "an IPv6 packet to {mapped} passed as IPv4 and left the node"
    );
    // The same policy still lets real IPv4 out.
    let marker = b"ipv4 to the outside host";
    let mut packet = Frame::udp(
        &addr(&w.a, Family::V4),
        40_003,
        &Outside::ip(Family::V4).to_string(),
        53,
    );
    packet.l4.extend_from_slice(marker);
    send_ip(&w.a, &packet.ip_bytes())?;
    ensure!(
        off_node.arrives(ARRIVAL, |f| carries(f, marker))?,
        "allowed IPv4 did not reach the outside host"
    );
    Ok(())
}

#[test]
fn the_nodes_fragmentation_needed_still_reaches_the_pod() -> Result<()> {
    let (mut w, _outside) = scene("pmtu")?;
    w.apply(|m| m.policy("client-to-outside", CLIENT_TO_OUTSIDE).map(drop))?;
    run(
        "ip",
        &[
            "-n",
            w.node.netns_name(),
            "link",
            "set",
            outside::NODE_IFNAME,
            "mtu",
            "1280",
        ],
    )?;
    let at_a = Capture::start(&w.a, "eth0")?;
    // A UDP socket sets "don't fragment" on a datagram that fits its route.
    in_netns(w.a.netns_name(), || -> Result<()> {
        let socket = UdpSocket::bind("0.0.0.0:0")?;
        socket.send_to(&[0x5a; 1400], (Outside::ipv4(), 53))?;
        Ok(())
    })??;
    let fragmentation_needed = |f: &[u8]| {
        let ihl = usize::from(f.get(14).copied().unwrap_or(0) & 0x0f) * 4;
        f.get(12..14) == Some(&[0x08, 0x00])
            && f.get(14 + 9) == Some(&1)
            && f.get(14 + ihl..14 + ihl + 2) == Some(&[3, 4])
    };
    ensure!(
        at_a.arrives(ARRIVAL, fragmentation_needed)?,
        "the node's \"fragmentation needed\" did not reach a"
    );
    Ok(())
}

/// a admits UDP 9 from the outside host: the control that shows packets
/// from there reach a at all.
const OUTSIDE_TO_CLIENT: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: outside-to-client, namespace: app }
spec:
  podSelector: { matchLabels: { role: client } }
  policyTypes: [Ingress]
  ingress:
    - from: [{ ipBlock: { cidr: 198.51.100.0/24 } }]
      ports: [{ protocol: UDP, port: 9 }]
"#;

/// Sends an IPv4 packet from the outside host to the node, which routes it.
fn send_from_outside(w: &World, outside: &Outside, packet: &Frame) -> Result<()> {
    let node_side = mac_address(w.node.netns_name(), outside::NODE_IFNAME)?;
    let own = mac_address(outside.netns_name(), outside::IFNAME)?;
    let frame = ethernet(node_side, own, 0x0800, &packet.ip_bytes());
    send_frame(outside, outside::IFNAME, &frame)
}

/// ICMPv6 is ICMPv6 only inside IPv6. At 46c1b93 an IPv4 packet of
/// protocol 58 whose first byte said "neighbour solicitation" passed as
/// link control from anywhere to anywhere (found by the differential
/// fuzzer); it is a protocol a rule must allow.
#[test]
fn icmpv6_inside_ipv4_carries_nothing_into_a_pod() -> Result<()> {
    let (mut w, outside) = scene("nd-in-v4")?;
    w.apply(|m| m.policy("outside-to-client", OUTSIDE_TO_CLIENT).map(drop))?;
    let at_a = Capture::start(&w.a, "eth0")?;
    let from = Outside::ipv4().to_string();
    let to = addr(&w.a, Family::V4);
    let admitted_marker = b"admitted from the outside";
    let mut admitted = Frame::udp(from.as_str(), 4000, to.as_str(), 9);
    admitted.l4.extend_from_slice(admitted_marker);
    send_from_outside(&w, &outside, &admitted)?;
    ensure!(
        at_a.arrives(ARRIVAL, |f| carries(f, admitted_marker))?,
        "control: UDP 9 from the outside host, which a admits, did not arrive"
    );
    let marker = b"smuggled as neighbour discovery in IPv4";
    let mut solicitation = vec![135, 0, 0, 0, 0, 0, 0, 0];
    solicitation.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    solicitation.extend_from_slice(marker);
    let smuggled = Frame::new(from.as_str(), to.as_str(), ICMPV6, solicitation);
    send_from_outside(&w, &outside, &smuggled)?;
    ensure!(
        !at_a.arrives(ARRIVAL, |f| carries(f, marker))?,
        "an IPv4 packet of protocol 58 from the outside host reached a"
    );
    Ok(())
}
