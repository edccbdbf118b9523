//! The published tables hold what a large cluster needs in each of their
//! two slots, so a policy can change however many pods there are up to
//! that size, and beyond it a publication fails and the last one stays.

use std::net::Ipv4Addr;

use ipnetwork::{IpNetwork, Ipv4Network};
use netseg_contract::IPCACHE_SLOT_ENTRIES;

use super::{bench, policy};
use crate::datapath::state::SlotState;

/// The test policy with `count` IPv4 prefixes in all, each added one its
/// own identity `first_identity + i`.
fn with_peers(count: u32, first_identity: u32) -> SlotState {
    let mut state = policy();
    let existing = state.ipcache.keys().filter(|p| p.is_ipv4()).count() as u32;
    for i in 0..count.saturating_sub(existing) {
        let address = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 128, 0, 0)) + i);
        let prefix = IpNetwork::V4(Ipv4Network::new(address, 32).expect("a /32"));
        state.ipcache.insert(prefix, first_identity + i);
    }
    state
}

#[test]
fn a_full_ipcache_slot_can_be_published_again_and_one_more_entry_cannot() {
    let mut bench = bench();
    let full = with_peers(IPCACHE_SLOT_ENTRIES, 1000);
    let first = bench.publisher.publish(&full).expect("a full slot");
    // Every entry moves: the other slot must hold as many next to it.
    let moved = with_peers(IPCACHE_SLOT_ENTRIES, 2000);
    let second = bench.publisher.publish(&moved).expect("a full slot, again");
    assert_eq!(second.revision, first.revision + 1);

    let beyond = with_peers(IPCACHE_SLOT_ENTRIES + 1, 3000);
    let error = bench
        .publisher
        .publish(&beyond)
        .expect_err("one entry too many");
    assert_eq!(
        bench.publisher.revision(),
        second.revision,
        "the last good revision stays: {error}"
    );
}
