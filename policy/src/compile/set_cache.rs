//! The entries of each policy set, remembered from one compilation to the
//! next. Deciding a set's entries walks its steps for every identity they
//! name over every port range, which is most of a recompile's work; a set
//! whose steps (peers as identity ids, ports, actions, deciders) and named
//! port resolutions are unchanged decides exactly as before, so a relabel
//! or a policy edit recomputes only the sets it touches. A kept set's
//! entries are kept as written, policy id and verdict ids included, so
//! that a recompile copies them rather than looking up each entry's
//! verdict again.

use std::collections::BTreeMap;

use netseg_contract::PolicyValue;
use rustc_hash::FxHashMap;

use super::alloc::IdAllocator;
use super::emit;
use super::entries::PolicySetKey;
use super::identities::NamedPorts;
use super::precedence::{DecisionKey, Order, Step};
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
    written: SetEntries,
}

#[derive(Default)]
pub(super) struct SetCache {
    previous: BTreeMap<PolicySetKey, Remembered>,
    current: BTreeMap<PolicySetKey, Remembered>,
    /// The egress named-port resolutions of the previous compilation.
    named_ports: BTreeMap<u32, NamedPorts>,
    named_ports_changed: bool,
}

impl SetCache {
    /// Starts a compilation whose identities resolve egress named ports to
    /// `named_ports`.
    pub(super) fn begin(&mut self, named_ports: &BTreeMap<u32, NamedPorts>) {
        self.named_ports_changed = self.named_ports != *named_ports;
        if self.named_ports_changed {
            self.named_ports = named_ports.clone();
        }
    }

    /// The entries of the set `key`, whose policy id is `id` and whose
    /// order is `order`, with verdict ids from `verdicts`.
    pub(super) fn entries(
        &mut self,
        key: &PolicySetKey,
        id: u32,
        order: &Order<'_>,
        verdicts: &mut IdAllocator<Verdict>,
    ) -> &SetEntries {
        let depends_on_names =
            order.direction == Direction::Egress && order.steps.iter().any(Step::has_named);
        let kept = self.previous.remove(key).filter(|r| {
            r.id == id
                && r.steps == order.steps
                && !(depends_on_names && self.named_ports_changed)
                // Also marks each verdict id as used in this compilation.
                && (r.written.verdicts.iter())
                    .all(|(rule, verdict)| verdict_value(verdicts, verdict).rule == *rule)
        });
        let remembered = kept.unwrap_or_else(|| Remembered {
            id,
            steps: order.steps.clone(),
            written: write(id, order, verdicts),
        });
        &self
            .current
            .entry(key.clone())
            .or_insert(remembered)
            .written
    }

    /// Ends a compilation: sets it did not use are forgotten.
    pub(super) fn finish(&mut self) {
        self.previous = std::mem::take(&mut self.current);
    }
}

/// The entries of `order` under policy id `id`.
fn write(id: u32, order: &Order<'_>, ids: &mut IdAllocator<Verdict>) -> SetEntries {
    let mut values: FxHashMap<&DecisionKey, PolicyValue> = FxHashMap::default();
    let mut verdicts = Vec::new();
    let decided = emit::entries(order);
    let mut entries: Vec<(PolicyEntryKey, PolicyValue)> = decided
        .iter()
        .map(|((identity, protocol, port), decision)| {
            let value = *values.entry(decision).or_insert_with(|| {
                let verdict = verdict_of(order, decision);
                let value = verdict_value(ids, &verdict);
                verdicts.push((value.rule, verdict));
                value
            });
            let key = PolicyEntryKey {
                policy: id,
                identity: *identity,
                protocol: *protocol,
                port: *port,
            };
            (key, value)
        })
        .collect();
    entries.sort_unstable_by_key(|(key, _)| *key);
    verdicts.sort_unstable_by_key(|(rule, _)| *rule);
    verdicts.dedup_by_key(|(rule, _)| *rule);
    SetEntries { entries, verdicts }
}
