//! Random frames for the fuzzer, biased toward what the rules look at: the
//! endpoint's own and its peers' addresses, the allowed ports, the tuples
//! of connections and datagrams the model already tracks, every extension
//! header the program walks, then random mutations and truncations.

use std::net::{IpAddr, Ipv6Addr};

use super::super::model::{
    Addr, Connection, Datagram, Direction, ICMP, ICMPV6, Model, SCTP, TCP, Tuple, UDP,
};
use super::super::packet::{Fragment, Frame, ethernet};
use super::rng::Rng;

const OWN_V4: &str = "10.0.0.1";
const OWN_V6: &str = "fd00::1";
/// Peers (identity 16, 17, the world), the endpoint itself, special and
/// IPv4-mapped addresses.
const OTHERS_V4: &[&str] = &[
    "10.0.0.2",
    "10.0.0.2",
    "10.0.0.3",
    "192.0.2.7",
    "10.0.0.1",
    "0.0.0.0",
    "224.0.0.1",
];
const OTHERS_V6: &[&str] = &[
    "fd00::2",
    "fd00::2",
    "2001:db8::7",
    "fd00::1",
    "fe80::1",
    "ff02::1",
    "ff02::1:ff00:1",
    "::ffff:10.0.0.2",
    "::ffff:10.0.0.1",
    "::",
];
/// Link control addresses: link-local, link-scope multicast, and others.
const LINK_V6: &[&str] = &[
    "fe80::1",
    "fe80::2",
    "ff02::1",
    "ff02::2",
    "ff02::16",
    "ff02::1:ff00:1",
    "ff05::1",
    "::",
    "fd00::1",
    "fd00::2",
    "2001:db8::7",
    "::ffff:10.0.0.1",
];
const DST_PORTS: &[u16] = &[80, 80, 53, 53, 8000, 8001, 8003, 8004, 7999, 81, 0];
const SRC_PORTS: &[u16] = &[4000, 4001, 4002, 4003, 80, 53, 8000, 8002];
const TCP_FLAGS: &[u8] = &[
    0x02, 0x02, 0x12, 0x10, 0x10, 0x11, 0x04, 0x14, 0x03, 0x06, 0x00, 0xff, 0x18, 0xc2, 0x01,
];
const ECHO_IDS: &[u16] = &[7, 8, 9];
const FRAGMENT_IDS: &[u16] = &[1, 2, 3, 4];
/// Hop-by-hop, routing, fragment (offset 0 unless the frame is a later
/// fragment), authentication, destination options.
const EXTENSION_HEADERS: &[u8] = &[0, 43, 44, 51, 60, 60];

/// One frame to run, and how it was made (for the failure report).
pub struct Generated {
    pub direction: Direction,
    pub frame: Vec<u8>,
    pub shape: &'static str,
}

pub fn generate(rng: &mut Rng, model: &Model) -> Generated {
    let direction = rng.pick(&[Direction::Egress, Direction::Ingress]);
    let (direction, frame, shape) = match rng.below(100) {
        0..=29 => (direction, fresh_flow(rng, direction), "new flow"),
        30..=54 => continue_connection(rng, model)
            .map(|(d, f)| (d, f, "connection"))
            .unwrap_or_else(|| (direction, fresh_flow(rng, direction), "new flow")),
        55..=69 => (direction, icmp_error(rng, model, direction), "icmp error"),
        70..=81 => fragment(rng, model, direction),
        82..=93 => (direction, link_control(rng, direction), "link control"),
        _ => return odd_frame(rng, direction),
    };
    let mut bytes = decorate(rng, frame).bytes();
    let shape = if rng.percent(15) {
        mutate(rng, &mut bytes);
        "mutated"
    } else {
        shape
    };
    Generated {
        direction,
        frame: bytes,
        shape,
    }
}

fn address(text: &str) -> IpAddr {
    text.parse().expect("fuzz address")
}

