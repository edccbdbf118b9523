//! The reference evaluator: the NetworkPolicy semantics applied directly to
//! one packet, by walking the policies and rules. It shares no matching code
//! with the compiler, so that comparing the two finds compiler bugs.

mod view;

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use self::view::{View, is_pod_address_holder, labels_of, peer_matches, policy_isolates, port_matches, rules_of, selector_matches};
use crate::types::{Direction, PodRef, RuleRef};
use crate::{CompileOptions, DefaultAction, Snapshot};

/// What allowed a new connection.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Allowance {
    /// A rule of a policy that selects the pod.
    Rule(RuleRef),
    /// No policy isolates the pod in this direction and the default is allow.
    DefaultAllow,
    /// The peer is the node itself (ingress only).
    NodeTraffic,
}

/// Why a new connection was denied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Denial {
    /// The pod is not a local endpoint of the node (not found, invalid, on
    /// another node, host-network, finished, or without an IP).
    NotAnEndpoint,
    /// The pod is isolated in this direction and no rule allows the packet.
    NoRuleAllows,
}

/// The evaluator's answer.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Decision {
    Allowed(Allowance),
    Denied(Denial),
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allowed(_))
    }
}

/// Whether a new connection at local pod `endpoint` in `direction` with
/// `peer` on `protocol`/`port` (0 for packets without ports) is allowed, and
/// by what. When several things allow it, a rule is named before node
/// traffic and the default; the datapath may report another of them.
pub fn evaluate(
    snapshot: &Snapshot,
    options: &CompileOptions,
    endpoint: &PodRef,
    direction: Direction,
    peer: IpAddr,
    protocol: u8,
    port: u16,
) -> Decision {
    let view = View::new(snapshot);
    let local = view.pods.iter().copied().find(|p| {
        p.metadata.namespace.as_deref() == Some(endpoint.namespace.as_str())
            && p.metadata.name.as_deref() == Some(endpoint.name.as_str())
    });
    let on_node = |pod: &k8s_openapi::api::core::v1::Pod| {
        pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(options.node_name.as_str())
    };
    let Some(local) = local.filter(|p| is_pod_address_holder(p) && on_node(p)) else {
        return Decision::Denied(Denial::NotAnEndpoint);
    };
    let holders = view.pods_holding(peer);
    let local_labels = labels_of(local);
    let mut selecting: Vec<_> = view
        .policies
        .iter()
        .copied()
        .filter(|p| p.metadata.namespace.as_deref() == Some(endpoint.namespace.as_str()))
        .filter(|p| {
            let selector = p.spec.as_ref().and_then(|s| s.pod_selector.clone()).unwrap_or_default();
            selector_matches(&selector, &local_labels) && policy_isolates(p, direction)
        })
        .collect();
    selecting.sort_by_key(|p| p.metadata.name.clone());
    let named_port_pods = match direction {
        Direction::Ingress => vec![local],
        Direction::Egress => holders.clone(),
    };
    for policy in &selecting {
        for (index, peers, ports) in rules_of(policy, direction) {
            let peers_ok = peers.is_empty() || peers.iter().any(|p| peer_matches(&view, p, &endpoint.namespace, peer, &holders));
            let ports_ok = ports.is_empty() || ports.iter().any(|p| port_matches(p, &named_port_pods, protocol, port));
            if peers_ok && ports_ok {
                return Decision::Allowed(Allowance::Rule(RuleRef {
                    kind: "NetworkPolicy".to_string(),
                    namespace: endpoint.namespace.clone(),
                    name: policy.metadata.name.clone().unwrap_or_default(),
                    direction,
                    index,
                }));
            }
        }
    }
    if direction == Direction::Ingress && !options.deny_node_traffic && options.node_addresses.contains(&peer) {
        return Decision::Allowed(Allowance::NodeTraffic);
    }
    if selecting.is_empty() && options.default_action == DefaultAction::Allow {
        return Decision::Allowed(Allowance::DefaultAllow);
    }
    Decision::Denied(Denial::NoRuleAllows)
}
