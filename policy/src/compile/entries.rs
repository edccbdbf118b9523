//! What decides at one endpoint in one direction: the policy set (the key a
//! policy id is allocated for) and its order of steps.

use super::identities::{Classes, NamedPorts, PeerTable};
use super::precedence::{Order, Step, Targets};
use super::resolve::{ResolvedPolicy, ResolvedRule};
use crate::model::{PodModel, PolicyModel, PortModel, Posture, SegmentModel};
use crate::types::{Action, Band, Decider, Direction, PolicyKind, RuleRef};
use crate::{CompileOptions, DefaultAction};

/// What a policy id is allocated for. Two endpoints with equal keys get
/// identical entries, so they share the id. Keyed by policy names, not rule
/// content, so that editing one policy keeps the ids and changes only the
/// entries that differ.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) struct PolicySetKey {
    pub direction: Direction,
    /// (kind, name) of the cluster policies that apply, in their order.
    pub cluster: Vec<(PolicyKind, String)>,
    /// Namespace and names of the NetworkPolicies that isolate the
    /// direction, sorted; empty when none does.
    pub isolating: Option<(String, Vec<String>)>,
    /// Names of the Segments the pod is a member of, sorted.
    pub segments: Vec<String>,
    /// Ingress only: the local pod's resolution of the named ports that the
    /// ingress rules use (named ports resolve against the destination pod).
    pub local_ports: NamedPorts,
}

/// The policies that apply at one endpoint in one direction.
pub(super) struct Applicable<'a> {
    pub direction: Direction,
    /// In their order (Admin and Baseline interleaved as sorted).
    pub cluster: Vec<&'a ResolvedPolicy>,
    /// Isolating NetworkPolicies, by name.
    pub network: Vec<&'a PolicyModel>,
    /// Segments the pod is a member of, by name.
    pub segments: Vec<&'a SegmentModel>,
}

impl Applicable<'_> {
    pub(super) fn key(&self, pod: &PodModel) -> PolicySetKey {
        let mut local_ports = NamedPorts::new();
        if self.direction == Direction::Ingress {
            for port in self.port_models() {
                if let PortModel::Named { protocol, name } = port {
                    let ports = pod.resolve(name, *protocol);
                    if !ports.is_empty() {
                        local_ports.insert((name.clone(), *protocol), ports);
                    }
                }
            }
        }
        PolicySetKey {
            direction: self.direction,
            cluster: self
                .cluster
                .iter()
                .map(|p| (p.model.kind, p.model.name.clone()))
                .collect(),
            isolating: self.network.first().map(|first| {
                let names = self.network.iter().map(|p| p.name.clone()).collect();
                (first.namespace.clone(), names)
            }),
            segments: self.segments.iter().map(|s| s.name.clone()).collect(),
            local_ports,
        }
    }

    fn port_models(&self) -> impl Iterator<Item = &PortModel> {
        let cluster = self
            .cluster
            .iter()
            .flat_map(|p| p.rules[self.direction.index()].iter())
            .flat_map(|r| r.ports.iter().flatten());
        let network = self
            .network
            .iter()
            .flat_map(|p| p.rules(self.direction).unwrap_or_default())
            .flat_map(|r| r.ports.iter().flatten());
        cluster.chain(network)
    }
}

/// What building an order reads.
pub(super) struct EntryContext<'a> {
    pub classes: &'a Classes,
    pub peers: &'a PeerTable,
    pub options: &'a CompileOptions,
}

