//! Crafted packets: Ethernet, IPv4 (with optional options) or IPv6 (with
//! optional extension headers), either fragmented, and an L4 header. The verdict tests feed them to
//! BPF_PROG_TEST_RUN; the namespace tests send them from inside a pod
//! ([`crate::raw`]).

use std::net::IpAddr;

pub const TCP: u8 = 6;
pub const UDP: u8 = 17;
pub const SCTP: u8 = 132;
pub const ICMP: u8 = 1;
pub const ICMPV6: u8 = 58;

/// IPv6 extension header types.
pub const FRAGMENT_HEADER: u8 = 44;
pub const DESTINATION_OPTIONS: u8 = 60;

pub const SYN: u8 = 0x02;
pub const ACK: u8 = 0x10;
pub const FIN: u8 = 0x01;

/// An address given as text (hand-written tests) or as a value (the fuzzer).
pub trait Address {
    fn ip(self) -> IpAddr;
}

impl<T: AsRef<str> + ?Sized> Address for &T {
    fn ip(self) -> IpAddr {
        self.as_ref().parse().expect("test address")
    }
}

impl Address for IpAddr {
    fn ip(self) -> IpAddr {
        self
    }
}

/// Fragmentation of a crafted packet: in the IPv4 header, or in the IPv6
/// Fragment header (extension 44) when the frame has one.
#[derive(Clone, Copy, Default)]
pub struct Fragment {
    pub id: u16,
    /// In 8-octet units.
    pub offset: u16,
    pub more: bool,
}

#[derive(Clone)]
pub struct Frame {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub protocol: u8,
    pub l4: Vec<u8>,
    pub fragment: Fragment,
    /// IPv6 extension headers before the L4 header: (type, 8-octet header).
    pub extensions: Vec<u8>,
    /// IPv4 options, in 4-octet words of no-operation options.
    pub ipv4_option_words: u8,
    /// IPv6 hop limit; `None` picks what the protocol requires (255 for
    /// neighbour discovery, 1 for MLD, 64 otherwise).
    pub hop_limit: Option<u8>,
}

impl Frame {
    pub fn new(src: impl Address, dst: impl Address, protocol: u8, l4: Vec<u8>) -> Self {
        Self {
            src: src.ip(),
            dst: dst.ip(),
            protocol,
            l4,
            fragment: Fragment::default(),
            extensions: Vec::new(),
            ipv4_option_words: 0,
            hop_limit: None,
        }
    }

    pub fn tcp(src: impl Address, sport: u16, dst: impl Address, dport: u16, flags: u8) -> Self {
        let mut l4 = vec![0; 20];
        l4[0..2].copy_from_slice(&sport.to_be_bytes());
        l4[2..4].copy_from_slice(&dport.to_be_bytes());
        l4[12] = 5 << 4;
        l4[13] = flags;
        Self::new(src, dst, TCP, l4)
    }

    pub fn udp(src: impl Address, sport: u16, dst: impl Address, dport: u16) -> Self {
        let mut l4 = vec![0; 8];
        l4[0..2].copy_from_slice(&sport.to_be_bytes());
        l4[2..4].copy_from_slice(&dport.to_be_bytes());
        l4[4..6].copy_from_slice(&8u16.to_be_bytes());
        Self::new(src, dst, UDP, l4)
    }

    /// An SCTP common header with an INIT chunk (checksum not checked here).
    pub fn sctp(src: impl Address, sport: u16, dst: impl Address, dport: u16) -> Self {
        let mut l4 = vec![0; 32];
        l4[0..2].copy_from_slice(&sport.to_be_bytes());
        l4[2..4].copy_from_slice(&dport.to_be_bytes());
        l4[12] = 1;
        Self::new(src, dst, SCTP, l4)
    }

    /// An ICMP message of the source's family (ICMPv6 for IPv6).
    pub fn icmp(src: impl Address, dst: impl Address, icmp_type: u8, body: &[u8]) -> Self {
        let src = src.ip();
        let protocol = if src.is_ipv6() { ICMPV6 } else { ICMP };
        let mut l4 = vec![icmp_type, 0, 0, 0];
        l4.extend_from_slice(body);
        Self::new(src, dst, protocol, l4)
    }

