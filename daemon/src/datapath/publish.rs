//! Publishing a policy without a window: the next policy is written into the
//! inactive slot (as a diff against what that slot holds), then one write of
//! the revision makes it active. Until that write, every packet sees the old
//! policy; after it, the new one; and conntrack entries admitted under an
//! older revision re-ask the new policy on their next packet.

use std::collections::BTreeMap;

use ipnetwork::IpNetwork;
use netseg_contract::{Endpoint, PolicyValue};
use netseg_policy::{MapDiff, PolicyEntryKey, diff_maps};
use tracing::instrument;

use super::state::SlotState;

/// Writes map entries of one slot. The kernel maps in production, memory in tests.
pub trait MapWriter {
    type Error: std::error::Error + Send + Sync + 'static;
    fn upsert_endpoint(
        &mut self,
        slot: u32,
        ifindex: u32,
        endpoint: &Endpoint,
    ) -> Result<(), Self::Error>;
    fn remove_endpoint(&mut self, slot: u32, ifindex: u32) -> Result<(), Self::Error>;
    fn upsert_ipcache(
        &mut self,
        slot: u32,
        prefix: IpNetwork,
        identity: u32,
    ) -> Result<(), Self::Error>;
    fn remove_ipcache(&mut self, slot: u32, prefix: IpNetwork) -> Result<(), Self::Error>;
    fn upsert_policy(
        &mut self,
        slot: u32,
        key: &PolicyEntryKey,
        value: PolicyValue,
    ) -> Result<(), Self::Error>;
    fn remove_policy(&mut self, slot: u32, key: &PolicyEntryKey) -> Result<(), Self::Error>;
    /// Makes `revision % 2` the active slot.
    fn set_revision(&mut self, revision: u32) -> Result<(), Self::Error>;
}

#[derive(Debug, thiserror::Error)]
#[error("writing revision {revision} into slot {slot} failed; revision {active} stays enforced")]
pub struct PublishError<E: std::error::Error + 'static> {
    pub revision: u32,
    pub slot: u32,
    pub active: u32,
    #[source]
    pub source: E,
}

/// Which entries were written by the last publication.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Published {
    pub revision: u32,
    pub upserts: usize,
    pub removals: usize,
}

pub struct Publisher<W: MapWriter> {
    writer: W,
    /// The active revision; 0 means nothing was published (every slot empty).
    revision: u32,
    /// What each slot holds, as far as the writes that succeeded tell.
    slots: [SlotState; 2],
}

impl<W: MapWriter> Publisher<W> {
    pub fn new(writer: W) -> Self {
        Self {
            writer,
            revision: 0,
            slots: [SlotState::default(), SlotState::default()],
        }
    }

    pub fn revision(&self) -> u32 {
        self.revision
    }

    pub fn active(&self) -> &SlotState {
        &self.slots[(self.revision & 1) as usize]
    }

    #[cfg(test)]
    pub fn writer(&self) -> &W {
        &self.writer
    }

    /// Publishes `desired` unless it is what the active slot already holds.
    #[instrument(skip_all, fields(revision = self.revision))]
    pub fn publish(&mut self, desired: &SlotState) -> Result<Published, PublishError<W::Error>> {
        if self.revision != 0 && self.active() == desired {
            return Ok(Published {
                revision: self.revision,
                ..Published::default()
            });
        }
        let revision = self.revision.wrapping_add(1).max(1);
        let slot = revision & 1;
        let failed = |source| PublishError {
            revision,
            slot,
            active: self.revision,
            source,
        };
        let written = write_slot(
            &mut self.writer,
            slot,
            &mut self.slots[slot as usize],
            desired,
        )
        .map_err(failed)?;
        self.writer
            .set_revision(revision)
            .map_err(|source| PublishError {
                revision,
                slot,
                active: self.revision,
                source,
            })?;
        self.revision = revision;
        Ok(Published {
            revision,
            ..written
        })
    }
}

/// Brings `held` (what `slot` holds) to `desired`, keeping `held` exact even
/// when a write fails half-way.
fn write_slot<W: MapWriter>(
    writer: &mut W,
    slot: u32,
    held: &mut SlotState,
    desired: &SlotState,
) -> Result<Published, W::Error> {
    let mut written = Published::default();
    let endpoints = diff_maps(&held.endpoints, &desired.endpoints);
    apply(
        &endpoints,
        &mut held.endpoints,
        &mut written,
        |key, value| match value {
            Some(endpoint) => writer.upsert_endpoint(slot, *key, endpoint),
            None => writer.remove_endpoint(slot, *key),
        },
    )?;
    let ipcache = diff_maps(&held.ipcache, &desired.ipcache);
    apply(
        &ipcache,
        &mut held.ipcache,
        &mut written,
        |key, value| match value {
            Some(identity) => writer.upsert_ipcache(slot, *key, *identity),
            None => writer.remove_ipcache(slot, *key),
        },
    )?;
    let policy = diff_maps(&held.policy, &desired.policy);
    apply(
        &policy,
        &mut held.policy,
        &mut written,
        |key, value| match value {
            Some(value) => writer.upsert_policy(slot, key, *value),
            None => writer.remove_policy(slot, key),
        },
    )?;
    Ok(written)
}

/// Removals first, so a full map has room for the upserts.
fn apply<K: Ord + Clone, V: Clone, E>(
    diff: &MapDiff<K, V>,
    held: &mut BTreeMap<K, V>,
    written: &mut Published,
    mut write: impl FnMut(&K, Option<&V>) -> Result<(), E>,
) -> Result<(), E> {
    for key in &diff.removals {
        write(key, None)?;
        held.remove(key);
        written.removals += 1;
    }
    for (key, value) in &diff.upserts {
        write(key, Some(value))?;
        held.insert(key.clone(), value.clone());
        written.upserts += 1;
    }
    Ok(())
}

#[cfg(test)]
pub mod memory;
#[cfg(test)]
mod tests;
