//! The POLICY entries of one policy set: the decision function of an
//! [`Order`] written as LPM entries that the datapath's two lookups (the
//! peer's identity, then any peer) read back exactly.
//!
//! Every other address gets one whole-key entry (`ANY`, every protocol)
//! with its decision on protocols no step names, plus port entries where a
//! named protocol decides differently. An identity gets entries only where
//! its decisions differ from what the lookup would otherwise fall back to:
//! its own whole-key entry if it has one, or else the `ANY` entries. Port
//! entries cover disjoint ranges, so the longest prefix is the only one.

use std::collections::{BTreeSet, HashMap};

use super::identities::NamedPorts;
use super::precedence::{Class, DecisionKey, Order};
use crate::ports::range_to_prefixes;
use crate::types::PortPrefix;

/// A POLICY entry without its policy id: (identity, protocol, port prefix).
pub(super) type EntryKey = (u32, Option<u8>, Option<PortPrefix>);

/// Decisions over the ports of one protocol: `(first, last, decision)`
/// runs covering `0..=65535` in order.
type Runs = Vec<(u16, u16, DecisionKey)>;

/// The entries of `order`, with the decision each stands for.
pub(super) fn entries(order: &Order<'_>) -> Vec<(EntryKey, DecisionKey)> {
    let mut out = Vec::new();
    let mut emitter = Emitter::new(order);
    emitter.other(&mut out);
    for id in order.named_identities() {
        emitter.identity(id, &mut out);
    }
    out
}

/// Writes the entries of `order` class by class: every other address's,
/// and each identity's against them. An identity's entries depend only on
/// the steps that match it (and its egress named-port resolutions), so
/// they can be written for some identities alone.
pub(super) struct Emitter<'o, 'a> {
    order: &'o Order<'a>,
    protocols: Vec<(u8, BTreeSet<u32>)>,
    other_base: DecisionKey,
    other_runs: ProtocolRuns,
    /// Identities that the same steps match (and that resolve named ports
    /// alike) decide alike: most pods share their peers' selections.
    memo: HashMap<DecidedAlike<'o>, (DecisionKey, ProtocolRuns)>,
}

impl<'o, 'a> Emitter<'o, 'a> {
    pub(super) fn new(order: &'o Order<'a>) -> Self {
        let protocols = order.boundaries();
        let other = Class::Other;
        let (other_base, other_runs) = decisions(order, other, &order.active(other), &protocols);
        Emitter {
            order,
            protocols,
            other_base,
            other_runs,
            memo: HashMap::new(),
        }
    }

    /// The entries of every address that no step names.
    pub(super) fn other(&self, out: &mut Vec<(EntryKey, DecisionKey)>) {
        let other = Class::Other;
        out.push(((other.key(), None, None), self.other_base.clone()));
        let other_whole = whole(&self.other_base);
        for (protocol, runs) in &self.other_runs {
            write_protocol(out, other, *protocol, runs, &other_whole);
        }
    }

    /// The entries of identity `id`, where they differ from every other
    /// address's.
    pub(super) fn identity(&mut self, id: u32, out: &mut Vec<(EntryKey, DecisionKey)>) {
        let order = self.order;
        let class = Class::Identity(id);
        let active = order.active(class);
        let key = (active, order.resolutions(class));
        let protocols = &self.protocols;
        let (base, runs) = self
            .memo
            .entry(key)
            .or_insert_with_key(|(active, _)| decisions(order, class, active, protocols));
        let own_base = *base != self.other_base;
        if own_base {
            out.push(((id, None, None), base.clone()));
        }
        let own_whole = whole(base);
        for ((protocol, runs), (_, other_runs)) in runs.iter().zip(&self.other_runs) {
            let fallback = if own_base { &own_whole } else { other_runs };
            write_protocol(out, class, *protocol, runs, fallback);
        }
    }
}

/// One run over every port.
fn whole(decision: &DecisionKey) -> Runs {
    vec![(0, u16::MAX, decision.clone())]
}

/// Decision runs per protocol.
type ProtocolRuns = Vec<(u8, Runs)>;

/// What an identity's decisions depend on: the steps that match it, and
/// its egress named-port resolutions when steps use named ports.
type DecidedAlike<'a> = (Vec<usize>, Option<&'a NamedPorts>);

/// `class`'s decision on protocols no step names, and its runs on each
/// protocol that steps name.
fn decisions(
    order: &Order<'_>,
    class: Class,
    active: &[usize],
    protocols: &[(u8, BTreeSet<u32>)],
) -> (DecisionKey, ProtocolRuns) {
    let base = order.decide(class, active, None, 0);
    let runs = protocols
        .iter()
        .map(|(protocol, cuts)| (*protocol, runs(order, class, active, *protocol, cuts)))
        .collect();
    (base, runs)
}

/// The decision runs of `class` on `protocol`, cut at `cuts`.
fn runs(
    order: &Order<'_>,
    class: Class,
    active: &[usize],
    protocol: u8,
    cuts: &BTreeSet<u32>,
) -> Runs {
    let mut starts: BTreeSet<u32> = cuts.iter().copied().filter(|&c| c <= 0xffff).collect();
    starts.insert(0);
    let starts: Vec<u32> = starts.into_iter().collect();
    let mut runs: Runs = Vec::new();
    for (i, &start) in starts.iter().enumerate() {
        let end = starts.get(i + 1).map_or(0xffff, |next| next - 1);
        let (first, last) = (port(start), port(end));
        let decision = order.decide(class, active, Some(protocol), first);
        match runs.last_mut() {
            Some(run) if run.2 == decision => run.1 = last,
            _ => runs.push((first, last, decision)),
        }
    }
    runs
}

/// `value` as a port: callers pass values within `0..=0xffff`.
fn port(value: u32) -> u16 {
    u16::try_from(value).unwrap_or(u16::MAX)
}

/// Writes `runs` of `class` on `protocol` where they differ from
/// `fallback`, what the lookup falls back to at each port.
fn write_protocol(
    out: &mut Vec<(EntryKey, DecisionKey)>,
    class: Class,
    protocol: u8,
    runs: &Runs,
    fallback: &Runs,
) {
    let differing: Vec<(u16, u16, &DecisionKey)> = overlay(runs, fallback)
        .filter(|(_, _, mine, theirs)| mine != theirs)
        .map(|(first, last, mine, _)| (first, last, mine))
        .collect();
    if differing.is_empty() {
        return;
    }
    if let [(_, _, decision)] = runs.as_slice() {
        out.push(((class.key(), Some(protocol), None), (*decision).clone()));
        return;
    }
    for (first, last, decision) in differing {
        for prefix in range_to_prefixes(first, last) {
            let key = (class.key(), Some(protocol), Some(prefix));
            out.push((key, decision.clone()));
        }
    }
}

/// The pieces of `0..=65535` on which neither run list changes:
/// `(first, last, a's decision, b's decision)`.
fn overlay<'a>(
    a: &'a Runs,
    b: &'a Runs,
) -> impl Iterator<Item = (u16, u16, &'a DecisionKey, &'a DecisionKey)> + 'a {
    let (mut i, mut j) = (0, 0);
    let mut start: u32 = 0;
    std::iter::from_fn(move || {
        let (x, y) = (a.get(i)?, b.get(j)?);
        let end = x.1.min(y.1);
        let piece = (port(start), end, &x.2, &y.2);
        start = u32::from(end) + 1;
        if x.1 == end {
            i += 1;
        }
        if y.1 == end {
            j += 1;
        }
        Some(piece)
    })
}