/// Source and destination: the pod's end is its own address nine times
/// in ten, the other end any of `others`.
fn ends(rng: &mut Rng, direction: Direction, v6: bool) -> (IpAddr, IpAddr) {
    let (own, others) = if v6 {
        (OWN_V6, OTHERS_V6)
    } else {
        (OWN_V4, OTHERS_V4)
    };
    let pod = address(if rng.percent(90) {
        own
    } else {
        rng.pick(others)
    });
    let other = address(rng.pick(others));
    match direction {
        Direction::Egress => (pod, other),
        Direction::Ingress => (other, pod),
    }
}

fn fresh_flow(rng: &mut Rng, direction: Direction) -> Frame {
    let v6 = rng.percent(50);
    let (src, dst) = ends(rng, direction, v6);
    let sport = rng.pick(SRC_PORTS);
    let dport = rng.pick(DST_PORTS);
    let family_icmp = if v6 { ICMPV6 } else { ICMP };
    match rng.below(100) {
        0..=34 => Frame::tcp(src, sport, dst, dport, rng.pick(TCP_FLAGS)),
        35..=54 => Frame::udp(src, sport, dst, dport),
        55..=64 => Frame::sctp(src, sport, dst, dport),
        65..=84 => echo(src, dst, family_icmp, rng.pick(ECHO_IDS), rng.percent(30)),
        // Informational messages other than echo (timestamp, router
        // advertisement, ...), and ICMP of the other family.
        85..=92 => {
            let protocol = if rng.percent(80) {
                family_icmp
            } else {
                ICMP + ICMPV6 - family_icmp
            };
            let icmp_type = rng.pick(&[13, 14, 9, 10, 137, 200, 0, 8, 128, 129]);
            Frame::new(src, dst, protocol, vec![icmp_type, 0, 0, 0, 0, 7, 0, 1])
        }
        _ => Frame::new(src, dst, rng.pick(&[253, 47, 4, 41, 0, 255]), vec![0; 16]),
    }
}

/// An echo request or reply of the ICMP `protocol`, whatever the family.
fn echo(src: IpAddr, dst: IpAddr, protocol: u8, id: u16, reply: bool) -> Frame {
    let icmp_type = match (protocol == ICMPV6, reply) {
        (false, false) => 8,
        (false, true) => 0,
        (true, false) => 128,
        (true, true) => 129,
    };
    let mut l4 = vec![icmp_type, 0, 0, 0];
    l4.extend_from_slice(&id.to_be_bytes());
    l4.extend_from_slice(&[0, 1]);
    Frame::new(src, dst, protocol, l4)
}

/// A packet with `tuple`'s addressing: TCP with random flags, an echo
/// request or reply, or the protocol's header.
fn packet_of(rng: &mut Rng, tuple: &Tuple) -> Frame {
    let (src, dst) = family(tuple.src, tuple.dst);
    let (sport, dport) = (tuple.src_port, tuple.dst_port);
    match tuple.protocol {
        TCP => Frame::tcp(src, sport, dst, dport, rng.pick(TCP_FLAGS)),
        UDP => Frame::udp(src, sport, dst, dport),
        SCTP => Frame::sctp(src, sport, dst, dport),
        ICMP | ICMPV6 => echo(src, dst, tuple.protocol, sport, rng.percent(50)),
        protocol => Frame::new(src, dst, protocol, vec![0; 16]),
    }
}

/// Both ends in one family: IPv4 when both are IPv4-mapped, else IPv6
/// (which may carry an IPv4-mapped address).
fn family(src: Addr, dst: Addr) -> (IpAddr, IpAddr) {
    match (src.ip(), dst.ip()) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => (src.into(), dst.into()),
        _ => (Ipv6Addr::from(src.0).into(), Ipv6Addr::from(dst.0).into()),
    }
}

fn sorted<T: Ord + Copy>(items: impl Iterator<Item = T>) -> Vec<T> {
    let mut items: Vec<T> = items.collect();
    items.sort();
    items
}

