//! The NetworkPolicy band: the policies that select the pod and isolate
//! the direction, and their rules.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::Packet;
use super::view::{View, has_named_port, labels_of, selector_matches};
use crate::protocol_number;
use crate::types::{Action, Band, Decider, Direction, PolicyKind, RuleRef};

/// The NetworkPolicy band's decision: `None` when no policy isolates the
/// pod in the packet's direction; else allowed by the first rule (by policy
/// name, then rule index) that matches, or denied by the isolation.
pub(super) fn decide(view: &View<'_>, packet: &Packet<'_>) -> Option<(bool, Decider)> {
    let isolating = isolating(view, packet.local, packet.direction);
    if isolating.is_empty() {
        return None;
    }
    let namespace = packet.namespace;
    for policy in &isolating {
        for (index, peers, ports) in rules_of(policy, packet.direction) {
            let peers_ok = peers.is_empty()
                || peers
                    .iter()
                    .any(|p| peer_matches(view, p, namespace, packet.peer, &packet.holders));
            let ports_ok = ports.is_empty()
                || ports.iter().any(|p| {
                    port_matches(p, packet.destination_pods(), packet.protocol, packet.port)
                });
            if peers_ok && ports_ok {
                let rule = RuleRef {
                    kind: PolicyKind::NetworkPolicy,
                    band: Band::NetworkPolicy,
                    namespace: namespace.to_string(),
                    name: name(policy),
                    direction: packet.direction,
                    index,
                    rule_name: None,
                    action: Action::Accept,
                };
                return Some((true, Decider::Rule(rule)));
            }
        }
    }
    let isolation = Decider::Isolation {
        namespace: namespace.to_string(),
        policies: isolating.iter().map(|p| name(p)).collect(),
    };
    Some((false, isolation))
}

fn name(policy: &NetworkPolicy) -> String {
    policy.metadata.name.clone().unwrap_or_default()
}

/// The policies that select `local` and isolate `direction`, by name.
fn isolating<'a>(view: &View<'a>, local: &Pod, direction: Direction) -> Vec<&'a NetworkPolicy> {
    let mut selecting: Vec<&NetworkPolicy> = view
        .policies
        .iter()
        .copied()
        .filter(|p| p.metadata.namespace == local.metadata.namespace)
        .filter(|p| {
            let selector = p.spec.as_ref().and_then(|s| s.pod_selector.as_ref());
            selector.is_none_or(|s| selector_matches(s, labels_of(local)))
                && policy_isolates(p, direction)
        })
        .collect();
    selecting.sort_by_key(|p| p.metadata.name.clone());
    selecting
}

/// Whether `policy` isolates `direction` (spelled-out or defaulted policyTypes).
fn policy_isolates(policy: &NetworkPolicy, direction: Direction) -> bool {
    let Some(spec) = &policy.spec else {
        // The defaulted spec: every pod of the namespace, Ingress only.
        return direction == Direction::Ingress;
    };
    let types = spec.policy_types.as_deref().unwrap_or_default();
    let wanted = match direction {
        Direction::Ingress => "Ingress",
        Direction::Egress => "Egress",
    };
    if !types.is_empty() {
        return types.iter().any(|t| t == wanted);
    }
    match direction {
        Direction::Ingress => true,
        Direction::Egress => spec.egress.as_ref().is_some_and(|e| !e.is_empty()),
    }
}

/// A rule of a policy: (index, peers, ports), an absent list as an empty one.
type RawRule<'a> = (u32, &'a [NetworkPolicyPeer], &'a [NetworkPolicyPort]);

fn rules_of(policy: &NetworkPolicy, direction: Direction) -> Vec<RawRule<'_>> {
    let Some(spec) = &policy.spec else {
        return Vec::new();
    };
    let rules: Vec<(&[NetworkPolicyPeer], &[NetworkPolicyPort])> = match direction {
        Direction::Ingress => spec
            .ingress
            .iter()
            .flatten()
            .map(|r| {
                (
                    r.from.as_deref().unwrap_or_default(),
                    r.ports.as_deref().unwrap_or_default(),
                )
            })
            .collect(),
        Direction::Egress => spec
            .egress
            .iter()
            .flatten()
            .map(|r| {
                (
                    r.to.as_deref().unwrap_or_default(),
                    r.ports.as_deref().unwrap_or_default(),
                )
            })
            .collect(),
    };
    (0u32..)
        .zip(rules)
        .map(|(i, (peers, ports))| (i, peers, ports))
        .collect()
}

/// Whether `peer` (of a policy in `policy_ns`) matches address `addr`, held by `holders`.
fn peer_matches(
    view: &View<'_>,
    peer: &NetworkPolicyPeer,
    policy_ns: &str,
    addr: IpAddr,
    holders: &[&Pod],
) -> bool {
    if let Some(block) = &peer.ip_block {
        let inside = |cidr: &str| {
            cidr.parse::<ipnetwork::IpNetwork>()
                .is_ok_and(|net| net.contains(addr))
        };
        return inside(&block.cidr) && !block.except.iter().flatten().any(|e| inside(e));
    }
    holders.iter().any(|pod| {
        let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
        let ns_ok = match &peer.namespace_selector {
            None => ns == policy_ns,
            Some(sel) => view.in_namespaces(sel, pod),
        };
        let pod_ok = peer
            .pod_selector
            .as_ref()
            .is_none_or(|sel| selector_matches(sel, labels_of(pod)));
        ns_ok && pod_ok
    })
}

/// Whether a `ports` entry matches the packet. Named ports resolve against
/// `destination_pods`: the local pod on ingress, the peer's holders on egress.
fn port_matches(
    entry: &NetworkPolicyPort,
    destination_pods: &[&Pod],
    protocol: u8,
    port: u16,
) -> bool {
    if protocol_number(entry.protocol.as_deref().unwrap_or("TCP")) != Some(protocol) {
        return false;
    }
    match &entry.port {
        None => true,
        Some(IntOrString::Int(first)) => {
            let last = entry.end_port.unwrap_or(*first);
            (*first..=last).contains(&i32::from(port))
        }
        Some(IntOrString::String(name)) => destination_pods
            .iter()
            .any(|p| has_named_port(p, name, protocol, port)),
    }
}
