//! Which ipBlock peers contain a prefix, found from the prefixes that
//! contain it rather than by testing every block.
//!
//! A prefix of length `l` is contained in exactly one prefix of each length
//! `≤ l` (its ancestors). So the blocks whose `cidr` covers `p` are those
//! listed under one of `p`'s ancestors in a table from prefix to the blocks
//! naming it, and likewise for the excepts. Only lengths that some cidr or
//! except has are looked up: at most 33 (IPv4) or 129 (IPv6) lookups per
//! prefix, however many blocks there are, plus the blocks found.

use std::net::IpAddr;

use ipnetwork::IpNetwork;
use rustc_hash::FxHashMap;

use super::identities::PeerTable;
use crate::model::PeerModel;

/// A prefix as a table key: its family, its address with the host bits
/// cleared (IPv4 in the low 32 bits), its length.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    v6: bool,
    bits: u128,
    len: u8,
}

/// The blocks (peer-table indices) that name one prefix.
#[derive(Default)]
struct Naming {
    as_cidr: Vec<usize>,
    as_except: Vec<usize>,
}

/// The ipBlock peers of a [`PeerTable`], by the prefixes they name.
pub(super) struct BlockIndex {
    by_prefix: FxHashMap<Key, Naming>,
    /// The lengths of the prefixes in `by_prefix`, ascending: IPv4, IPv6.
    lengths: [Vec<u8>; 2],
}

impl BlockIndex {
    pub(super) fn new(peers: &PeerTable) -> Self {
        let mut by_prefix: FxHashMap<Key, Naming> = FxHashMap::default();
        for (i, peer) in peers.peers().iter().enumerate() {
            if let PeerModel::Block(block) = peer {
                by_prefix
                    .entry(Key::of(&block.cidr))
                    .or_default()
                    .as_cidr
                    .push(i);
                for except in &block.except {
                    by_prefix
                        .entry(Key::of(except))
                        .or_default()
                        .as_except
                        .push(i);
                }
            }
        }
        let mut lengths = [Vec::new(), Vec::new()];
        for key in by_prefix.keys() {
            lengths[usize::from(key.v6)].push(key.len);
        }
        for family in &mut lengths {
            family.sort_unstable();
            family.dedup();
        }
        BlockIndex { by_prefix, lengths }
    }

    /// The blocks (peer-table indices, ascending) that contain all of
    /// `prefix`: whose cidr covers it and none of whose excepts does. A
    /// Segment's `pods_excluded` is not considered here.
    pub(super) fn containing(&self, prefix: &IpNetwork) -> Vec<usize> {
        let key = Key::of(prefix);
        let mut inside = Vec::new();
        let mut excluded = Vec::new();
        let lengths = &self.lengths[usize::from(key.v6)];
        for &len in lengths.iter().take_while(|&&len| len <= key.len) {
            if let Some(naming) = self.by_prefix.get(&key.ancestor(len)) {
                inside.extend_from_slice(&naming.as_cidr);
                excluded.extend_from_slice(&naming.as_except);
            }
        }
        // Each block has one cidr, so `inside` has no duplicates; a block
        // may have several excepts around the prefix.
        inside.sort_unstable();
        excluded.sort_unstable();
        inside.retain(|i| excluded.binary_search(i).is_err());
        inside
    }
}

impl Key {
    fn of(prefix: &IpNetwork) -> Self {
        let (v6, bits) = match prefix.network() {
            IpAddr::V4(a) => (false, u128::from(u32::from(a))),
            IpAddr::V6(a) => (true, u128::from(a)),
        };
        Key {
            v6,
            bits,
            len: prefix.prefix(),
        }
    }

    /// The key of the prefix of length `len` (at most this one's) that
    /// contains this one.
    fn ancestor(self, len: u8) -> Self {
        let width: u8 = if self.v6 { 128 } else { 32 };
        let host_bits = u32::from(width - len);
        Key {
            bits: self.bits & u128::MAX.checked_shl(host_bits).unwrap_or(0),
            len,
            ..self
        }
    }
}

#[cfg(test)]
mod tests;
