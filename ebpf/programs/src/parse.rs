//! Packet parsing. A header in the packet's linear part (nearly always:
//! the stack puts the headers there) is read straight from it; one that is
//! not, or a packet too short for it, goes through `bpf_skb_load_bytes`,
//! which reads paged data and fails on a short packet. Callers turn any
//! failure into a drop. The common headers (IPv4, TCP, UDP, SCTP) are read
//! whole, once each.

use core::{intrinsics::is_val_statically_known, mem::size_of};

use aya_ebpf::programs::TcContext;
use netseg_contract::{PROTO_ICMP, PROTO_ICMPV6, PROTO_SCTP, PROTO_TCP, PROTO_UDP, reason};

pub const ETH_HLEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_ARP: u16 = 0x0806;
const IPV6_HLEN: usize = 40;
/// IPv6 extension headers walked before the program gives up (and drops).
const MAX_EXTENSION_HEADERS: usize = 6;

pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_ACK: u8 = 0x10;

/// What the packet is, for the classifier.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// TCP, UDP, SCTP, ICMP echo, or any other protocol (ports 0).
    Flow,
    /// ICMP(v6) echo reply: may only belong to a connection.
    EchoReply,
    /// ICMP(v6) error; `inner` is the quoted packet's tuple.
    IcmpError,
    /// ARP: link housekeeping that IP cannot route.
    Arp,
    /// Neighbour discovery and MLD: link housekeeping in IPv6 packets,
    /// which must not be addressed beyond the link.
    LinkControl,
    /// A non-first fragment: ports come from the first fragment.
    LaterFragment,
}

/// An address, IPv4-mapped for IPv4. Aligned so that the compiler zeroes,
/// copies and compares it with word operations: byte-aligned 16-byte
/// arrays become calls to byte-loop memset/memcpy in BPF.
#[repr(C, align(8))]
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Addr(pub [u8; 16]);

impl Addr {
    pub const ZERO: Addr = Addr([0; 16]);

    /// `::ffff:a.b.c.d`, built from two words: zeroing ten bytes one by
    /// one would again become a memset call.
    #[inline(always)]
    pub fn mapped_ipv4(v4: [u8; 4]) -> Addr {
        let low = u64::from_le_bytes([0, 0, 0xff, 0xff, v4[0], v4[1], v4[2], v4[3]]);
        // SAFETY: [u64; 2] and [u8; 16] have the same size and every bit
        // pattern is valid for both; the bytes land in memory order.
        Addr(unsafe { core::mem::transmute::<[u64; 2], [u8; 16]>([0, low]) })
    }

    #[inline(always)]
    pub fn is_ipv4_mapped(&self) -> bool {
        self.0[..10] == [0; 10] && self.0[10] == 0xff && self.0[11] == 0xff
    }

    /// fe80::/10.
    #[inline(always)]
    pub fn is_link_local(&self) -> bool {
        self.0[0] == 0xfe && self.0[1] & 0xc0 == 0x80
    }

    /// The link-scope groups that neighbour discovery and MLD address:
    /// all-nodes ff02::1, all-routers ff02::2, MLDv2 routers ff02::16 and
    /// the solicited-node groups ff02::1:ff00:0/104.
    #[inline(always)]
    pub fn is_link_control_group(&self) -> bool {
        let a = &self.0;
        if a[0] != 0xff || a[1] != 0x02 || a[2..11] != [0; 9] {
            return false;
        }
        let solicited_node = a[11] == 1 && a[12] == 0xff;
        let well_known = a[11..15] == [0; 4] && matches!(a[15], 1 | 2 | 0x16);
        solicited_node || well_known
    }
}

/// A connection's addressing.
#[derive(Clone, Copy)]
pub struct Tuple {
    pub src: Addr,
    pub dst: Addr,
    pub protocol: u8,
    /// Network byte order.
    pub src_port: u16,
    pub dst_port: u16,
}

pub struct Packet {
    pub kind: Kind,
    pub tuple: Tuple,
    pub tcp_flags: u8,
    /// First fragment of a fragmented datagram (ports present, more follow).
    pub first_fragment: bool,
    pub fragment_id: u32,
    /// What keys a fragmented datagram beside its addresses and id: IPv4's
    /// protocol, or the Next Header of IPv6's Fragment header, which first
    /// and later fragments share whatever extension headers follow it.
    /// Set only for packets that carry a fragment header.
    pub fragment_protocol: u8,
    /// The quoted packet of an ICMP error.
    pub inner: Tuple,
}

