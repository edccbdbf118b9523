//! What one policy slot of the datapath holds, independent of the slot.

use std::collections::BTreeMap;

use ipnetwork::IpNetwork;
use netseg_contract::{
    ENDPOINT_SLOT_ENTRIES, Endpoint, IPCACHE_SLOT_ENTRIES, POLICY_SLOT_ENTRIES, PolicyValue,
};
use netseg_policy::PolicyEntryKey;

use super::MapEntries;

/// The desired contents of one slot: endpoints by ifindex, the ipcache and
/// the policy trie.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SlotState {
    pub endpoints: BTreeMap<u32, Endpoint>,
    pub ipcache: BTreeMap<IpNetwork, u32>,
    pub policy: BTreeMap<PolicyEntryKey, PolicyValue>,
}

impl SlotState {
    /// How full a slot holding this is, table by table (the ipcache is a
    /// table per address family).
    pub fn entries(&self) -> [MapEntries; 4] {
        let v4 = self
            .ipcache
            .keys()
            .filter(|prefix| prefix.is_ipv4())
            .count();
        let v6 = self.ipcache.len() - v4;
        [
            ("endpoints", self.endpoints.len(), ENDPOINT_SLOT_ENTRIES),
            ("ipcache_v4", v4, IPCACHE_SLOT_ENTRIES),
            ("ipcache_v6", v6, IPCACHE_SLOT_ENTRIES),
            ("policy", self.policy.len(), POLICY_SLOT_ENTRIES),
        ]
        .map(|(map, entries, capacity)| MapEntries {
            map,
            entries: entries as u64,
            capacity: u64::from(capacity),
        })
    }
}
