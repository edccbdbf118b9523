//! The reference evaluator: the precedence of the bands (node traffic,
//! Admin, NetworkPolicy, Baseline, Segment posture, default) applied
//! directly to one packet, by walking the raw objects and their rules. It
//! shares no matching code with the compiler (only the validity filter and
//! the protocol names), so that comparing the two finds compiler bugs.

mod cluster;
mod matching;
mod netpol;
mod view;

use std::net::IpAddr;

use k8s_openapi::api::core::v1::Pod;

use self::view::{View, is_pod_address_holder};
use crate::types::{Action, Band, Decider, Direction, PodRef, RuleRef, Verdict};
use crate::{CompileOptions, DefaultAction, Snapshot};

/// One new connection at a local pod, as the bands see it.
struct Packet<'a> {
    local: &'a Pod,
    namespace: &'a str,
    direction: Direction,
    peer: IpAddr,
    /// The pods holding the peer's address (none for a non-pod address).
    holders: Vec<&'a Pod>,
    protocol: u8,
    port: u16,
}

impl<'a> Packet<'a> {
    /// The pods named ports resolve on: the destination of the connection.
    fn destination_pods(&self) -> &[&'a Pod] {
        match self.direction {
            Direction::Ingress => std::slice::from_ref(&self.local),
            Direction::Egress => &self.holders,
        }
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
    ) -> Option<Verdict> {
        let local = self.local_pod(endpoint)?;
        let packet = Packet {
            local,
            namespace: &endpoint.namespace,
            direction,
            peer,
            holders: self.view.pods_holding(peer),
            protocol,
            port,
        };
        let mut verdict = self.walk(&packet, false);
        if self.audited(&packet) {
            let shadow = self.walk(&packet, true);
            if shadow.allow != verdict.allow {
                verdict.audit = Some(Box::new(shadow));
            }
        }
        Some(verdict)
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

    /// Whether an Audit-mode policy applies to the packet's pod.
    fn audited(&self, packet: &Packet<'_>) -> bool {
        self.view
            .cluster
            .iter()
            .any(|p| p.audit && matching::applies(&self.view, p, packet.local))
    }

    /// The bands in order; `audit`: with the Audit-mode policies enforced.
    fn walk(&self, packet: &Packet<'_>, audit: bool) -> Verdict {
        let options = self.options;
        if packet.direction == Direction::Ingress
            && !options.deny_node_traffic
            && options.node_addresses.contains(&packet.peer)
        {
            return Verdict::plain(true, Decider::NodeTraffic);
        }
        let mut passed_by = Vec::new();
        let decided = match self.band(packet, Band::Admin, audit, &mut passed_by) {
            Some(decided) => Some(decided),
            None => netpol::decide(&self.view, packet),
        };
        let decided = match decided {
            Some(decided) => Some(decided),
            None => self.band(packet, Band::Baseline, audit, &mut passed_by),
        };
        let default = || {
            (
                options.default_action == DefaultAction::Allow,
                Decider::Default,
            )
        };
        let (allow, decided_by) = decided
            .or_else(|| matching::posture(&self.view, packet))
            .unwrap_or_else(default);
        Verdict {
            allow,
            decided_by,
            passed_by,
            audit: None,
        }
    }

    /// The decision of the first matching rule of `band`'s policies that
    /// apply, in their order; `None` when none decides. A Pass rule ends the
    /// band undecided and joins `passed_by`.
    fn band(
        &self,
        packet: &Packet<'_>,
        band: Band,
        audit: bool,
        passed_by: &mut Vec<RuleRef>,
    ) -> Option<(bool, Decider)> {
        let policies = self.view.cluster.iter().filter(|p| {
            p.band == band && (audit || !p.audit) && matching::applies(&self.view, p, packet.local)
        });
        for policy in policies {
            for rule in policy.rules(packet.direction) {
                let Some(action) = matching::rule_action(&self.view, rule, packet) else {
                    continue;
                };
                let rule_ref = matching::rule_ref(policy, packet.direction, rule, action);
                if action == Action::Pass {
                    passed_by.push(rule_ref);
                    return None;
                }
                return Some((action == Action::Accept, Decider::Rule(rule_ref)));
            }
        }
        None
    }
}

/// The verdict on a new connection at local pod `endpoint` in `direction`
/// with `peer` on `protocol`/`port` (0 for packets without ports), with
/// what decided it, the Pass rules that led there, and what the Audit-mode
/// policies would change. `None` when `endpoint` is not a local endpoint of
/// the node (not found, invalid, on another node, host-network, finished,
/// or without an IP): nothing is enforced there, the datapath drops.
pub fn evaluate(
    snapshot: &Snapshot,
    options: &CompileOptions,
    endpoint: &PodRef,
    direction: Direction,
    peer: IpAddr,
    protocol: u8,
    port: u16,
) -> Option<Verdict> {
    Evaluator::new(snapshot, options).evaluate(endpoint, direction, peer, protocol, port)
}
