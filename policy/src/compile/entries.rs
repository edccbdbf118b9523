//! The POLICY entries of one per-direction policy set.

use std::collections::{BTreeMap, BTreeSet};

use netseg_contract::{identity, rule};

use super::identities::{Classes, NamedPorts, PeerTable};
use crate::model::{PodModel, PolicyModel, PortModel, RuleModel};
use crate::ports::range_to_prefixes;
use crate::types::{Direction, PortPrefix};

/// A POLICY entry without its policy id: (identity, protocol, port prefix).
pub(super) type EntryKey = (u32, Option<u8>, Option<PortPrefix>);

/// What a policy id is allocated for. Two endpoints with equal keys get
/// identical entries, so they share the id. Keyed by policy names, not rule
/// content, so that editing one policy keeps the ids and changes only the
/// entries that differ.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct PolicySetKey {
    pub direction: Direction,
    pub isolated: bool,
    /// (namespace, name) of the selecting policies, sorted.
    pub policies: Vec<(String, String)>,
    /// Ingress only: the local pod's resolution of the named ports that the
    /// ingress rules of `policies` use (named ports resolve against the
    /// destination pod).
    pub local_ports: NamedPorts,
}

impl PolicySetKey {
    pub(super) fn new(
        direction: Direction,
        isolated: bool,
        policies: &[&PolicyModel],
        pod: &PodModel,
    ) -> Self {
        let mut local_ports = NamedPorts::new();
        if direction == Direction::Ingress {
            let rules = policies
                .iter()
                .flat_map(|p| p.rules(direction).unwrap_or_default());
            for port in rules.flat_map(|r| r.ports.iter().flatten()) {
                if let PortModel::Named { protocol, name } = port {
                    let ports = pod.resolve(name, *protocol);
                    if !ports.is_empty() {
                        local_ports.insert((name.clone(), *protocol), ports);
                    }
                }
            }
        }
        PolicySetKey {
            direction,
            isolated,
            policies: policies
                .iter()
                .map(|p| (p.namespace.clone(), p.name.clone()))
                .collect(),
            local_ports,
        }
    }
}

/// (namespace, name, direction, index): what a rule id is allocated for.
pub(super) type RuleKey = (String, String, Direction, u32);

/// What entry building reads.
pub(super) struct EntryContext<'a> {
    pub classes: &'a Classes,
    pub peers: &'a PeerTable,
    pub rule_ids: &'a BTreeMap<RuleKey, u32>,
    pub node_traffic: bool,
}

/// The entries of the policy set `key`, whose policies are `policies`,
/// sorted by key. Where several rules yield the same key, the first rule in
/// (namespace, name, index) order names it; the reserved rules come last.
pub(super) fn policy_entries(
    ctx: &EntryContext<'_>,
    key: &PolicySetKey,
    policies: &[&PolicyModel],
) -> Vec<(EntryKey, u32)> {
    let mut entries = Vec::new();
    for policy in policies {
        for rule in policy.rules(key.direction).unwrap_or_default() {
            let rule_key = (
                policy.namespace.clone(),
                policy.name.clone(),
                key.direction,
                rule.index,
            );
            if let Some(&rule_id) = ctx.rule_ids.get(&rule_key) {
                rule_entries(ctx, key, rule, rule_id, &mut entries);
            }
        }
    }
    if !key.isolated {
        entries.push(((identity::ANY, None, None), rule::DEFAULT_ALLOW));
    }
    if key.direction == Direction::Ingress && ctx.node_traffic {
        for &node in &ctx.classes.node {
            entries.push(((node, None, None), rule::NODE_TRAFFIC));
        }
    }
    // Stable: of equal keys the first pushed stays.
    entries.sort_by_key(|(key, _)| *key);
    entries.dedup_by_key(|(key, _)| *key);
    entries
}

/// The peers a rule allows: every address, or some identities.
enum Targets {
    Any,
    Identities(BTreeSet<u32>),
}

impl Targets {
    fn of(ctx: &EntryContext<'_>, rule: &RuleModel) -> Self {
        let Some(peers) = &rule.peers else {
            return Targets::Any;
        };
        let ids = peers
            .iter()
            .filter_map(|peer| ctx.peers.index(peer))
            .flat_map(|i| ctx.classes.by_peer[i].iter().copied())
            .collect();
        Targets::Identities(ids)
    }

    fn ids(&self) -> Vec<u32> {
        match self {
            Targets::Any => vec![identity::ANY],
            Targets::Identities(ids) => ids.iter().copied().collect(),
        }
    }
}

fn rule_entries(
    ctx: &EntryContext<'_>,
    key: &PolicySetKey,
    rule: &RuleModel,
    rule_id: u32,
    out: &mut Vec<(EntryKey, u32)>,
) {
    let targets = Targets::of(ctx, rule);
    let ids = targets.ids();
    let mut add = |identity: u32, protocol: Option<u8>, port: Option<PortPrefix>| {
        out.push(((identity, protocol, port), rule_id));
    };
    let Some(ports) = &rule.ports else {
        for &id in &ids {
            add(id, None, None);
        }
        return;
    };
    for port in ports {
        match port {
            PortModel::AllPorts(protocol) => {
                for &id in &ids {
                    add(id, Some(*protocol), None);
                }
            }
            PortModel::Range {
                protocol,
                first,
                last,
            } => {
                for prefix in range_to_prefixes(*first, *last) {
                    // A zero-length prefix is every port: stop at the protocol.
                    let prefix = (prefix.len > 0).then_some(prefix);
                    for &id in &ids {
                        add(id, Some(*protocol), prefix);
                    }
                }
            }
            PortModel::Named { protocol, name } => {
                let lookup = (name.clone(), *protocol);
                for (id, port) in named_port_targets(ctx, key, &targets, &lookup) {
                    add(id, Some(*protocol), Some(PortPrefix::containing(port, 16)));
                }
            }
        }
    }
}

/// (identity, port) pairs a named port allows. On ingress the name resolves
/// against the local pod, for every allowed peer. On egress it resolves
/// against each peer: only identities of pods that have the port.
fn named_port_targets(
    ctx: &EntryContext<'_>,
    key: &PolicySetKey,
    targets: &Targets,
    name: &(String, u8),
) -> Vec<(u32, u16)> {
    match key.direction {
        Direction::Ingress => {
            let ports = key.local_ports.get(name).into_iter().flatten();
            ports
                .flat_map(|&port| targets.ids().into_iter().map(move |id| (id, port)))
                .collect()
        }
        Direction::Egress => {
            let resolved = |id: u32| {
                let ports = ctx.classes.named_ports.get(&id).and_then(|n| n.get(name));
                ports.into_iter().flatten().map(move |&port| (id, port))
            };
            match targets {
                Targets::Any => ctx
                    .classes
                    .named_ports
                    .keys()
                    .flat_map(|&id| resolved(id))
                    .collect(),
                Targets::Identities(ids) => ids.iter().flat_map(|&id| resolved(id)).collect(),
            }
        }
    }
}
