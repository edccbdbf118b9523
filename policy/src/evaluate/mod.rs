//! The reference evaluator: the NetworkPolicy semantics applied directly to
//! one packet, by walking the policies and rules. It shares no matching code
//! with the compiler (only the validity filter and the protocol names), so
//! that comparing the two finds compiler bugs.

mod view;

use std::net::IpAddr;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use serde::{Deserialize, Serialize};

use self::view::{
    View, is_pod_address_holder, labels_of, peer_matches, policy_isolates, port_matches, rules_of,
    selector_matches,
};
use crate::types::{Action, Band, Direction, PodRef, PolicyKind, RuleRef};
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
    /// A new connection may be opened.
    Allowed(Allowance),
    /// The packet is dropped.
    Denied(Denial),
}

impl Decision {
    /// Whether the connection is allowed, whatever allowed it.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allowed(_))
    }
}

/// The reference evaluator over one snapshot, for evaluating many packets.
pub struct Evaluator<'a> {
    view: View<'a>,
    options: &'a CompileOptions,
}

impl<'a> Evaluator<'a> {
    /// Validates the snapshot's objects once.
    pub fn new(snapshot: &'a Snapshot, options: &'a CompileOptions) -> Self {
        Evaluator {
            view: View::new(snapshot),
            options,
        }
    }

    /// See [`evaluate`].
    pub fn evaluate(
        &self,
        endpoint: &PodRef,
        direction: Direction,
        peer: IpAddr,
        protocol: u8,
        port: u16,
    ) -> Decision {
        let Some(local) = self.local_pod(endpoint) else {
            return Decision::Denied(Denial::NotAnEndpoint);
        };
        let holders = self.view.pods_holding(peer);
        let selecting = self.selecting(local, direction);
        let named_port_pods = match direction {
            Direction::Ingress => vec![local],
            Direction::Egress => holders.clone(),
        };
        for policy in &selecting {
            for (index, peers, ports) in rules_of(policy, direction) {
                let peers_ok = peers.is_empty()
                    || peers
                        .iter()
                        .any(|p| peer_matches(&self.view, p, &endpoint.namespace, peer, &holders));
                let ports_ok = ports.is_empty()
                    || ports
                        .iter()
                        .any(|p| port_matches(p, &named_port_pods, protocol, port));
                if peers_ok && ports_ok {
                    return Decision::Allowed(Allowance::Rule(RuleRef {
                        kind: PolicyKind::NetworkPolicy,
                        band: Band::NetworkPolicy,
                        namespace: endpoint.namespace.to_string(),
                        name: policy.metadata.name.clone().unwrap_or_default(),
                        direction,
                        index,
                        rule_name: None,
                        action: Action::Accept,
                    }));
                }
            }
        }
        let options = self.options;
        if direction == Direction::Ingress
            && !options.deny_node_traffic
            && options.node_addresses.contains(&peer)
        {
            return Decision::Allowed(Allowance::NodeTraffic);
        }
        if selecting.is_empty() && options.default_action == DefaultAction::Allow {
            return Decision::Allowed(Allowance::DefaultAllow);
        }
        Decision::Denied(Denial::NoRuleAllows)
    }

    /// The pod `endpoint` if it is a local endpoint of the node.
    fn local_pod(&self, endpoint: &PodRef) -> Option<&'a Pod> {
        let pod = self.view.pods.iter().copied().find(|p| {
            p.metadata.namespace.as_deref() == Some(&*endpoint.namespace)
                && p.metadata.name.as_deref() == Some(&*endpoint.name)
        })?;
        let node = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
        (is_pod_address_holder(pod) && node == Some(self.options.node_name.as_str())).then_some(pod)
    }

    /// The policies that select `local` and isolate `direction`, by name.
    fn selecting(&self, local: &Pod, direction: Direction) -> Vec<&'a NetworkPolicy> {
        let mut selecting: Vec<&NetworkPolicy> = self
            .view
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
    Evaluator::new(snapshot, options).evaluate(endpoint, direction, peer, protocol, port)
}
