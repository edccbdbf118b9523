//! Publishing a policy without a window: the next policy is written into the
//! inactive slot (as a diff against what that slot holds), then one write of
//! the revision makes it active. Until that write, every packet sees the old
//! policy; after it, the new one; and conntrack entries admitted under an
//! older revision re-ask the new policy on their next packet.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

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

    /// Upserts `entries` in order, in as few calls as the writer can (by
    /// default one an entry).
    fn upsert_ipcache_all(
        &mut self,
        slot: u32,
        entries: &[(IpNetwork, u32)],
    ) -> Result<(), Stopped<Self::Error>> {
        one_by_one(entries, |(prefix, identity)| {
            self.upsert_ipcache(slot, *prefix, *identity)
        })
    }
    fn remove_ipcache_all(
        &mut self,
        slot: u32,
        prefixes: &[IpNetwork],
    ) -> Result<(), Stopped<Self::Error>> {
        one_by_one(prefixes, |prefix| self.remove_ipcache(slot, *prefix))
    }
    fn upsert_policy_all(
        &mut self,
        slot: u32,
        entries: &[(PolicyEntryKey, PolicyValue)],
    ) -> Result<(), Stopped<Self::Error>> {
        one_by_one(entries, |(key, value)| {
            self.upsert_policy(slot, key, *value)
        })
    }
    fn remove_policy_all(
        &mut self,
        slot: u32,
        keys: &[PolicyEntryKey],
    ) -> Result<(), Stopped<Self::Error>> {
        one_by_one(keys, |key| self.remove_policy(slot, key))
    }
}

/// Writes that stopped: how many were done first, and why the next failed.
#[derive(Debug)]
pub struct Stopped<E> {
    pub done: usize,
    pub error: E,
}

impl<E> Stopped<E> {
    /// The same stop in a run that came after `before` writes done.
    pub fn after(self, before: usize) -> Self {
        Self {
            done: before + self.done,
            error: self.error,
        }
    }
}

/// `write` on each of `items` in order, until one fails.
pub fn one_by_one<T, E>(
    items: &[T],
    mut write: impl FnMut(&T) -> Result<(), E>,
) -> Result<(), Stopped<E>> {
    for (done, item) in items.iter().enumerate() {
        write(item).map_err(|error| Stopped { done, error })?;
    }
    Ok(())
}

/// The writes of one table: its removals, then its upserts.
enum Writes<'a, K, V> {
    Remove(&'a [K]),
    Upsert(&'a [(K, V)]),
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

/// Which entries were written by the last publication, and how long
/// comparing and writing the slot took.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Published {
    pub revision: u32,
    pub upserts: usize,
    pub removals: usize,
    pub diffing: Duration,
    pub writing: Duration,
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

    #[cfg(test)]
    pub fn writer_mut(&mut self) -> &mut W {
        &mut self.writer
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
    let endpoints = timed(&mut written.diffing, || {
        diff_maps(&held.endpoints, &desired.endpoints)
    });
    apply(
        &endpoints,
        &mut held.endpoints,
        &mut written,
        |writes| match writes {
            Writes::Remove(keys) => one_by_one(keys, |key| writer.remove_endpoint(slot, *key)),
            Writes::Upsert(entries) => one_by_one(entries, |(key, endpoint)| {
                writer.upsert_endpoint(slot, *key, endpoint)
            }),
        },
    )?;
    let ipcache = timed(&mut written.diffing, || {
        diff_maps(&held.ipcache, &desired.ipcache)
    });
    apply(
        &ipcache,
        &mut held.ipcache,
        &mut written,
        |writes| match writes {
            Writes::Remove(prefixes) => writer.remove_ipcache_all(slot, prefixes),
            Writes::Upsert(entries) => writer.upsert_ipcache_all(slot, entries),
        },
    )?;
    let policy = timed(&mut written.diffing, || {
        diff_maps(&held.policy, &desired.policy)
    });
    apply(
        &policy,
        &mut held.policy,
        &mut written,
        |writes| match writes {
            Writes::Remove(keys) => writer.remove_policy_all(slot, keys),
            Writes::Upsert(entries) => writer.upsert_policy_all(slot, entries),
        },
    )?;
    Ok(written)
}

fn timed<T>(took: &mut Duration, run: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let result = run();
    *took += start.elapsed();
    result
}

/// Removals first, so a full map has room for the upserts.
fn apply<K: Ord + Clone, V: Clone, E>(
    diff: &MapDiff<K, V>,
    held: &mut BTreeMap<K, V>,
    written: &mut Published,
    write: impl FnMut(Writes<'_, K, V>) -> Result<(), Stopped<E>>,
) -> Result<(), E> {
    let start = Instant::now();
    let applied = apply_in_order(diff, held, written, write);
    written.writing += start.elapsed();
    applied
}

fn apply_in_order<K: Ord + Clone, V: Clone, E>(
    diff: &MapDiff<K, V>,
    held: &mut BTreeMap<K, V>,
    written: &mut Published,
    mut write: impl FnMut(Writes<'_, K, V>) -> Result<(), Stopped<E>>,
) -> Result<(), E> {
    let removed = write(Writes::Remove(&diff.removals));
    let done = removed
        .as_ref()
        .map_or_else(|s| s.done, |()| diff.removals.len())
        .min(diff.removals.len());
    for key in &diff.removals[..done] {
        held.remove(key);
    }
    written.removals += done;
    removed.map_err(|stopped| stopped.error)?;
    let upserted = write(Writes::Upsert(&diff.upserts));
    let done = upserted
        .as_ref()
        .map_or_else(|s| s.done, |()| diff.upserts.len())
        .min(diff.upserts.len());
    for (key, value) in &diff.upserts[..done] {
        held.insert(key.clone(), value.clone());
    }
    written.upserts += done;
    upserted.map_err(|stopped| stopped.error)
}

#[cfg(test)]
pub mod memory;
#[cfg(test)]
mod tests;
