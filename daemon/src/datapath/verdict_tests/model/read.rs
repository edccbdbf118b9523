//! What the rules need to know about a frame, read from its bytes the way
//! the datapath documents it: Ethernet, then IPv4 or IPv6 (at most six
//! extension headers walked), then the transport header or, for an ICMP
//! error, the header of the packet it quotes. A header that does not fit in
//! the frame is `malformed`.

use netseg_contract::reason;

use super::{Addr, Rules, Tuple};

const ETHERNET_HEADER: usize = 14;
const IPV6_HEADER: usize = 40;
/// More extension headers than this are `extension-headers`.
const MAX_EXTENSION_HEADERS: usize = 6;

pub const TCP: u8 = 6;
pub const UDP: u8 = 17;
pub const SCTP: u8 = 132;
pub const ICMP: u8 = 1;
pub const ICMPV6: u8 = 58;
const FRAGMENT_HEADER: u8 = 44;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// ARP: pods resolve their gateway.
    Arp,
    /// ICMPv6 neighbour discovery (133-136) and MLD (130-132, 143).
    LinkControl { icmp_type: u8 },
    /// Opens or continues a connection: TCP, UDP, SCTP, an echo request,
    /// any other ICMP message or protocol (ports 0).
    Flow,
    /// May only continue a connection.
    EchoReply,
    /// An ICMP or ICMPv6 error about the packet it quotes.
    IcmpError { quoted: Tuple },
    /// A non-first fragment: no transport header.
    LaterFragment,
}

#[derive(Clone, Copy, Debug)]
pub struct Packet {
    pub kind: Kind,
    /// Ports 0 where the protocol has none; an echo's identifier as both.
    pub tuple: Tuple,
    pub tcp_flags: u8,
    pub ipv6: bool,
    pub hop_limit: u8,
    /// Offset 0 with more fragments to come.
    pub first_fragment: bool,
    pub fragment_id: u32,
    /// The protocol field of the IPv4 header, or the next header of the
    /// IPv6 Fragment header (which may be another extension header).
    pub fragment_next: u8,
    /// The IP packet's length (the frame without its Ethernet header).
    pub ip_len: usize,
}

struct Bytes<'a> {
    frame: &'a [u8],
    ipv4_mapped_malformed: bool,
    icmp_in_its_own_family: bool,
}

impl Bytes<'_> {
    fn at<const N: usize>(&self, offset: usize) -> Result<[u8; N], u8> {
        self.frame
            .get(offset..offset + N)
            .map(|bytes| bytes.try_into().expect("N bytes"))
            .ok_or(reason::MALFORMED)
    }

    fn byte(&self, offset: usize) -> Result<u8, u8> {
        self.at::<1>(offset).map(|[byte]| byte)
    }

    fn u16(&self, offset: usize) -> Result<u16, u8> {
        self.at(offset).map(u16::from_be_bytes)
    }

    /// The addresses of an IPv6 header at `offset`.
    fn ipv6_addresses(&self, offset: usize) -> Result<(Addr, Addr), u8> {
        let src = Addr(self.at(offset + 8)?);
        let dst = Addr(self.at(offset + 24)?);
        if self.ipv4_mapped_malformed && (src.is_ipv4_mapped() || dst.is_ipv4_mapped()) {
            return Err(reason::MALFORMED);
        }
        Ok((src, dst))
    }
}

/// The packet, or the reason it is dropped before any rule looks at it.
/// With `ipv4_mapped_ipv6_malformed`, an IPv4-mapped address in an IPv6
/// header, or in the IPv6 header an ICMPv6 error quotes, is malformed (IPv4
/// never travels in that form), and so is a quoted header that is not IPv6.
/// With `icmp_in_its_own_family`, ICMP is read only in its own IP family.
pub fn read(frame: &[u8], rules: &Rules) -> Result<Packet, u8> {
    let bytes = Bytes {
        frame,
        ipv4_mapped_malformed: rules.ipv4_mapped_ipv6_malformed,
        icmp_in_its_own_family: rules.icmp_in_its_own_family,
    };
    let mut packet = Packet {
        kind: Kind::Flow,
        tuple: Tuple::default(),
        tcp_flags: 0,
        ipv6: false,
        hop_limit: 0,
        first_fragment: false,
        fragment_id: 0,
        fragment_next: 0,
        ip_len: frame.len().saturating_sub(ETHERNET_HEADER),
    };
    match bytes.u16(12)? {
        0x0800 => read_ipv4(&bytes, &mut packet)?,
        0x86dd => read_ipv6(&bytes, &mut packet)?,
        0x0806 => packet.kind = Kind::Arp,
        _ => return Err(reason::UNSUPPORTED_L3),
    }
    Ok(packet)
}