pub type Drop = u8;

#[inline(always)]
fn load<T>(ctx: &TcContext, offset: usize) -> Result<T, Drop> {
    // At an offset the compiler knows (the verifier follows a constant
    // offset; a computed one it loses once the compiler folds it).
    let start = ctx.data();
    if is_val_statically_known(offset) && start + offset + size_of::<T>() <= ctx.data_end() {
        // SAFETY: the bytes lie between `data` and `data_end`, as checked
        // just above (the verifier checks it too).
        return Ok(unsafe { ((start + offset) as *const T).read_unaligned() });
    }
    ctx.load::<T>(offset).map_err(|_| reason::MALFORMED)
}

#[inline(always)]
fn load_u16(ctx: &TcContext, offset: usize) -> Result<u16, Drop> {
    load::<u16>(ctx, offset).map(u16::from_be)
}

/// Parses into `packet`, a per-CPU scratch slot (the BPF stack is too small
/// to hold it beside the map keys).
#[inline(always)]
pub fn parse(ctx: &TcContext, packet: &mut Packet) -> Result<(), Drop> {
    let ethertype = load_u16(ctx, 12)?;
    // Addresses are written by the IP parsers (and cleared on the error
    // path); zeroing whole tuples here would cost a memset call per packet.
    packet.kind = Kind::Flow;
    packet.tuple.protocol = 0;
    packet.tuple.src_port = 0;
    packet.tuple.dst_port = 0;
    packet.tcp_flags = 0;
    packet.first_fragment = false;
    packet.fragment_id = 0;
    packet.inner.protocol = 0;
    packet.inner.src_port = 0;
    packet.inner.dst_port = 0;
    match ethertype {
        ETH_P_IP => parse_ipv4(ctx, packet),
        ETH_P_IPV6 => parse_ipv6(ctx, packet),
        ETH_P_ARP => {
            // Not IP: no addresses for a flow record, rather than stale ones.
            packet.tuple.src = Addr::ZERO;
            packet.tuple.dst = Addr::ZERO;
            packet.kind = Kind::Arp;
            Ok(())
        }
        _ => Err(reason::UNSUPPORTED_L3),
    }
}

#[inline(always)]
fn parse_ipv4(ctx: &TcContext, packet: &mut Packet) -> Result<(), Drop> {
    let header: [u8; 20] = load(ctx, ETH_HLEN)?;
    let version_ihl = header[0];
    let header_len = ((version_ihl & 0x0f) as usize) * 4;
    if version_ihl >> 4 != 4 || header_len < 20 {
        return Err(reason::MALFORMED);
    }
    let fragment = u16::from_be_bytes([header[6], header[7]]);
    let more_fragments = fragment & 0x2000 != 0;
    let offset = fragment & 0x1fff;
    packet.fragment_id = u16::from_be_bytes([header[4], header[5]]) as u32;
    packet.tuple.protocol = header[9];
    packet.fragment_protocol = header[9];
    packet.tuple.src = Addr::mapped_ipv4([header[12], header[13], header[14], header[15]]);
    packet.tuple.dst = Addr::mapped_ipv4([header[16], header[17], header[18], header[19]]);
    if offset != 0 {
        packet.kind = Kind::LaterFragment;
        return Ok(());
    }
    packet.first_fragment = more_fragments;
    // Nearly every IPv4 header has no options: at a constant offset, the
    // transport header is read straight from the packet.
    if header_len == 20 {
        parse_l4(ctx, packet, ETH_HLEN + 20, false)
    } else {
        parse_l4(ctx, packet, ETH_HLEN + header_len, false)
    }
}

