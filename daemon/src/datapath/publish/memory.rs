//! Kernel maps in memory, for tests of what is published.

use ipnetwork::IpNetwork;
use netseg_contract::{Endpoint, PolicyValue};
use netseg_policy::PolicyEntryKey;

use super::MapWriter;
use crate::datapath::state::SlotState;

#[derive(Debug, thiserror::Error)]
#[error("map full")]
pub struct Full;

/// Records what each slot holds, like the kernel maps would, and can be told
/// to fail after a number of writes.
#[derive(Default)]
pub struct MemoryMaps {
    pub slots: [SlotState; 2],
    pub revision: u32,
    pub writes: usize,
    /// Every write after this many fails, as a full map would.
    pub fail_after: Option<usize>,
}

impl MemoryMaps {
    fn count(&mut self) -> Result<(), Full> {
        self.writes += 1;
        match self.fail_after {
            Some(limit) if self.writes > limit => Err(Full),
            _ => Ok(()),
        }
    }
    /// What the active slot holds.
    pub fn active(&self) -> &SlotState {
        &self.slots[(self.revision & 1) as usize]
    }
}

impl MapWriter for MemoryMaps {
    type Error = Full;
    fn upsert_endpoint(
        &mut self,
        slot: u32,
        ifindex: u32,
        endpoint: &Endpoint,
    ) -> Result<(), Full> {
        self.count()?;
        self.slots[slot as usize]
            .endpoints
            .insert(ifindex, *endpoint);
        Ok(())
    }
    fn remove_endpoint(&mut self, slot: u32, ifindex: u32) -> Result<(), Full> {
        self.count()?;
        self.slots[slot as usize].endpoints.remove(&ifindex);
        Ok(())
    }
    fn upsert_ipcache(&mut self, slot: u32, prefix: IpNetwork, identity: u32) -> Result<(), Full> {
        self.count()?;
        self.slots[slot as usize].ipcache.insert(prefix, identity);
        Ok(())
    }
    fn remove_ipcache(&mut self, slot: u32, prefix: IpNetwork) -> Result<(), Full> {
        self.count()?;
        self.slots[slot as usize].ipcache.remove(&prefix);
        Ok(())
    }
    fn upsert_policy(
        &mut self,
        slot: u32,
        key: &PolicyEntryKey,
        value: PolicyValue,
    ) -> Result<(), Full> {
        self.count()?;
        self.slots[slot as usize].policy.insert(*key, value);
        Ok(())
    }
    fn remove_policy(&mut self, slot: u32, key: &PolicyEntryKey) -> Result<(), Full> {
        self.count()?;
        self.slots[slot as usize].policy.remove(key);
        Ok(())
    }
    fn set_revision(&mut self, revision: u32) -> Result<(), Full> {
        self.count()?;
        self.revision = revision;
        Ok(())
    }
}