    /// An echo request (`reply` false) or reply with identifier `id`.
    pub fn echo(src: impl Address, dst: impl Address, id: u16, reply: bool) -> Self {
        let src = src.ip();
        let v6 = src.is_ipv6();
        let icmp_type = match (v6, reply) {
            (false, false) => 8,
            (false, true) => 0,
            (true, false) => 128,
            (true, true) => 129,
        };
        let mut body = id.to_be_bytes().to_vec();
        body.extend_from_slice(&[0, 1]);
        Self::icmp(src, dst, icmp_type, &body)
    }

    /// An ICMP(v6) error of `icmp_type` (destination unreachable: 3 for
    /// IPv4, 1 for IPv6) about `quoted`, followed by `extra` bytes.
    pub fn icmp_error(
        src: impl Address,
        dst: impl Address,
        icmp_type: u8,
        quoted: &Frame,
        extra: &[u8],
    ) -> Self {
        let mut body = vec![0; 4];
        body.extend_from_slice(&quoted.ip_bytes());
        body.extend_from_slice(extra);
        Self::icmp(src, dst, icmp_type, &body)
    }

    pub fn with_hop_limit(mut self, hop_limit: u8) -> Self {
        self.hop_limit = Some(hop_limit);
        self
    }

    /// Adds an IPv6 extension header of `kind` (0, 43, 51 or 60: 8 octets;
    /// 44 carries [`Frame::fragment`]).
    pub fn with_extension(mut self, kind: u8) -> Self {
        self.extensions.push(kind);
        self
    }

    pub fn fragmented(mut self, fragment: Fragment) -> Self {
        self.fragment = fragment;
        self
    }

    pub fn with_ipv4_options(mut self, words: u8) -> Self {
        self.ipv4_option_words = words;
        self
    }

    /// The offset and M flag of an IPv6 Fragment header.
    fn fragment_field(&self) -> u16 {
        (self.fragment.offset << 3) | u16::from(self.fragment.more)
    }

    /// The IP packet without the Ethernet header (for ICMP error quotes).
    pub fn ip_bytes(&self) -> Vec<u8> {
        match (self.src, self.dst) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => {
                let words = 5 + self.ipv4_option_words;
                let mut ip = vec![0x40 | words, 0, 0, 0, 0, 0, 0, 0, 64, self.protocol, 0, 0];
                let total = (usize::from(words) * 4 + self.l4.len()) as u16;
                ip[2..4].copy_from_slice(&total.to_be_bytes());
                ip[4..6].copy_from_slice(&self.fragment.id.to_be_bytes());
                let flags = self.fragment.offset | if self.fragment.more { 0x2000 } else { 0 };
                ip[6..8].copy_from_slice(&flags.to_be_bytes());
                ip.extend_from_slice(&src.octets());
                ip.extend_from_slice(&dst.octets());
                // No-operation options.
                ip.resize(usize::from(words) * 4, 1);
                let header_sum = checksum(&ip, 0);
                ip[10..12].copy_from_slice(&header_sum.to_be_bytes());
                let mut l4 = self.l4.clone();
                if self.protocol == ICMP && l4.len() >= 4 {
                    let sum = checksum(&l4, 0);
                    l4[2..4].copy_from_slice(&sum.to_be_bytes());
                }
                ip.extend_from_slice(&l4);
                ip
            }
            (IpAddr::V6(src), IpAddr::V6(dst)) => self.ipv6_bytes(src.octets(), dst.octets()),
            _ => panic!("mixed address families"),
        }
    }

    fn ipv6_bytes(&self, src: [u8; 16], dst: [u8; 16]) -> Vec<u8> {
        let mut chain = self.extensions.clone();
        chain.push(self.protocol);
        let mut payload = Vec::new();
        for (kind, next) in chain.iter().zip(chain.iter().skip(1)) {
            let mut header = [*next, 0, 0, 0, 0, 0, 0, 0];
            if *kind == FRAGMENT_HEADER {
                header[2..4].copy_from_slice(&self.fragment_field().to_be_bytes());
                header[4..8].copy_from_slice(&u32::from(self.fragment.id).to_be_bytes());
            }
            payload.extend_from_slice(&header);
        }
        let mut l4 = self.l4.clone();
        if self.protocol == ICMPV6 && l4.len() >= 4 {
            // The pseudo-header: addresses, upper-layer length, next header.
            let mut pseudo = Vec::with_capacity(40);
            pseudo.extend_from_slice(&src);
            pseudo.extend_from_slice(&dst);
            pseudo.extend_from_slice(&(l4.len() as u32).to_be_bytes());
            pseudo.extend_from_slice(&[0, 0, 0, ICMPV6]);
            let sum = checksum(&l4, sum_words(&pseudo));
            l4[2..4].copy_from_slice(&sum.to_be_bytes());
        }
        payload.extend_from_slice(&l4);
        let mut ip = vec![0x60, 0, 0, 0];
        ip.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        let icmp_type = (self.protocol == ICMPV6)
            .then(|| self.l4.first().copied())
            .flatten();
        let hop_limit = self.hop_limit.unwrap_or(match icmp_type {
            Some(133..=136) => 255,
            Some(130..=132 | 143) => 1,
            _ => 64,
        });
        ip.extend_from_slice(&[chain[0], hop_limit]);
        ip.extend_from_slice(&src);
        ip.extend_from_slice(&dst);
        ip.extend_from_slice(&payload);
        ip
    }

    pub fn bytes(&self) -> Vec<u8> {
        let ethertype: u16 = if self.src.is_ipv4() { 0x0800 } else { 0x86dd };
        let mut frame = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1];
        frame.extend_from_slice(&ethertype.to_be_bytes());
        frame.extend_from_slice(&self.ip_bytes());
        frame
    }
}