#[inline(always)]
fn parse_ipv6(ctx: &TcContext, packet: &mut Packet) -> Result<(), Drop> {
    let version: u8 = load(ctx, ETH_HLEN)?;
    if version >> 4 != 6 {
        return Err(reason::MALFORMED);
    }
    let mut next: u8 = load(ctx, ETH_HLEN + 6)?;
    let hop_limit: u8 = load(ctx, ETH_HLEN + 7)?;
    packet.tuple.src = Addr(load(ctx, ETH_HLEN + 8)?);
    packet.tuple.dst = Addr(load(ctx, ETH_HLEN + 24)?);
    reject_ipv4_mapped(&packet.tuple)?;
    let mut offset = ETH_HLEN + IPV6_HLEN;
    let mut walked = 0;
    while walked < MAX_EXTENSION_HEADERS {
        match next {
            // Hop-by-hop, routing, destination options: length in 8-octet units.
            0 | 43 | 60 => {
                let header: [u8; 2] = load(ctx, offset)?;
                next = header[0];
                offset += (header[1] as usize + 1) * 8;
            }
            // Authentication header: length in 4-octet units, minus 2.
            51 => {
                let header: [u8; 2] = load(ctx, offset)?;
                next = header[0];
                offset += (header[1] as usize + 2) * 4;
            }
            44 => {
                let header: [u8; 8] = load(ctx, offset)?;
                next = header[0];
                packet.fragment_protocol = next;
                let fragment = u16::from_be_bytes([header[2], header[3]]);
                packet.fragment_id =
                    u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
                offset += 8;
                if fragment >> 3 != 0 {
                    packet.tuple.protocol = next;
                    packet.kind = Kind::LaterFragment;
                    return Ok(());
                }
                packet.first_fragment = fragment & 1 != 0;
            }
            _ => break,
        }
        walked += 1;
    }
    if walked == MAX_EXTENSION_HEADERS && matches!(next, 0 | 43 | 44 | 51 | 60) {
        return Err(reason::EXTENSION_HEADERS);
    }
    packet.tuple.protocol = next;
    // Without extension headers (nearly always), at a constant offset the
    // transport header is read straight from the packet.
    if walked == 0 {
        parse_l4(ctx, packet, ETH_HLEN + IPV6_HLEN, true)?;
    } else {
        parse_l4(ctx, packet, offset, true)?;
    }
    if packet.kind == Kind::LinkControl && !valid_link_control(packet, hop_limit) {
        return Err(reason::MALFORMED);
    }
    Ok(())
}

/// IPv4-mapped addresses (::ffff:0:0/96) stand for IPv4 inside a host and
/// never appear on the wire (RFC 4291 2.5.5.2). The program stores IPv4
/// addresses in that form, so an IPv6 packet carrying one would be judged
/// by the IPv4 rules and its pod's IPv4 address: it is malformed.
#[inline(always)]
fn reject_ipv4_mapped(tuple: &Tuple) -> Result<(), Drop> {
    if tuple.src.is_ipv4_mapped() || tuple.dst.is_ipv4_mapped() {
        return Err(reason::MALFORMED);
    }
    Ok(())
}

/// Neighbour discovery must arrive with hop limit 255 (RFC 4861) and MLD
/// with hop limit 1 from a link-local source (RFC 3810), so neither can be
/// forwarded to a pod from off the link.
#[inline(always)]
fn valid_link_control(packet: &Packet, hop_limit: u8) -> bool {
    let link_local = packet.tuple.src.is_link_local();
    let unspecified = packet.tuple.src == Addr::ZERO;
    match packet.tuple.src_port {
        133..=136 => hop_limit == 255,
        _ => hop_limit == 1 && (link_local || unspecified),
    }
}

/// The ICMP of an IP family.
#[inline(always)]
fn icmp_protocol(v6: bool) -> u8 {
    if v6 { PROTO_ICMPV6 } else { PROTO_ICMP }
}

#[inline(always)]
fn parse_l4(ctx: &TcContext, packet: &mut Packet, offset: usize, v6: bool) -> Result<(), Drop> {
    // Each header is read whole (the TCP one up to its flags), so a
    // truncated one fails here. ICMP is read as such only in its own
    // family: ICMPv6 inside IPv4 (or ICMP inside IPv6) is no neighbour
    // discovery and no error, just a protocol without ports.
    match packet.tuple.protocol {
        PROTO_TCP => {
            let header: [u8; 14] = load(ctx, offset)?;
            set_ports(&mut packet.tuple, &header);
            packet.tcp_flags = header[13];
        }
        PROTO_UDP => {
            let header: [u8; 8] = load(ctx, offset)?;
            set_ports(&mut packet.tuple, &header);
        }
        PROTO_SCTP => {
            let header: [u8; 12] = load(ctx, offset)?;
            set_ports(&mut packet.tuple, &header);
        }
        protocol if protocol == icmp_protocol(v6) => parse_icmp(ctx, packet, offset, v6)?,
        _ => {}
    }
    Ok(())
}

