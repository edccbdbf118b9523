use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnetwork::IpNetwork;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

use super::BlockIndex;
use crate::compile::identities::{PeerTable, covers};
use crate::model::{IpBlockModel, NamespaceScope, PeerModel, Selector};

/// The definition that [`BlockIndex::containing`] computes faster: every
/// block tested against `prefix`.
fn containing_by_testing_each(peers: &PeerTable, prefix: &IpNetwork) -> Vec<usize> {
    let blocks = peers.peers().iter().enumerate();
    blocks
        .filter(|(_, peer)| match peer {
            PeerModel::Block(b) => {
                covers(&b.cidr, prefix) && !b.except.iter().any(|e| covers(e, prefix))
            }
            PeerModel::Pods { .. } | PeerModel::Nodes(_) => false,
        })
        .map(|(i, _)| i)
        .collect()
}

fn net(text: &str) -> IpNetwork {
    text.parse().expect("test prefix")
}

fn block(cidr: &str, except: &[&str]) -> PeerModel {
    PeerModel::Block(IpBlockModel {
        cidr: net(cidr),
        except: except.iter().map(|e| net(e)).collect(),
        pods_excluded: false,
    })
}

/// The prefix of `len` bits that contains `bits` (IPv4 in the low 32).
fn prefix_of(v6: bool, bits: u128, len: u8) -> IpNetwork {
    let ip = if v6 {
        IpAddr::V6(Ipv6Addr::from(bits))
    } else {
        IpAddr::V4(Ipv4Addr::from(bits as u32))
    };
    let unmasked = IpNetwork::new(ip, len).expect("length within the family");
    IpNetwork::new(unmasked.network(), len).expect("length within the family")
}

/// Addresses near a few bases, so that random prefixes nest and overlap.
fn address() -> impl Strategy<Value = (bool, u128)> {
    let v4_bases = vec![0x0a00_0000u32, 0x0a00_0100, 0x0a01_0000, 0xc0a8_0000, 0];
    let v4 = (select(v4_bases), 0..=u32::from(u16::MAX))
        .prop_map(|(base, low)| (false, u128::from(base ^ low)));
    let v6_bases = vec![
        0xfd00u128 << 112,
        (0xfd00 << 112) | (1 << 64),
        0x2001_0db8 << 96,
        0,
    ];
    let v6 = (select(v6_bases), any::<u16>(), any::<bool>())
        .prop_map(|(base, low, far)| (true, base ^ u128::from(low) ^ (u128::from(far) << 70)));
    prop_oneof![v4, v6]
}

/// A prefix of an [`address`], often of a common length.
fn prefix() -> impl Strategy<Value = IpNetwork> {
    (address(), any::<u8>(), any::<bool>()).prop_map(|((v6, bits), n, common)| {
        let lengths: &[u8] = if v6 {
            &[0, 16, 32, 64, 70, 112, 120, 127, 128]
        } else {
            &[0, 8, 16, 24, 28, 31, 32]
        };
        let width = if v6 { 128 } else { 32 };
        let len = if common {
            lengths[usize::from(n) % lengths.len()]
        } else {
            n % (width + 1)
        };
        prefix_of(v6, bits, len)
    })
}

/// A block of [`prefix`] with up to three excepts strictly inside it,
/// possibly nested in one another.
fn ip_block() -> impl Strategy<Value = PeerModel> {
    (
        prefix(),
        vec((any::<u128>(), any::<u8>()), 0..=3),
        any::<bool>(),
    )
        .prop_map(|(cidr, excepts, pods_excluded)| {
            let v6 = cidr.is_ipv6();
            let width: u8 = if v6 { 128 } else { 32 };
            let base = match cidr.network() {
                IpAddr::V4(a) => u128::from(u32::from(a)),
                IpAddr::V6(a) => u128::from(a),
            };
            let host_mask = u128::MAX
                .checked_shr(u32::from(128 - width + cidr.prefix()))
                .unwrap_or(0);
            let except: BTreeSet<IpNetwork> = excepts
                .into_iter()
                .filter(|_| cidr.prefix() < width)
                .map(|(bits, n)| {
                    let len = cidr.prefix() + 1 + n % (width - cidr.prefix());
                    prefix_of(v6, base | (bits & host_mask), len)
                })
                .collect();
            PeerModel::Block(IpBlockModel {
                cidr,
                except: except.into_iter().collect(),
                pods_excluded,
            })
        })
}

