//! Rules of different cluster policies at the same tier and priority, with
//! different actions, that may match the same traffic.
//!
//! The API leaves the order of equal priorities to the implementation.
//! netseg's is fixed (tier, priority, ClusterNetworkPolicy before
//! SegmentPolicy, name, rule index), but an author who gave two policies
//! one priority may expect the other one to win: where their rules with
//! different actions meet the same connection, the warning names both and
//! the order applied.
//!
//! "May match the same traffic" is a conservative approximation over the
//! snapshot, so it may warn where no connection is affected, and misses
//! only overlaps that no pod of the snapshot makes real yet:
//! - subjects: equal, or both select every pod, or both SegmentPolicies
//!   name one existing Segment, or some pod of the snapshot is selected by
//!   both;
//! - peers: some peer of each rule where the two are equal, or both select
//!   every pod, or some pod of the snapshot matches both, or their CIDRs
//!   overlap, or a pod matched by one holds an address in the other's CIDR;
//!   a rule that fails closed as "Deny all" matches every peer, and an
//!   Accept rule that fails closed none;
//! - protocols: either rule has none (every protocol), or two entries name
//!   one protocol with overlapping port ranges or a named port (a named
//!   port may resolve to any port).

use std::collections::BTreeMap;

use super::Warning;
use crate::compile::{Inventory, ResolvedPolicy, ResolvedRule, resolve};
use crate::model::{PeerModel, PodModel, PortModel, SegmentModel, Selector, Subject, TieredPolicy};
use crate::types::Direction;

/// Pushes a warning for every pair of conflicting rules.
pub(super) fn equal_priority_conflicts(inv: &Inventory, out: &mut Vec<Warning>) {
    let segments = inv.segments_by_name();
    let resolved: Vec<ResolvedPolicy> = inv.tiered.iter().map(|p| resolve(p, &segments)).collect();
    let world = World {
        inv,
        segments: &segments,
    };
    // In their order, so the policies of one (tier, priority) are adjacent.
    let same_priority = |a: &ResolvedPolicy, b: &ResolvedPolicy| {
        (a.model.tier, a.model.priority) == (b.model.tier, b.model.priority)
    };
    for group in resolved.chunk_by(same_priority) {
        for (i, first) in group.iter().enumerate() {
            for second in &group[i + 1..] {
                if world.subjects_overlap(&first.model, &second.model) {
                    conflicting_rules(&world, first, second, out);
                }
            }
        }
    }
}

fn conflicting_rules(
    world: &World<'_>,
    first: &ResolvedPolicy,
    second: &ResolvedPolicy,
    out: &mut Vec<Warning>,
) {
    for direction in Direction::BOTH {
        let d = direction.index();
        for earlier in &first.rules[d] {
            for later in &second.rules[d] {
                if earlier.rule_ref.action != later.rule_ref.action
                    && world.traffic_overlaps(earlier, later)
                {
                    out.push(conflict(first, earlier, second, later));
                }
            }
        }
    }
}

/// The warning, on the later policy: its rule decides only what the
/// earlier one leaves.
fn conflict(
    first: &ResolvedPolicy,
    earlier: &ResolvedRule,
    second: &ResolvedPolicy,
    later: &ResolvedRule,
) -> Warning {
    let (e, l) = (&earlier.rule_ref, &later.rule_ref);
    Warning {
        kind: second.model.kind,
        name: second.model.name.clone(),
        field: format!("spec.{}[{}]", l.direction, l.index),
        message: format!(
            "this {} rule may match the same traffic as {} {} {} ({}), at the same tier {:?} and \
             priority {}: equal priorities have no order in the API; netseg applies {} {} first \
             (order: tier, priority, ClusterNetworkPolicy before SegmentPolicy, name, rule index), \
             so this rule decides only traffic that one does not match; give the policies different \
             priorities to state the order",
            l.action,
            e.kind,
            e.name,
            e.within_policy(),
            e.action,
            first.model.tier,
            first.model.priority,
            e.kind,
            e.name,
        ),
        enforced_otherwise: false,
    }
}

/// What overlap is judged against: the snapshot's pods and Segments.
struct World<'a> {
    inv: &'a Inventory,
    segments: &'a BTreeMap<&'a str, &'a SegmentModel>,
}