/// Version and header length of an IPv4 header; options are skipped.
fn ipv4_header_len(version_ihl: u8) -> Result<usize, u8> {
    let len = usize::from(version_ihl & 0x0f) * 4;
    if version_ihl >> 4 != 4 || len < 20 {
        return Err(reason::MALFORMED);
    }
    Ok(len)
}

fn read_ipv4(bytes: &Bytes, packet: &mut Packet) -> Result<(), u8> {
    let header: [u8; 20] = bytes.at(ETHERNET_HEADER)?;
    let header_len = ipv4_header_len(header[0])?;
    let fragment = u16::from_be_bytes([header[6], header[7]]);
    packet.fragment_id = u32::from(u16::from_be_bytes([header[4], header[5]]));
    packet.tuple.protocol = header[9];
    packet.fragment_next = header[9];
    packet.tuple.src = Addr::v4(&header[12..16]);
    packet.tuple.dst = Addr::v4(&header[16..20]);
    if fragment & 0x1fff != 0 {
        packet.kind = Kind::LaterFragment;
        return Ok(());
    }
    packet.first_fragment = fragment & 0x2000 != 0;
    read_transport(bytes, packet, ETHERNET_HEADER + header_len)
}

fn read_ipv6(bytes: &Bytes, packet: &mut Packet) -> Result<(), u8> {
    if bytes.byte(ETHERNET_HEADER)? >> 4 != 6 {
        return Err(reason::MALFORMED);
    }
    packet.ipv6 = true;
    let mut next = bytes.byte(ETHERNET_HEADER + 6)?;
    packet.hop_limit = bytes.byte(ETHERNET_HEADER + 7)?;
    (packet.tuple.src, packet.tuple.dst) = bytes.ipv6_addresses(ETHERNET_HEADER)?;
    let mut offset = ETHERNET_HEADER + IPV6_HEADER;
    for _ in 0..MAX_EXTENSION_HEADERS {
        if !is_extension_header(next) {
            packet.tuple.protocol = next;
            return read_transport(bytes, packet, offset);
        }
        let [following, len] = bytes.at(offset)?;
        if next == FRAGMENT_HEADER {
            let header: [u8; 8] = bytes.at(offset)?;
            let fragment = u16::from_be_bytes([header[2], header[3]]);
            packet.fragment_id = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
            packet.fragment_next = following;
            if fragment >> 3 != 0 {
                packet.tuple.protocol = following;
                packet.kind = Kind::LaterFragment;
                return Ok(());
            }
            packet.first_fragment = fragment & 1 != 0;
        }
        offset += extension_header_len(next, len);
        next = following;
    }
    if is_extension_header(next) {
        return Err(reason::EXTENSION_HEADERS);
    }
    packet.tuple.protocol = next;
    read_transport(bytes, packet, offset)
}

/// Hop-by-hop, routing, fragment, authentication, destination options.
fn is_extension_header(next: u8) -> bool {
    matches!(next, 0 | 43 | FRAGMENT_HEADER | 51 | 60)
}

fn extension_header_len(kind: u8, len: u8) -> usize {
    match kind {
        FRAGMENT_HEADER => 8,
        // The authentication header counts 4-octet units, minus 2.
        51 => (usize::from(len) + 2) * 4,
        _ => (usize::from(len) + 1) * 8,
    }
}

