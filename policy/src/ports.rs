//! Port ranges as LPM prefixes, and the protocols NetworkPolicy knows.

use netseg_contract as contract;

use crate::types::PortPrefix;

/// The IP protocol number of a NetworkPolicy / container port protocol name.
/// Names are case-sensitive, as in the Kubernetes API.
pub fn protocol_number(name: &str) -> Option<u8> {
    match name {
        "TCP" => Some(contract::PROTO_TCP),
        "UDP" => Some(contract::PROTO_UDP),
        "SCTP" => Some(contract::PROTO_SCTP),
        _ => None,
    }
}

/// The minimal set of aligned prefixes that together cover exactly
/// `first..=last` (empty when `first > last`).
///
/// Greedy from the low end: at each step take the largest block that starts
/// at the current port (its alignment limits it) and does not pass `last`.
/// At most 30 prefixes for a 16-bit range.
pub fn range_to_prefixes(first: u16, last: u16) -> Vec<PortPrefix> {
    let mut prefixes = Vec::new();
    let mut start = u32::from(first);
    let end = u32::from(last);
    while start <= end {
        // Largest power-of-two block aligned at `start`; port 0 aligns to 2^16.
        let mut size: u32 = if start == 0 {
            1 << 16
        } else {
            1 << start.trailing_zeros().min(16)
        };
        while start + size - 1 > end {
            size >>= 1;
        }
        let len = 16 - size.trailing_zeros();
        // `start` < 2^16 here because `start <= end <= u16::MAX`.
        let port = u16::try_from(start).unwrap_or(u16::MAX);
        prefixes.push(PortPrefix::containing(port, len as u8));
        start += size;
    }
    prefixes
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn covered(prefixes: &[PortPrefix], port: u16) -> usize {
        prefixes.iter().filter(|p| p.contains(port)).count()
    }

    #[test]
    fn single_port_is_one_full_prefix() {
        assert_eq!(
            range_to_prefixes(80, 80),
            vec![PortPrefix { port: 80, len: 16 }]
        );
    }

    #[test]
    fn whole_space_is_one_empty_prefix() {
        assert_eq!(
            range_to_prefixes(0, u16::MAX),
            vec![PortPrefix { port: 0, len: 0 }]
        );
    }

    #[test]
    fn aligned_block() {
        assert_eq!(
            range_to_prefixes(8000, 8007),
            vec![PortPrefix {
                port: 8000,
                len: 13
            }]
        );
    }

    #[test]
    fn upper_edge_does_not_overflow() {
        let p = range_to_prefixes(65535, 65535);
        assert_eq!(
            p,
            vec![PortPrefix {
                port: 65535,
                len: 16
            }]
        );
        let p = range_to_prefixes(1, 65535);
        assert_eq!(p.len(), 16);
        assert_eq!(covered(&p, 0), 0);
    }

    #[test]
    fn empty_when_reversed() {
        assert!(range_to_prefixes(10, 9).is_empty());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        /// Every port of the 16-bit space is checked: inside the range it is
        /// covered by exactly one prefix, outside by none.
        #[test]
        fn prefixes_cover_exactly_the_range(a in any::<u16>(), b in any::<u16>()) {
            let (first, last) = (a.min(b), a.max(b));
            let prefixes = range_to_prefixes(first, last);
            prop_assert!(prefixes.len() <= 30);
            for p in &prefixes {
                prop_assert_eq!(p.port, PortPrefix::containing(p.port, p.len).port);
            }
            for port in 0..=u16::MAX {
                let expected = usize::from(port >= first && port <= last);
                prop_assert_eq!(covered(&prefixes, port), expected, "port {}", port);
            }
        }
    }
}