/// A whole UDP datagram from `src` to `dst`: the header (with its length
/// and checksum over the pseudo-header) and `payload`, as a socket on the
/// receiving side accepts it once its fragments are put back together.
pub fn udp_datagram(src: &str, sport: u16, dst: &str, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut datagram = Frame::udp(src, sport, dst, dport).l4;
    datagram.extend_from_slice(payload);
    let length = datagram.len() as u16;
    datagram[4..6].copy_from_slice(&length.to_be_bytes());
    let mut pseudo = Vec::with_capacity(40);
    match (
        src.parse().expect("test address"),
        dst.parse().expect("test address"),
    ) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            pseudo.extend_from_slice(&src.octets());
            pseudo.extend_from_slice(&dst.octets());
            pseudo.extend_from_slice(&[0, UDP]);
            pseudo.extend_from_slice(&length.to_be_bytes());
        }
        (IpAddr::V6(src), IpAddr::V6(dst)) => {
            pseudo.extend_from_slice(&src.octets());
            pseudo.extend_from_slice(&dst.octets());
            pseudo.extend_from_slice(&u32::from(length).to_be_bytes());
            pseudo.extend_from_slice(&[0, 0, 0, UDP]);
        }
        _ => panic!("mixed address families"),
    }
    // A computed zero is sent as all ones (RFC 768); zero means "none".
    let sum = match checksum(&datagram, sum_words(&pseudo)) {
        0 => 0xffff,
        sum => sum,
    };
    datagram[6..8].copy_from_slice(&sum.to_be_bytes());
    datagram
}

/// The Internet checksum (RFC 1071) of `data`, starting from `initial`
/// (a pseudo-header's sum); the checksum field must hold zero.
fn checksum(data: &[u8], initial: u32) -> u16 {
    let mut sum = initial + sum_words(data);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn sum_words(data: &[u8]) -> u32 {
    data.chunks(2)
        .map(|pair| {
            u32::from(u16::from_be_bytes([
                pair[0],
                pair.get(1).copied().unwrap_or(0),
            ]))
        })
        .sum()
}

/// An Ethernet frame of `ethertype` with `payload`.
pub fn ethernet(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1];
    frame.extend_from_slice(&ethertype.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}