fn read_transport(bytes: &Bytes, packet: &mut Packet, offset: usize) -> Result<(), u8> {
    match packet.tuple.protocol {
        TCP => {
            // Up to the flags.
            let header: [u8; 14] = bytes.at(offset)?;
            set_ports(&mut packet.tuple, &header);
            packet.tcp_flags = header[13];
        }
        UDP => set_ports(&mut packet.tuple, &bytes.at::<8>(offset)?),
        SCTP => set_ports(&mut packet.tuple, &bytes.at::<12>(offset)?),
        protocol => {
            if let Some(v6) = bytes.icmp_family(protocol, packet.ipv6) {
                read_icmp(bytes, packet, offset, v6)?;
            }
        }
    }
    Ok(())
}

impl Bytes<'_> {
    /// Whether `protocol` is read as ICMPv6 (`Some(true)`) or ICMP
    /// (`Some(false)`) in a packet of the given family, or not as ICMP.
    fn icmp_family(&self, protocol: u8, ipv6: bool) -> Option<bool> {
        match protocol {
            ICMP if !(self.icmp_in_its_own_family && ipv6) => Some(false),
            ICMPV6 if !self.icmp_in_its_own_family || ipv6 => Some(true),
            _ => None,
        }
    }
}

fn set_ports(tuple: &mut Tuple, header: &[u8]) {
    tuple.src_port = u16::from_be_bytes([header[0], header[1]]);
    tuple.dst_port = u16::from_be_bytes([header[2], header[3]]);
}

/// An ICMP (`v6` false) or ICMPv6 message.
fn read_icmp(bytes: &Bytes, packet: &mut Packet, offset: usize, v6: bool) -> Result<(), u8> {
    let [icmp_type, _code] = bytes.at(offset)?;
    let (echo_request, echo_reply) = if v6 { (128, 129) } else { (8, 0) };
    if icmp_type == echo_request || icmp_type == echo_reply {
        let id = bytes.u16(offset + 4)?;
        packet.tuple.src_port = id;
        packet.tuple.dst_port = id;
        if icmp_type == echo_reply {
            packet.kind = Kind::EchoReply;
        }
        return Ok(());
    }
    let error = if v6 {
        matches!(icmp_type, 1..=4)
    } else {
        matches!(icmp_type, 3 | 11 | 12)
    };
    if error {
        let quoted = if v6 {
            read_quoted_ipv6(bytes, offset + 8)?
        } else {
            read_quoted_ipv4(bytes, offset + 8)?
        };
        packet.kind = Kind::IcmpError { quoted };
    } else if v6 && matches!(icmp_type, 130..=136 | 143) {
        packet.kind = Kind::LinkControl { icmp_type };
    }
    Ok(())
}

fn read_quoted_ipv4(bytes: &Bytes, offset: usize) -> Result<Tuple, u8> {
    let header_len = ipv4_header_len(bytes.byte(offset)?)?;
    let mut quoted = Tuple {
        protocol: bytes.byte(offset + 9)?,
        src: Addr::v4(&bytes.at::<4>(offset + 12)?),
        dst: Addr::v4(&bytes.at::<4>(offset + 16)?),
        ..Tuple::default()
    };
    read_quoted_ports(bytes, &mut quoted, offset + header_len, false)?;
    Ok(quoted)
}

/// The quoted header's extension headers are not walked.
fn read_quoted_ipv6(bytes: &Bytes, offset: usize) -> Result<Tuple, u8> {
    if bytes.ipv4_mapped_malformed && bytes.byte(offset)? >> 4 != 6 {
        return Err(reason::MALFORMED);
    }
    let protocol = bytes.byte(offset + 6)?;
    let (src, dst) = bytes.ipv6_addresses(offset)?;
    let mut quoted = Tuple {
        protocol,
        src,
        dst,
        ..Tuple::default()
    };
    read_quoted_ports(bytes, &mut quoted, offset + IPV6_HEADER, true)?;
    Ok(quoted)
}

fn read_quoted_ports(
    bytes: &Bytes,
    quoted: &mut Tuple,
    offset: usize,
    ipv6: bool,
) -> Result<(), u8> {
    match quoted.protocol {
        TCP | UDP | SCTP => set_ports(quoted, &bytes.at::<4>(offset)?),
        // The echo identifier, whatever the quoted message's type.
        protocol if bytes.icmp_family(protocol, ipv6).is_some() => {
            let id = bytes.u16(offset + 4)?;
            quoted.src_port = id;
            quoted.dst_port = id;
        }
        _ => {}
    }
    Ok(())
}