/// A packet at `direction` of a connection the model tracks: its tuple as
/// its first packet had it, or reversed.
fn tuple_at(connection: &Connection, direction: Direction) -> Tuple {
    if connection.origin == direction {
        connection.tuple
    } else {
        connection.tuple.reversed()
    }
}

fn continue_connection(rng: &mut Rng, model: &Model) -> Option<(Direction, Frame)> {
    let connections = sorted(model.connections().copied());
    if connections.is_empty() {
        return None;
    }
    let connection = rng.pick(&connections);
    let direction = rng.pick(&[Direction::Egress, Direction::Ingress]);
    Some((direction, packet_of(rng, &tuple_at(&connection, direction))))
}

/// An ICMP error at `direction` quoting a packet that crossed the other
/// way: mostly one of a tracked connection, addressed between its ends or
/// anywhere, sometimes padded past the size an error needs.
fn icmp_error(rng: &mut Rng, model: &Model, direction: Direction) -> Frame {
    let connections = sorted(model.connections().copied());
    let quoted = if !connections.is_empty() && rng.percent(75) {
        let connection = rng.pick(&connections);
        // Now and then a packet that went the same way as the error.
        let crossed = if rng.percent(85) {
            opposite(direction)
        } else {
            direction
        };
        packet_of(rng, &tuple_at(&connection, crossed))
    } else {
        fresh_flow(rng, opposite(direction))
    };
    let quoted = if quoted.src.is_ipv4() && rng.percent(10) {
        quoted.with_ipv4_options(rng.pick(&[1, 3]))
    } else {
        quoted
    };
    let v6 = if rng.percent(90) {
        quoted.src.is_ipv6()
    } else {
        rng.percent(50)
    };
    let (mut src, mut dst) = ends(rng, direction, v6);
    if rng.percent(60) && quoted.src.is_ipv6() == v6 {
        match direction {
            Direction::Egress => dst = quoted.src,
            Direction::Ingress => src = quoted.dst,
        }
    }
    let icmp_type = if v6 {
        rng.pick(&[1, 1, 2, 3, 4])
    } else {
        rng.pick(&[3, 3, 11, 12, 4, 5])
    };
    let mut error = Frame::icmp_error(src, dst, icmp_type, &quoted, &[]);
    if rng.percent(10) {
        error.l4.resize(rng.pick(&[540, 560, 1200, 1240, 1300]), 0);
    }
    error
}

fn opposite(direction: Direction) -> Direction {
    match direction {
        Direction::Egress => Direction::Ingress,
        Direction::Ingress => Direction::Egress,
    }
}

/// A first fragment of a new flow, or a later fragment of a datagram the
/// model remembers or of none; IPv6 ones with other extension headers
/// around the Fragment header.
fn fragment(
    rng: &mut Rng,
    model: &Model,
    direction: Direction,
) -> (Direction, Frame, &'static str) {
    let datagrams = sorted(model.datagrams().copied());
    let id = rng.pick(FRAGMENT_IDS);
    if datagrams.is_empty() || rng.percent(45) {
        let first = fresh_flow(rng, direction).fragmented(Fragment {
            id,
            offset: 0,
            more: true,
        });
        return (
            direction,
            with_fragment_header(rng, first),
            "first fragment",
        );
    }
    let datagram: Datagram = rng.pick(&datagrams);
    let direction = if rng.percent(90) {
        datagram.direction
    } else {
        opposite(datagram.direction)
    };
    let later = Fragment {
        id: if rng.percent(90) {
            datagram.id as u16
        } else {
            id
        },
        offset: rng.pick(&[1, 2, 185]),
        more: rng.percent(50),
    };
    let protocol = if rng.percent(80) {
        datagram.protocol
    } else {
        rng.pick(&[UDP, TCP, 60])
    };
    let (src, dst) = family(datagram.src, datagram.dst);
    let frame = Frame::new(src, dst, protocol, vec![0; 24]).fragmented(later);
    (
        direction,
        with_fragment_header(rng, frame),
        "later fragment",
    )
}

