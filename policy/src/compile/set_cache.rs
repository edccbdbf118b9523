//! The entries of each policy set, remembered from one compilation to the
//! next. Deciding a set's entries walks its steps for every identity they
//! name over every port range, which is most of a recompile's work; a set
//! whose steps (peers as identity ids, ports, actions, deciders) and named
//! port resolutions are unchanged decides exactly as before, so a relabel
//! or a policy edit recomputes only the sets it touches. A kept set's
//! entries are kept as written, policy id and verdict ids included, so
//! that a recompile copies them rather than looking up each entry's
//! verdict again.
//!
//! A set whose steps differ only in the identities they name (a policy
//! edit renumbers the identities its peers matched, and every set naming
//! them sees new ids) is patched: an identity's entries depend only on
//! which steps match it and on its egress named-port resolutions (see
//! [`emit::Emitter`]), so only the identities whose matching steps or
//! resolutions changed are decided again.

use std::collections::{BTreeMap, BTreeSet};

use netseg_contract::PolicyValue;
use rustc_hash::FxHashMap;

use super::alloc::IdAllocator;
use super::emit::{self, Emitter, EntryKey};
use super::entries::PolicySetKey;
use super::identities::NamedPorts;
use super::precedence::{DecisionKey, Order, Step, renamed_identities};
use super::{verdict_of, verdict_value};
use crate::types::{Direction, PolicyEntryKey, Verdict};

/// The POLICY entries of one policy set and the verdicts their values name.
pub(super) struct SetEntries {
    /// Sorted by key.
    pub entries: Vec<(PolicyEntryKey, PolicyValue)>,
    /// Each verdict id the entries name, once, with its verdict.
    pub verdicts: Vec<(u32, Verdict)>,
}

struct Remembered {
    id: u32,
    steps: Vec<Step>,
    decided: Decided,
}

/// A set's entries, and the value of each decision they name (whose
/// verdict ids are those of `written.verdicts`).
struct Decided {
    written: SetEntries,
    values: FxHashMap<DecisionKey, PolicyValue>,
}

#[derive(Default)]
pub(super) struct SetCache {
    previous: BTreeMap<PolicySetKey, Remembered>,
    current: BTreeMap<PolicySetKey, Remembered>,
    /// The egress named-port resolutions of the previous compilation.
    named_ports: BTreeMap<u32, NamedPorts>,
    /// The identities whose resolutions differ from the previous
    /// compilation's (came, went or changed).
    resolutions_changed: BTreeSet<u32>,
}

impl SetCache {
    /// Starts a compilation whose identities resolve egress named ports to
    /// `named_ports`.
    pub(super) fn begin(&mut self, named_ports: &BTreeMap<u32, NamedPorts>) {
        self.resolutions_changed = differing_keys(&self.named_ports, named_ports);
        if !self.resolutions_changed.is_empty() {
            self.named_ports = named_ports.clone();
        }
    }

    /// The entries of the set `key`, whose policy id is `id` and whose
    /// order is `order`, with verdict ids from `verdicts`.
    pub(super) fn entries(
        &mut self,
        key: &PolicySetKey,
        id: u32,
        order: Order<'_>,
        verdicts: &mut IdAllocator<Verdict>,
    ) -> &SetEntries {
        let decided = match self.previous.remove(key) {
            Some(previous) if previous.id == id => self.update(previous, &order, verdicts),
            _ => write(id, &order, verdicts),
        };
        // The steps are moved, not copied: they hold every identity they name.
        let remembered = Remembered {
            id,
            steps: order.steps,
            decided,
        };
        &(self.current.entry(key.clone()).or_insert(remembered))
            .decided
            .written
    }

    /// Ends a compilation: sets it did not use are forgotten.
    pub(super) fn finish(&mut self) {
        self.previous = std::mem::take(&mut self.current);
    }

    /// `previous` brought up to `order`: kept when nothing it depends on
    /// changed, patched when only some identities' decisions can have.
    fn update(
        &self,
        previous: Remembered,
        order: &Order<'_>,
        verdicts: &mut IdAllocator<Verdict>,
    ) -> Decided {
        let Some(mut changed) = renamed_identities(&previous.steps, &order.steps) else {
            return write(previous.id, order, verdicts);
        };
        if order.direction == Direction::Egress && order.steps.iter().any(Step::has_named) {
            changed.extend(self.resolutions_changed.iter().copied());
        }
        let id = previous.id;
        let decided = if changed.is_empty() {
            previous.decided
        } else {
            patch(id, previous.decided, order, &changed, verdicts)
        };
        // Also marks each verdict id as used in this compilation.
        let current = (decided.written.verdicts.iter())
            .all(|(rule, verdict)| verdict_value(verdicts, verdict).rule == *rule);
        if current {
            decided
        } else {
            write(id, order, verdicts)
        }
    }
}

