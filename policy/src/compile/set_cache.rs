//! The entries of each policy set, remembered from one compilation to the
//! next. Deciding a set's entries walks its steps for every identity they
//! name over every port range, which is most of a recompile's work; a set
//! whose steps (peers as identity ids, ports, actions, deciders) and named
//! port resolutions are unchanged decides exactly as before, so a relabel
//! or a policy edit recomputes only the sets it touches.

use std::collections::BTreeMap;

use super::emit::{self, EntryKey};
use super::entries::PolicySetKey;
use super::identities::NamedPorts;
use super::precedence::{DecisionKey, Order, Step};
use crate::types::Direction;

struct Remembered {
    steps: Vec<Step>,
    entries: Vec<(EntryKey, DecisionKey)>,
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

    /// The entries of the set `key`, whose order is `order`.
    pub(super) fn entries(
        &mut self,
        key: &PolicySetKey,
        order: &Order<'_>,
    ) -> &[(EntryKey, DecisionKey)] {
        let depends_on_names =
            order.direction == Direction::Egress && order.steps.iter().any(Step::has_named);
        let kept = self
            .previous
            .remove(key)
            .filter(|r| r.steps == order.steps && !(depends_on_names && self.named_ports_changed));
        let remembered = kept.unwrap_or_else(|| Remembered {
            steps: order.steps.clone(),
            entries: emit::entries(order),
        });
        &self
            .current
            .entry(key.clone())
            .or_insert(remembered)
            .entries
    }

    /// Ends a compilation: sets it did not use are forgotten.
    pub(super) fn finish(&mut self) {
        self.previous = std::mem::take(&mut self.current);
    }
}