impl World<'_> {
    fn subjects_overlap(&self, a: &TieredPolicy, b: &TieredPolicy) -> bool {
        let shared_segment = match (&a.subject, &b.subject) {
            (Subject::Segments(x), Subject::Segments(y)) => x
                .iter()
                .any(|name| y.contains(name) && self.segments.contains_key(name.as_str())),
            (x, y) => x == y || (selects_every_pod(x) && selects_every_pod(y)),
        };
        shared_segment
            || self
                .inv
                .pods
                .iter()
                .any(|pod| self.selects(a, pod) && self.selects(b, pod))
    }

    fn selects(&self, policy: &TieredPolicy, pod: &PodModel) -> bool {
        let Some(namespace_labels) = self.inv.namespace_labels(&pod.pod_ref.namespace) else {
            return false;
        };
        policy
            .subject
            .selects(namespace_labels, &pod.labels, |name| {
                self.segments
                    .get(name)
                    .is_some_and(|s| s.has_member(namespace_labels, &pod.labels))
            })
    }

    fn traffic_overlaps(&self, a: &ResolvedRule, b: &ResolvedRule) -> bool {
        self.peers_overlap(a.peers.as_deref(), b.peers.as_deref())
            && ports_overlap(a.ports.as_deref(), b.ports.as_deref())
    }

    /// `None`: every address.
    fn peers_overlap(&self, a: Option<&[PeerModel]>, b: Option<&[PeerModel]>) -> bool {
        match (a, b) {
            (None, None) => true,
            (None, Some(peers)) | (Some(peers), None) => !peers.is_empty(),
            (Some(a), Some(b)) => a
                .iter()
                .any(|p| b.iter().any(|q| self.peer_pair_overlaps(p, q))),
        }
    }

    fn peer_pair_overlaps(&self, a: &PeerModel, b: &PeerModel) -> bool {
        match (a, b) {
            _ if a == b => true,
            (PeerModel::Block(x), PeerModel::Block(y)) => {
                x.cidr.is_ipv4() == y.cidr.is_ipv4()
                    && (x.cidr.contains(y.cidr.network()) || y.cidr.contains(x.cidr.network()))
            }
            (PeerModel::Pods { .. }, PeerModel::Pods { .. }) => {
                (selects_all_pods(a) && selects_all_pods(b))
                    || self
                        .inv
                        .pods
                        .iter()
                        .any(|pod| self.peer_has(a, pod) && self.peer_has(b, pod))
            }
            (PeerModel::Block(block), pods @ PeerModel::Pods { .. })
            | (pods @ PeerModel::Pods { .. }, PeerModel::Block(block)) => {
                self.inv.pods.iter().any(|pod| {
                    self.peer_has(pods, pod) && pod.ips.iter().any(|ip| block.contains(*ip, true))
                })
            }
            // Node addresses may be in any block and selected by any other
            // node selector; pod peers never select a node's address.
            (PeerModel::Nodes(_), PeerModel::Nodes(_) | PeerModel::Block(_))
            | (PeerModel::Block(_), PeerModel::Nodes(_)) => true,
            (PeerModel::Nodes(_), PeerModel::Pods { .. })
            | (PeerModel::Pods { .. }, PeerModel::Nodes(_)) => false,
        }
    }

    /// Whether pod peer `peer` matches `pod`.
    fn peer_has(&self, peer: &PeerModel, pod: &PodModel) -> bool {
        match peer {
            PeerModel::Pods { namespaces, pods } => {
                self.inv.in_scope(namespaces, &pod.pod_ref.namespace) && pods.matches(&pod.labels)
            }
            PeerModel::Block(_) | PeerModel::Nodes(_) => false,
        }
    }
}

fn selects_every_pod(subject: &Subject) -> bool {
    matches!(subject, Subject::Pods(s) if s.namespaces == Selector::everything() && s.pods == Selector::everything())
}

fn selects_all_pods(peer: &PeerModel) -> bool {
    matches!(peer, PeerModel::Pods { namespaces: crate::model::NamespaceScope::Selected(n), pods }
        if *n == Selector::everything() && *pods == Selector::everything())
}

/// `None`: every protocol and port.
fn ports_overlap(a: Option<&[PortModel]>, b: Option<&[PortModel]>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.iter().any(|p| b.iter().any(|q| port_pair_overlaps(p, q))),
        _ => true,
    }
}

fn port_pair_overlaps(a: &PortModel, b: &PortModel) -> bool {
    let span = |model: &PortModel| match model {
        PortModel::AllPorts(protocol) | PortModel::Named { protocol, .. } => {
            (*protocol, 0, u16::MAX)
        }
        PortModel::Range {
            protocol,
            first,
            last,
        } => (*protocol, *first, *last),
    };
    let ((pa, fa, la), (pb, fb, lb)) = (span(a), span(b));
    pa == pb && fa <= lb && fb <= la
}