/// The keys whose values differ between `a` and `b`, or that only one has.
fn differing_keys<V: PartialEq>(a: &BTreeMap<u32, V>, b: &BTreeMap<u32, V>) -> BTreeSet<u32> {
    let mut differing: BTreeSet<u32> = (a.iter())
        .filter(|(id, value)| b.get(id) != Some(value))
        .map(|(id, _)| *id)
        .collect();
    differing.extend(b.keys().filter(|id| !a.contains_key(id)));
    differing
}

/// The entries of `order` under policy id `id`.
fn write(id: u32, order: &Order<'_>, ids: &mut IdAllocator<Verdict>) -> Decided {
    let mut values = Values::default();
    let mut entries = values.entries(id, order, emit::entries(order), ids);
    entries.sort_unstable_by_key(|(key, _)| *key);
    values.finish(entries)
}

/// `previous`, whose steps differ from `order`'s only in the identities
/// they name, with the entries of the `changed` identities decided again.
fn patch(
    id: u32,
    previous: Decided,
    order: &Order<'_>,
    changed: &BTreeSet<u32>,
    ids: &mut IdAllocator<Verdict>,
) -> Decided {
    let Decided { written, values } = previous;
    let mut emitter = Emitter::new(order);
    let mut decided = Vec::new();
    for &identity in changed.iter().filter(|&&identity| order.names(identity)) {
        emitter.identity(identity, &mut decided);
    }
    let mut values = Values {
        known: values,
        verdicts: written.verdicts,
    };
    let mut fresh = values.entries(id, order, decided, ids);
    fresh.sort_unstable_by_key(|(key, _)| *key);
    let kept = (written.entries.into_iter()).filter(|(key, _)| !changed.contains(&key.identity));
    values.finish(merge(kept, fresh))
}

/// The entries of `a` and `b` (each sorted, no key in both), sorted.
fn merge(
    a: impl Iterator<Item = (PolicyEntryKey, PolicyValue)>,
    b: Vec<(PolicyEntryKey, PolicyValue)>,
) -> Vec<(PolicyEntryKey, PolicyValue)> {
    let mut merged = Vec::with_capacity(b.len());
    let mut b = b.into_iter().peekable();
    for entry in a {
        while let Some(next) = b.next_if(|next| next.0 < entry.0) {
            merged.push(next);
        }
        merged.push(entry);
    }
    merged.extend(b);
    merged
}

/// The values of decisions, with the verdicts they name.
#[derive(Default)]
struct Values {
    known: FxHashMap<DecisionKey, PolicyValue>,
    /// Every verdict `known` names (and perhaps more), by id.
    verdicts: Vec<(u32, Verdict)>,
}

impl Values {
    /// `decided` as POLICY entries of policy id `id`, in its order. A
    /// decision not met before gets its verdict id from `ids`, so new ids
    /// are handed out in the order of `decided`.
    fn entries(
        &mut self,
        id: u32,
        order: &Order<'_>,
        decided: Vec<(EntryKey, DecisionKey)>,
        ids: &mut IdAllocator<Verdict>,
    ) -> Vec<(PolicyEntryKey, PolicyValue)> {
        decided
            .into_iter()
            .map(|((identity, protocol, port), decision)| {
                let value = match self.known.get(&decision) {
                    Some(value) => *value,
                    None => {
                        let verdict = verdict_of(order, &decision);
                        let value = verdict_value(ids, &verdict);
                        self.verdicts.push((value.rule, verdict));
                        self.known.insert(decision, value);
                        value
                    }
                };
                let key = PolicyEntryKey {
                    policy: id,
                    identity,
                    protocol,
                    port,
                };
                (key, value)
            })
            .collect()
    }

    /// The set of `entries` (sorted), remembering only what they name.
    fn finish(mut self, entries: Vec<(PolicyEntryKey, PolicyValue)>) -> Decided {
        let named: BTreeSet<u32> = entries.iter().map(|(_, value)| value.rule).collect();
        self.known.retain(|_, value| named.contains(&value.rule));
        self.verdicts.retain(|(rule, _)| named.contains(rule));
        self.verdicts.sort_unstable_by_key(|(rule, _)| *rule);
        self.verdicts.dedup_by_key(|(rule, _)| *rule);
        Decided {
            written: SetEntries {
                entries,
                verdicts: self.verdicts,
            },
            values: self.known,
        }
    }
}