/// Blocks (duplicated cidrs included) among a pod peer and a nodes peer,
/// so that block indices are not the table's positions.
fn peers() -> impl Strategy<Value = Vec<PeerModel>> {
    vec(ip_block(), 0..24).prop_map(|mut peers| {
        peers.push(PeerModel::Nodes(Selector::default()));
        peers.push(PeerModel::Pods {
            namespaces: NamespaceScope::Own("a".into()),
            pods: Selector::default(),
        });
        peers
    })
}

proptest! {
    #[test]
    fn containing_equals_testing_every_block(
        peers in peers(),
        queries in vec(prefix(), 0..24),
        hosts in vec(address(), 0..24),
    ) {
        let table = PeerTable::new(peers.iter().collect());
        let index = BlockIndex::new(&table);
        let named = table.peers().iter().flat_map(|peer| match peer {
            PeerModel::Block(b) => std::iter::once(b.cidr).chain(b.except.iter().copied()).collect(),
            PeerModel::Pods { .. } | PeerModel::Nodes(_) => Vec::new(),
        });
        let hosts = hosts.iter().map(|&(v6, bits)| prefix_of(v6, bits, if v6 { 128 } else { 32 }));
        for prefix in named.chain(queries).chain(hosts) {
            prop_assert_eq!(
                index.containing(&prefix),
                containing_by_testing_each(&table, &prefix),
                "at {}", prefix
            );
        }
    }

    /// For a host address, "contains all of its /32 or /128" is the
    /// block's own membership test.
    #[test]
    fn containing_a_host_prefix_is_containing_the_address(
        peers in peers(),
        hosts in vec(address(), 1..24),
    ) {
        let table = PeerTable::new(peers.iter().collect());
        let index = BlockIndex::new(&table);
        for (v6, bits) in hosts {
            let host = prefix_of(v6, bits, if v6 { 128 } else { 32 });
            let members: Vec<usize> = (table.peers().iter().enumerate())
                .filter(|(_, peer)| matches!(peer, PeerModel::Block(b) if b.contains(host.ip(), false)))
                .map(|(i, _)| i)
                .collect();
            prop_assert_eq!(index.containing(&host), members, "at {}", host);
        }
    }
}

#[test]
fn nested_excepts_wide_blocks_and_families() {
    let peers = [
        block("0.0.0.0/0", &["10.0.0.0/8"]),
        block("10.0.0.0/8", &["10.1.0.0/16", "10.1.2.0/24"]),
        block("10.1.2.0/24", &[]),
        block("::/0", &["fd00::/16"]),
        block("10.1.2.3/32", &[]),
    ];
    let table = PeerTable::new(peers.iter().collect());
    let index = BlockIndex::new(&table);
    let position = |peer: &PeerModel| table.index(peer).expect("in the table");
    let names =
        |prefix: &str| -> BTreeSet<usize> { index.containing(&net(prefix)).into_iter().collect() };
    assert_eq!(names("8.8.8.8/32"), BTreeSet::from([position(&peers[0])]));
    assert_eq!(names("10.2.0.0/16"), BTreeSet::from([position(&peers[1])]));
    assert_eq!(names("10.1.2.0/24"), BTreeSet::from([position(&peers[2])]));
    assert_eq!(
        names("10.1.2.3/32"),
        BTreeSet::from([position(&peers[2]), position(&peers[4])])
    );
    assert_eq!(names("10.1.3.0/24"), BTreeSet::new());
    assert_eq!(
        names("2001:db8::/32"),
        BTreeSet::from([position(&peers[3])])
    );
    assert_eq!(names("fd00::1/128"), BTreeSet::new());
    assert_eq!(names("0.0.0.0/0"), BTreeSet::from([position(&peers[0])]));
    assert_eq!(names("::/0"), BTreeSet::from([position(&peers[3])]));
}