/// IPv6 fragments carry a Fragment header, sometimes after or before a
/// Destination Options header.
fn with_fragment_header(rng: &mut Rng, frame: Frame) -> Frame {
    if frame.src.is_ipv4() {
        return frame;
    }
    match rng.below(4) {
        0 => frame.with_extension(60).with_extension(44),
        1 if frame.fragment.offset == 0 => frame.with_extension(44).with_extension(60),
        _ => frame.with_extension(44),
    }
}

/// Neighbour discovery and MLD, with the right hop limit mostly; now and
/// then in an IPv4 packet.
fn link_control(rng: &mut Rng, direction: Direction) -> Frame {
    let icmp_type = rng.pick(&[130, 131, 132, 133, 134, 135, 136, 143, 137]);
    let mut body = vec![0; 20];
    body[4] = 0xfe;
    body[5] = 0x80;
    if rng.percent(10) {
        let (src, dst) = ends(rng, direction, false);
        return Frame::new(src, dst, ICMPV6, [vec![icmp_type, 0, 0, 0], body].concat());
    }
    let pod = if rng.percent(60) {
        OWN_V6
    } else {
        rng.pick(LINK_V6)
    };
    let other = address(rng.pick(LINK_V6));
    let (src, dst) = match direction {
        Direction::Egress => (address(pod), other),
        Direction::Ingress => (other, address(pod)),
    };
    let right_hop_limit = if (133..=136).contains(&icmp_type) {
        255
    } else {
        1
    };
    let hop_limit = if rng.percent(80) {
        right_hop_limit
    } else {
        rng.pick(&[1, 64, 255])
    };
    Frame::icmp(src, dst, icmp_type, &body).with_hop_limit(hop_limit)
}

/// Neither IPv4, IPv6 nor ARP as they should be: other ethertypes, VLAN
/// tags, the wrong IP version behind an ethertype, random payloads.
fn odd_frame(rng: &mut Rng, direction: Direction) -> Generated {
    let ethertype = rng.pick(&[
        0x0806, 0x88cc, 0x8100, 0x86dd, 0x0800, 0x88a8, 0x0000, 0xffff,
    ]);
    let len = rng.below(90);
    let mut payload: Vec<u8> = (0..len).map(|_| rng.byte()).collect();
    if let Some(first) = payload.first_mut() {
        *first = rng.pick(&[0x45, 0x46, 0x60, 0x40, 0x4f, *first]);
    }
    Generated {
        direction,
        frame: ethernet(ethertype, &payload),
        shape: "odd frame",
    }
}

/// Extension headers on IPv6, options on IPv4, now and then.
fn decorate(rng: &mut Rng, mut frame: Frame) -> Frame {
    if frame.src.is_ipv6() && rng.percent(20) {
        let count = rng.pick(&[1, 2, 3, 5, 6, 7]);
        let mut headers: Vec<u8> = (0..count).map(|_| rng.pick(EXTENSION_HEADERS)).collect();
        headers.extend_from_slice(&frame.extensions);
        frame.extensions = headers;
    }
    if frame.src.is_ipv4() && rng.percent(10) {
        frame = frame.with_ipv4_options(rng.pick(&[1, 2, 5, 10]));
    }
    frame
}

/// Truncates the frame, or changes one of its header bytes. Built frames
/// hold at least an Ethernet and an IPv4 header.
fn mutate(rng: &mut Rng, frame: &mut Vec<u8>) {
    match rng.below(3) {
        0 => frame.truncate(14 + rng.below(frame.len() - 13)),
        1 => {
            let at = rng.below(frame.len().min(96));
            frame[at] ^= 1 << rng.below(8);
        }
        _ => {
            let at = 14 + rng.below(frame.len().min(96) - 14);
            frame[at] = rng.byte();
        }
    }
}