/// The order of steps for `applicable`, whose key is `key`.
pub(super) fn order<'a>(
    ctx: &EntryContext<'a>,
    key: &'a PolicySetKey,
    applicable: &Applicable<'_>,
) -> Order<'a> {
    let direction = applicable.direction;
    let mut steps = Vec::new();
    if direction == Direction::Ingress && !ctx.options.deny_node_traffic {
        steps.push(Step {
            band: None,
            audit: false,
            targets: Targets::Identities(ctx.classes.node.clone()),
            ports: None,
            action: Action::Accept,
            decided_by: Decider::NodeTraffic,
            fails_closed: None,
        });
    }
    let tier = |band: Band| {
        applicable
            .cluster
            .iter()
            .filter(move |p| super::resolve::band(p.model.tier) == band)
    };
    for policy in tier(Band::Admin) {
        steps.extend(cluster_steps(ctx, policy, direction));
    }
    network_steps(ctx, applicable, &mut steps);
    for policy in tier(Band::Baseline) {
        steps.extend(cluster_steps(ctx, policy, direction));
    }
    if let Some(posture) = posture_step(&applicable.segments, direction) {
        steps.push(posture);
    }
    let allow = ctx.options.default_action == DefaultAction::Allow;
    steps.push(whole_step(
        None,
        if allow { Action::Accept } else { Action::Deny },
        Decider::Default,
    ));
    Order {
        steps,
        direction,
        local_ports: &key.local_ports,
        classes: ctx.classes,
    }
}

fn cluster_steps<'a>(
    ctx: &'a EntryContext<'_>,
    policy: &'a ResolvedPolicy,
    direction: Direction,
) -> impl Iterator<Item = Step> + 'a {
    let audit = policy.model.audit;
    policy.rules[direction.index()]
        .iter()
        .map(move |rule| rule_step(ctx, rule, audit))
}

fn rule_step(ctx: &EntryContext<'_>, rule: &ResolvedRule, audit: bool) -> Step {
    Step {
        band: Some(rule.rule_ref.band),
        audit,
        targets: Targets::of(ctx.classes, ctx.peers, rule.peers.as_deref()),
        ports: rule.ports.clone(),
        action: rule.rule_ref.action,
        decided_by: Decider::Rule(rule.rule_ref.clone()),
        fails_closed: rule.fails_closed.clone(),
    }
}

/// The rules of the isolating NetworkPolicies, then the isolation itself.
fn network_steps(ctx: &EntryContext<'_>, applicable: &Applicable<'_>, steps: &mut Vec<Step>) {
    let Some(first) = applicable.network.first() else {
        return;
    };
    let direction = applicable.direction;
    for policy in &applicable.network {
        for rule in policy.rules(direction).unwrap_or_default() {
            let rule_ref = RuleRef {
                kind: PolicyKind::NetworkPolicy,
                band: Band::NetworkPolicy,
                namespace: policy.namespace.clone(),
                name: policy.name.clone(),
                direction,
                index: rule.index,
                rule_name: None,
                action: Action::Accept,
            };
            steps.push(Step {
                band: Some(Band::NetworkPolicy),
                audit: false,
                targets: Targets::of(ctx.classes, ctx.peers, rule.peers.as_deref()),
                ports: rule.ports.clone(),
                action: Action::Accept,
                decided_by: Decider::Rule(rule_ref),
                fails_closed: None,
            });
        }
    }
    let isolation = Decider::Isolation {
        namespace: first.namespace.clone(),
        policies: applicable.network.iter().map(|p| p.name.clone()).collect(),
    };
    steps.push(whole_step(
        Some(Band::NetworkPolicy),
        Action::Deny,
        isolation,
    ));
}

/// A pod in several Segments: Deny if any of them denies the direction
/// (named by the first such Segment), else Accept (the first Segment).
fn posture_step(segments: &[&SegmentModel], direction: Direction) -> Option<Step> {
    let deciding = segments
        .iter()
        .find(|s| s.posture(direction) == Posture::Deny)
        .or(segments.first())?;
    let action = match deciding.posture(direction) {
        Posture::Accept => Action::Accept,
        Posture::Deny => Action::Deny,
    };
    let rule_ref = RuleRef {
        kind: PolicyKind::Segment,
        band: Band::Posture,
        namespace: String::new(),
        name: deciding.name.clone(),
        direction,
        index: 0,
        rule_name: None,
        action,
    };
    Some(whole_step(
        Some(Band::Posture),
        action,
        Decider::Rule(rule_ref),
    ))
}

/// A step that matches every peer, protocol and port.
fn whole_step(band: Option<Band>, action: Action, decided_by: Decider) -> Step {
    Step {
        band,
        audit: false,
        targets: Targets::Any,
        ports: None,
        action,
        decided_by,
        fails_closed: None,
    }
}
