//! Precedence, resolved while compiling: the ordered steps that decide a
//! new connection at one endpoint in one direction, and the walk over them.
//!
//! Every band (node traffic, Admin, NetworkPolicy, Baseline, posture, the
//! default) becomes a list of steps of one shape: which peers, which
//! protocols and ports, what action, and what to name as the decider. The
//! first matching step decides, except that a Pass skips the rest of its
//! band. The last step (the default) matches everything, so every walk ends
//! in a decision.

use std::collections::BTreeSet;

use netseg_contract::identity;

use super::identities::{Classes, NamedPorts, PeerTable};
use crate::model::{PeerModel, PortModel};
use crate::trace::StepOutcome;
use crate::types::{Action, Band, Decider, Direction};

/// The peers a step matches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Targets {
    Any,
    Identities(BTreeSet<u32>),
}

impl Targets {
    /// The identities `peers` match (`None`: every address).
    pub(super) fn of(classes: &Classes, table: &PeerTable, peers: Option<&[PeerModel]>) -> Self {
        let Some(peers) = peers else {
            return Targets::Any;
        };
        let ids = peers
            .iter()
            .filter_map(|peer| table.index(peer))
            .flat_map(|i| classes.by_peer[i].iter().copied())
            .collect();
        Targets::Identities(ids)
    }

    fn matches(&self, class: Class) -> bool {
        match (self, class) {
            (Targets::Any, _) => true,
            (Targets::Identities(ids), Class::Identity(id)) => ids.contains(&id),
            (Targets::Identities(_), Class::Other) => false,
        }
    }
}

/// The addresses a decision is for: one identity that some step names, or
/// every other address (the datapath's [`identity::ANY`] fallback).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Class {
    Other,
    Identity(u32),
}

impl Class {
    pub(super) fn key(self) -> u32 {
        match self {
            Class::Other => identity::ANY,
            Class::Identity(id) => id,
        }
    }
}

/// One step of the order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Step {
    /// The band a Pass skips the rest of; `None` for node traffic and the default.
    pub band: Option<Band>,
    /// Only in the audit walk.
    pub audit: bool,
    pub targets: Targets,
    /// `None`: every protocol and port.
    pub ports: Option<Vec<PortModel>>,
    pub action: Action,
    pub decided_by: Decider,
    /// Why the rule fails closed, for `explain`.
    pub fails_closed: Option<String>,
}

/// Which step decided, after which Pass steps.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct Outcome {
    pub step: usize,
    pub passes: Vec<usize>,
}

/// What one (class, protocol, port) gets: the enforced outcome, and the
/// audit walk's outcome when it differs in allow against deny.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct DecisionKey {
    pub enforced: Outcome,
    pub audit: Option<Outcome>,
}

/// The steps of one policy set, and what port matching needs.
pub(super) struct Order<'a> {
    pub steps: Vec<Step>,
    pub direction: Direction,
    /// Ingress: named ports resolved on the local pod.
    pub local_ports: &'a NamedPorts,
    /// Egress: named ports resolved on each peer identity.
    pub classes: &'a Classes,
}

