//! Just enough SCTP to probe a policy: this kernel has no SCTP sockets, so
//! the harness crafts an INIT chunk itself and sends and receives it through
//! raw sockets (protocol 132).

/// IP protocol number of SCTP.
pub const IPPROTO_SCTP: u8 = 132;
/// Chunk type of INIT (RFC 9260 section 3.3.2).
pub const CHUNK_INIT: u8 = 1;
const COMMON_HEADER_LEN: usize = 12;
const INIT_CHUNK_LEN: usize = 20;

/// CRC32c (Castagnoli), the checksum of SCTP (RFC 9260 appendix A).
pub fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// An SCTP packet holding one INIT chunk: the common header with
/// verification tag 0 (mandatory for INIT) and a valid checksum.
pub fn init_packet(src_port: u16, dst_port: u16, initiate_tag: u32) -> Vec<u8> {
    let mut packet = Vec::with_capacity(COMMON_HEADER_LEN + INIT_CHUNK_LEN);
    packet.extend_from_slice(&src_port.to_be_bytes());
    packet.extend_from_slice(&dst_port.to_be_bytes());
    packet.extend_from_slice(&0u32.to_be_bytes()); // verification tag
    packet.extend_from_slice(&0u32.to_be_bytes()); // checksum, filled below
    packet.push(CHUNK_INIT);
    packet.push(0); // flags
    packet.extend_from_slice(&(INIT_CHUNK_LEN as u16).to_be_bytes());
    packet.extend_from_slice(&initiate_tag.to_be_bytes());
    packet.extend_from_slice(&65_535u32.to_be_bytes()); // advertised receiver window
    packet.extend_from_slice(&1u16.to_be_bytes()); // outbound streams
    packet.extend_from_slice(&1u16.to_be_bytes()); // inbound streams
    packet.extend_from_slice(&initiate_tag.to_be_bytes()); // initial TSN
    // The CRC is stored least significant byte first, as Linux does
    // (`cpu_to_le32` in sctp_compute_cksum).
    let checksum = crc32c(&packet);
    packet[8..12].copy_from_slice(&checksum.to_le_bytes());
    packet
}

/// The fields of a received SCTP packet that the probes look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SctpHeader {
    pub src_port: u16,
    pub dst_port: u16,
    pub verification_tag: u32,
    /// Whether the stored checksum matches the packet.
    pub checksum_ok: bool,
    /// Type of the first chunk.
    pub chunk_type: u8,
    /// The initiate tag when the first chunk is an INIT.
    pub initiate_tag: Option<u32>,
}

/// Parses an SCTP packet (starting at the common header).
pub fn parse(packet: &[u8]) -> Option<SctpHeader> {
    if packet.len() < COMMON_HEADER_LEN + 4 {
        return None;
    }
    let be16 = |at: usize| u16::from_be_bytes([packet[at], packet[at + 1]]);
    let be32 = |at: usize| u32::from_be_bytes(packet[at..at + 4].try_into().unwrap_or_default());
    let stored = u32::from_le_bytes(packet[8..12].try_into().unwrap_or_default());
    let mut zeroed = packet.to_vec();
    zeroed[8..12].fill(0);
    let chunk_type = packet[COMMON_HEADER_LEN];
    let initiate_tag = (chunk_type == CHUNK_INIT && packet.len() >= COMMON_HEADER_LEN + 8)
        .then(|| be32(COMMON_HEADER_LEN + 4));
    Some(SctpHeader {
        src_port: be16(0),
        dst_port: be16(2),
        verification_tag: be32(4),
        checksum_ok: crc32c(&zeroed) == stored,
        chunk_type,
        initiate_tag,
    })
}

/// Skips the IPv4 header that raw IPv4 sockets deliver in front of the
/// payload (raw IPv6 sockets deliver the payload alone).
pub fn strip_ipv4_header(datagram: &[u8]) -> Option<&[u8]> {
    let ihl = usize::from(datagram.first()? & 0x0f) * 4;
    (ihl >= 20).then(|| datagram.get(ihl..)).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
    }

    #[test]
    fn init_packet_round_trips_with_a_valid_checksum() {
        let packet = init_packet(40_000, 80, 0xdead_beef);
        assert_eq!(packet.len(), 32);
        let header = parse(&packet).expect("parses");
        assert_eq!(header.src_port, 40_000);
        assert_eq!(header.dst_port, 80);
        assert_eq!(header.verification_tag, 0);
        assert!(header.checksum_ok);
        assert_eq!(header.chunk_type, CHUNK_INIT);
        assert_eq!(header.initiate_tag, Some(0xdead_beef));
    }

    #[test]
    fn a_corrupted_packet_fails_the_checksum() {
        let mut packet = init_packet(1, 2, 3);
        packet[20] ^= 1;
        assert!(!parse(&packet).expect("parses").checksum_ok);
    }

    #[test]
    fn ipv4_header_is_skipped_by_its_length() {
        let mut datagram = vec![0x46; 24];
        datagram.extend_from_slice(&[7, 8]);
        assert_eq!(strip_ipv4_header(&datagram), Some(&[7u8, 8][..]));
        assert_eq!(strip_ipv4_header(&[0x41]), None);
    }
}
