//! Cluster policy rules and Segments against one packet: which policies
//! apply, what a rule does, and the Segment posture.

use std::net::IpAddr;

use ipnetwork::IpNetwork;
use k8s_openapi::api::core::v1::{Node, Pod};
use netseg_crd::{Port, PostureAction, Segment};

use super::Packet;
use super::cluster::{ClusterPolicy, Peer, Protocol, Rule, Subject};
use super::view::{Labels, View, has_named_port, selector_matches};
use crate::types::{Action, Band, Decider, Direction, PolicyKind, RuleRef};

/// Whether `policy`'s subject selects the local pod `local`.
pub(super) fn applies(view: &View<'_>, policy: &ClusterPolicy<'_>, local: &Pod) -> bool {
    match &policy.subject {
        Subject::Namespaces(namespaces) => view.in_namespaces(namespaces, local),
        Subject::Pods(selection) => view.selects(selection, local),
        Subject::Segments(names) => names
            .iter()
            .filter_map(|name| view.segments.get(name.as_str()))
            .any(|segment| is_member(view, segment, local)),
    }
}

/// What `rule` does to the packet if it matches it: its action, except that
/// a rule that fails closed (an unknown peer, protocol or Segment name)
/// matches nothing as an Accept rule and everything, as a Deny, otherwise.
pub(super) fn rule_action(view: &View<'_>, rule: &Rule<'_>, packet: &Packet<'_>) -> Option<Action> {
    if fails_closed(view, rule) {
        return (rule.action != Action::Accept).then_some(Action::Deny);
    }
    let peer_ok = rule.peers.iter().any(|p| peer_matches(view, p, packet));
    let protocol_ok = rule
        .protocols
        .as_ref()
        .is_none_or(|list| list.iter().any(|p| protocol_matches(p, packet)));
    (peer_ok && protocol_ok).then_some(rule.action)
}

/// The reference that names `rule` of `policy` when it acts as `action`.
pub(super) fn rule_ref(
    policy: &ClusterPolicy<'_>,
    direction: Direction,
    rule: &Rule<'_>,
    action: Action,
) -> RuleRef {
    RuleRef {
        kind: policy.kind,
        band: policy.band,
        namespace: String::new(),
        name: policy.name.to_string(),
        direction,
        index: rule.index,
        rule_name: rule.name.map(str::to_string),
        action,
    }
}

fn fails_closed(view: &View<'_>, rule: &Rule<'_>) -> bool {
    let unknown_peer = rule.peers.iter().any(|peer| match peer {
        Peer::Unknown => true,
        Peer::Segments(names) => names
            .iter()
            .any(|name| !view.segments.contains_key(name.as_str())),
        Peer::Namespaces(_) | Peer::Pods(_) | Peer::Networks(_) | Peer::Nodes(_) => false,
    });
    let unknown_protocol = rule
        .protocols
        .iter()
        .flatten()
        .any(|p| matches!(p, Protocol::Unknown));
    unknown_peer || unknown_protocol
}

fn peer_matches(view: &View<'_>, peer: &Peer<'_>, packet: &Packet<'_>) -> bool {
    match peer {
        Peer::Namespaces(namespaces) => packet
            .holders
            .iter()
            .any(|pod| view.in_namespaces(namespaces, pod)),
        Peer::Pods(selection) => packet
            .holders
            .iter()
            .any(|pod| view.selects(selection, pod)),
        Peer::Networks(cidrs) => in_cidrs(cidrs, packet.peer),
        Peer::Segments(names) => names
            .iter()
            .filter_map(|name| view.segments.get(name.as_str()))
            .any(|segment| segment_holds(view, segment, packet)),
        Peer::Nodes(selector) => view.nodes.iter().any(|node| {
            selector_matches(
                selector,
                node.metadata.labels.as_ref().unwrap_or(&Labels::new()),
            ) && node_addresses(node).contains(&packet.peer)
        }),
        Peer::Unknown => false,
    }
}