impl Order<'_> {
    pub(super) fn allows(&self, outcome: &Outcome) -> bool {
        self.steps[outcome.step].action == Action::Accept
    }

    /// The steps whose peers include `class`, in order: only they can
    /// decide for it.
    pub(super) fn active(&self, class: Class) -> Vec<usize> {
        (0..self.steps.len())
            .filter(|&i| self.steps[i].targets.matches(class))
            .collect()
    }

    /// The decision for `class`, whose [`Order::active`] steps are
    /// `active`, on `protocol` (`None`: a protocol no step names) and
    /// destination `port`.
    pub(super) fn decide(
        &self,
        class: Class,
        active: &[usize],
        protocol: Option<u8>,
        port: u16,
    ) -> DecisionKey {
        let enforced = self.walk(class, active, protocol, port, false);
        let audit = self
            .steps
            .iter()
            .any(|s| s.audit)
            .then(|| self.walk(class, active, protocol, port, true))
            .filter(|audit| self.allows(audit) != self.allows(&enforced));
        DecisionKey { enforced, audit }
    }

    fn walk(
        &self,
        class: Class,
        active: &[usize],
        protocol: Option<u8>,
        port: u16,
        audit: bool,
    ) -> Outcome {
        let steps = active.iter().copied();
        self.walk_seen(class, steps, protocol, port, audit, |_, _| {})
    }

    /// The walk of [`Order::decide`] over `steps` (indices, in order),
    /// telling `seen` what each step met made of the connection.
    pub(super) fn walk_seen(
        &self,
        class: Class,
        steps: impl Iterator<Item = usize>,
        protocol: Option<u8>,
        port: u16,
        audit: bool,
        mut seen: impl FnMut(usize, StepOutcome),
    ) -> Outcome {
        let mut passes = Vec::new();
        let mut skipping = None;
        for i in steps {
            let step = &self.steps[i];
            let outcome = if step.audit && !audit {
                StepOutcome::AuditOnly
            } else if skipping.is_some() && step.band == skipping {
                StepOutcome::SkippedByPass
            } else if !step.targets.matches(class) {
                StepOutcome::PeerNotMatched
            } else if !self.ports_match(step, class, protocol, port) {
                StepOutcome::ProtocolNotMatched
            } else if step.action == Action::Pass {
                StepOutcome::Passed
            } else {
                StepOutcome::Decided
            };
            seen(i, outcome);
            match outcome {
                StepOutcome::Decided => return Outcome { step: i, passes },
                StepOutcome::Passed => {
                    passes.push(i);
                    skipping = step.band;
                }
                _ => {}
            }
        }
        // Unreachable while the last step is the default; deny if not.
        Outcome {
            step: self.steps.len().saturating_sub(1),
            passes,
        }
    }

    fn ports_match(&self, step: &Step, class: Class, protocol: Option<u8>, port: u16) -> bool {
        let Some(ports) = &step.ports else {
            return true;
        };
        let Some(protocol) = protocol else {
            return false;
        };
        ports.iter().any(|model| match model {
            PortModel::AllPorts(p) => *p == protocol,
            PortModel::Range {
                protocol: p,
                first,
                last,
            } => *p == protocol && (*first..=*last).contains(&port),
            PortModel::Named { protocol: p, name } => {
                *p == protocol
                    && self
                        .named(class, name, protocol)
                        .is_some_and(|ports| ports.contains(&port))
            }
        })
    }

    /// What a named port resolves to for `class`: on the local pod for
    /// ingress, on the peer for egress (nothing for an unnamed class).
    fn named(&self, class: Class, name: &str, protocol: u8) -> Option<&BTreeSet<u16>> {
        let resolutions = match (self.direction, class) {
            (Direction::Ingress, _) => self.local_ports,
            (Direction::Egress, Class::Identity(id)) => self.classes.named_ports.get(&id)?,
            (Direction::Egress, Class::Other) => return None,
        };
        // Looked up without building an owned key: a pod has few names.
        resolutions
            .iter()
            .find(|((n, p), _)| n == name && *p == protocol)
            .map(|(_, ports)| ports)
    }

    /// What besides its active steps `class`'s decisions depend on: its
    /// egress named-port resolutions, when a step uses named ports.
    pub(super) fn resolutions(&self, class: Class) -> Option<&NamedPorts> {
        match (self.direction, class) {
            (Direction::Egress, Class::Identity(id)) if self.steps.iter().any(Step::has_named) => {
                self.classes.named_ports.get(&id)
            }
            _ => None,
        }
    }

    /// The identities some step names, plus (egress) every identity with
    /// named ports when a step matches any peer on a named port.
    pub(super) fn named_identities(&self) -> BTreeSet<u32> {
        let mut ids = BTreeSet::new();
        for step in &self.steps {
            match &step.targets {
                Targets::Identities(named) => ids.extend(named.iter().copied()),
                Targets::Any if self.direction == Direction::Egress && step.has_named() => {
                    ids.extend(self.classes.named_ports.keys().copied());
                }
                Targets::Any => {}
            }
        }
        ids
    }

    /// Whether some step names identity `id` (see [`Order::named_identities`]).
    pub(super) fn names(&self, id: u32) -> bool {
        self.steps.iter().any(|step| match &step.targets {
            Targets::Identities(named) => named.contains(&id),
            Targets::Any => {
                self.direction == Direction::Egress
                    && step.has_named()
                    && self.classes.named_ports.contains_key(&id)
            }
        })
    }

    /// Every protocol some step names, with the ports where a step's
    /// match can change: the decision is constant between them.
    pub(super) fn boundaries(&self) -> Vec<(u8, BTreeSet<u32>)> {
        let mut by_protocol: std::collections::BTreeMap<u8, BTreeSet<u32>> = Default::default();
        for model in self.steps.iter().flat_map(|s| s.ports.iter().flatten()) {
            match model {
                PortModel::AllPorts(p) => {
                    by_protocol.entry(*p).or_default();
                }
                PortModel::Range {
                    protocol,
                    first,
                    last,
                } => {
                    let cuts = by_protocol.entry(*protocol).or_default();
                    cuts.insert(u32::from(*first));
                    cuts.insert(u32::from(*last) + 1);
                }
                PortModel::Named { protocol, name } => {
                    let cuts = by_protocol.entry(*protocol).or_default();
                    let key = (name.clone(), *protocol);
                    let resolved = (self.local_ports.get(&key).into_iter())
                        .chain(self.classes.named_port_numbers.get(&key));
                    for port in resolved.flatten() {
                        cuts.insert(u32::from(*port));
                        cuts.insert(u32::from(*port) + 1);
                    }
                }
            }
        }
        by_protocol.into_iter().collect()
    }
}

/// The identities whose matching steps differ between `before` and
/// `after`: those one of them names and the other does not, step by step.
/// `None` when the steps differ in anything but the identities they name.
pub(super) fn renamed_identities(before: &[Step], after: &[Step]) -> Option<BTreeSet<u32>> {
    if before.len() != after.len() {
        return None;
    }
    let mut changed = BTreeSet::new();
    for (old, new) in before.iter().zip(after) {
        let same_but_targets = old.band == new.band
            && old.audit == new.audit
            && old.ports == new.ports
            && old.action == new.action
            && old.decided_by == new.decided_by
            && old.fails_closed == new.fails_closed;
        match (&old.targets, &new.targets) {
            _ if !same_but_targets => return None,
            (Targets::Any, Targets::Any) => {}
            (Targets::Identities(old), Targets::Identities(new)) => {
                changed.extend(old.symmetric_difference(new).copied());
            }
            _ => return None,
        }
    }
    Some(changed)
}

impl Step {
    /// Whether the step matches named ports.
    pub(super) fn has_named(&self) -> bool {
        self.ports
            .iter()
            .flatten()
            .any(|p| matches!(p, PortModel::Named { .. }))
    }
}
