//! What one policy slot of the datapath holds, independent of the slot.

use std::collections::BTreeMap;

use ipnetwork::IpNetwork;
use netseg_contract::{Endpoint, PolicyValue};
use netseg_policy::PolicyEntryKey;

/// The desired contents of one slot: endpoints by ifindex, the ipcache and
/// the policy trie.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SlotState {
    pub endpoints: BTreeMap<u32, Endpoint>,
    pub ipcache: BTreeMap<IpNetwork, u32>,
    pub policy: BTreeMap<PolicyEntryKey, PolicyValue>,
}