/// Ports from the first four bytes of a TCP, UDP or SCTP header, kept in
/// network byte order.
#[inline(always)]
fn set_ports(tuple: &mut Tuple, header: &[u8]) {
    tuple.src_port = u16::from_ne_bytes([header[0], header[1]]);
    tuple.dst_port = u16::from_ne_bytes([header[2], header[3]]);
}

#[inline(always)]
fn read_ports(ctx: &TcContext, tuple: &mut Tuple, offset: usize) -> Result<(), Drop> {
    let ports: [u16; 2] = load(ctx, offset)?;
    tuple.src_port = ports[0];
    tuple.dst_port = ports[1];
    Ok(())
}

/// Echo requests and replies are tracked by their identifier (used as both
/// ports); errors carry the packet they are about.
#[inline(always)]
fn parse_icmp(ctx: &TcContext, packet: &mut Packet, offset: usize, v6: bool) -> Result<(), Drop> {
    let header: [u8; 2] = load(ctx, offset)?;
    let icmp_type = header[0];
    let (echo_request, echo_reply) = if v6 { (128, 129) } else { (8, 0) };
    if icmp_type == echo_request || icmp_type == echo_reply {
        let id: u16 = load(ctx, offset + 4)?;
        packet.tuple.src_port = id;
        packet.tuple.dst_port = id;
        if icmp_type == echo_reply {
            packet.kind = Kind::EchoReply;
        }
        return Ok(());
    }
    let is_error = if v6 {
        matches!(icmp_type, 1..=4)
    } else {
        matches!(icmp_type, 3 | 11 | 12)
    };
    if is_error {
        packet.kind = Kind::IcmpError;
        return if v6 {
            parse_inner_ipv6(ctx, packet, offset + 8)
        } else {
            parse_inner_ipv4(ctx, packet, offset + 8)
        };
    }
    if v6 && matches!(icmp_type, 130..=136 | 143) {
        packet.kind = Kind::LinkControl;
        // Kept for valid_link_control: the type decides the hop-limit rule.
        packet.tuple.src_port = icmp_type as u16;
    }
    Ok(())
}

#[inline(always)]
fn parse_inner_ipv4(ctx: &TcContext, packet: &mut Packet, offset: usize) -> Result<(), Drop> {
    let version_ihl: u8 = load(ctx, offset)?;
    let header_len = ((version_ihl & 0x0f) as usize) * 4;
    if version_ihl >> 4 != 4 || header_len < 20 {
        return Err(reason::MALFORMED);
    }
    packet.inner.protocol = load(ctx, offset + 9)?;
    packet.inner.src = Addr::mapped_ipv4(load(ctx, offset + 12)?);
    packet.inner.dst = Addr::mapped_ipv4(load(ctx, offset + 16)?);
    read_inner_ports(ctx, packet, offset + header_len, false)
}

#[inline(always)]
fn parse_inner_ipv6(ctx: &TcContext, packet: &mut Packet, offset: usize) -> Result<(), Drop> {
    let version: u8 = load(ctx, offset)?;
    if version >> 4 != 6 {
        return Err(reason::MALFORMED);
    }
    packet.inner.protocol = load(ctx, offset + 6)?;
    packet.inner.src = Addr(load(ctx, offset + 8)?);
    packet.inner.dst = Addr(load(ctx, offset + 24)?);
    reject_ipv4_mapped(&packet.inner)?;
    read_inner_ports(ctx, packet, offset + IPV6_HLEN, true)
}

#[inline(always)]
fn read_inner_ports(
    ctx: &TcContext,
    packet: &mut Packet,
    offset: usize,
    v6: bool,
) -> Result<(), Drop> {
    match packet.inner.protocol {
        PROTO_TCP | PROTO_UDP | PROTO_SCTP => read_ports(ctx, &mut packet.inner, offset),
        protocol if protocol == icmp_protocol(v6) => {
            let id: u16 = load(ctx, offset + 4)?;
            packet.inner.src_port = id;
            packet.inner.dst_port = id;
            Ok(())
        }
        _ => Ok(()),
    }
}