/// The InternalIP and ExternalIP addresses of a Node.
fn node_addresses(node: &Node) -> Vec<IpAddr> {
    let addresses = node
        .status
        .iter()
        .flat_map(|s| s.addresses.iter().flatten());
    addresses
        .filter(|a| a.type_ == "InternalIP" || a.type_ == "ExternalIP")
        .filter_map(|a| a.address.parse().ok())
        .collect()
}

fn in_cidrs(cidrs: &[String], addr: IpAddr) -> bool {
    cidrs.iter().any(|cidr| {
        cidr.parse::<IpNetwork>()
            .is_ok_and(|net| net.contains(addr))
    })
}

fn protocol_matches(entry: &Protocol<'_>, packet: &Packet<'_>) -> bool {
    match entry {
        Protocol::Ports(protocol, port) => {
            *protocol == packet.protocol && port.is_none_or(|p| port_in(p, packet.port))
        }
        Protocol::Named(name) => packet
            .destination_pods()
            .iter()
            .any(|pod| has_named_port(pod, name, packet.protocol, packet.port)),
        Protocol::Icmp(protocol) => *protocol == packet.protocol,
        Protocol::Unknown => false,
    }
}

fn port_in(port: &Port, number: u16) -> bool {
    let number = i32::from(number);
    match (port.number, &port.range) {
        (Some(only), _) => only == number,
        (None, Some(range)) => (range.start..=range.end).contains(&number),
        (None, None) => false,
    }
}

/// Whether `pod` is a member of `segment` (by its `namespaces` and `pods` members).
fn is_member(view: &View<'_>, segment: &Segment, pod: &Pod) -> bool {
    segment
        .spec
        .members
        .iter()
        .any(|member| match (&member.namespaces, &member.pods) {
            (Some(namespaces), _) => view.in_namespaces(namespaces, pod),
            (None, Some(selection)) => view.selects(selection, pod),
            (None, None) => false,
        })
}

/// Whether the packet's peer is a member of `segment`: a pod address by its
/// holders, any other address by the `networks` members.
fn segment_holds(view: &View<'_>, segment: &Segment, packet: &Packet<'_>) -> bool {
    if !packet.holders.is_empty() {
        return packet
            .holders
            .iter()
            .any(|pod| is_member(view, segment, pod));
    }
    segment
        .spec
        .members
        .iter()
        .filter_map(|member| member.networks.as_deref())
        .any(|cidrs| in_cidrs(cidrs, packet.peer))
}

/// The posture of the Segments the local pod is a member of: Deny if any
/// denies the direction (the first such by name), else Accept (the first by
/// name); `None` for a pod in no Segment.
pub(super) fn posture(view: &View<'_>, packet: &Packet<'_>) -> Option<(bool, Decider)> {
    let direction = packet.direction;
    let posture = |segment: &Segment| {
        let set = segment.spec.posture.as_ref().and_then(|p| match direction {
            Direction::Ingress => p.ingress,
            Direction::Egress => p.egress,
        });
        match set {
            Some(PostureAction::Accept) => Action::Accept,
            Some(PostureAction::Deny) | None => Action::Deny,
        }
    };
    let member_of: Vec<(&str, &Segment)> = view
        .segments
        .iter()
        .filter(|(_, segment)| is_member(view, segment, packet.local))
        .map(|(name, segment)| (*name, *segment))
        .collect();
    let (name, segment) = member_of
        .iter()
        .find(|(_, segment)| posture(segment) == Action::Deny)
        .or(member_of.first())?;
    let action = posture(segment);
    let rule = RuleRef {
        kind: PolicyKind::Segment,
        band: Band::Posture,
        namespace: String::new(),
        name: name.to_string(),
        direction,
        index: 0,
        rule_name: None,
        action,
    };
    Some((action == Action::Accept, Decider::Rule(rule)))
}
