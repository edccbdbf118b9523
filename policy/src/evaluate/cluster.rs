//! ClusterNetworkPolicy and SegmentPolicy as the evaluator reads them: one
//! shape for both kinds (a band, a priority, a subject, rules of an action,
//! peers and protocols), read straight from the valid raw objects.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use netseg_contract::{PROTO_ICMP, PROTO_ICMPV6, PROTO_SCTP, PROTO_TCP, PROTO_UDP};
use netseg_crd::{
    ClusterNetworkPolicy, ClusterNetworkPolicyEgressPeer, ClusterNetworkPolicyIngressPeer,
    ClusterNetworkPolicyProtocol, ClusterNetworkPolicySubject, NamespacedPod, Port, ProtocolPort,
    RuleAction, SegmentPolicy, SegmentPolicyPeer, SegmentPolicyProtocol, Tier,
};

use crate::types::{Action, Band, Direction, PolicyKind};

/// The pods a cluster policy applies to.
pub(super) enum Subject<'a> {
    Namespaces(&'a LabelSelector),
    Pods(&'a NamespacedPod),
    /// The members of any of the named Segments.
    Segments(&'a [String]),
}

/// A rule peer.
pub(super) enum Peer<'a> {
    Namespaces(&'a LabelSelector),
    Pods(&'a NamespacedPod),
    /// Every address in the CIDRs, pod addresses included.
    Networks(&'a [String]),
    /// The members of the named Segments, pods and networks.
    Segments(&'a [String]),
    /// The addresses of the Node objects the labels select.
    Nodes(&'a LabelSelector),
    /// A peer netseg does not implement (`domainNames`) or does not know.
    Unknown,
}

/// A rule's protocol entry.
pub(super) enum Protocol<'a> {
    /// `None`: every port of the protocol.
    Ports(u8, Option<&'a Port>),
    /// A container port name on the destination pod, of whatever protocol it has.
    Named(&'a str),
    /// Every ICMP or ICMPv6 packet.
    Icmp(u8),
    Unknown,
}

pub(super) struct Rule<'a> {
    pub index: u32,
    pub name: Option<&'a str>,
    pub action: Action,
    pub peers: Vec<Peer<'a>>,
    /// `None`: every protocol and port.
    pub protocols: Option<Vec<Protocol<'a>>>,
}

/// A valid ClusterNetworkPolicy or SegmentPolicy.
pub(super) struct ClusterPolicy<'a> {
    pub kind: PolicyKind,
    pub name: &'a str,
    pub band: Band,
    pub priority: i32,
    /// A SegmentPolicy in Audit mode: only the shadow walk sees it.
    pub audit: bool,
    pub subject: Subject<'a>,
    pub ingress: Vec<Rule<'a>>,
    pub egress: Vec<Rule<'a>>,
}

impl<'a> ClusterPolicy<'a> {
    pub(super) fn from_cluster_network_policy(policy: &'a ClusterNetworkPolicy) -> Self {
        let spec = &policy.spec;
        let ingress = spec.ingress.iter().map(|r| {
            let peers = r.from.iter().map(cnp_ingress_peer).collect();
            (
                r.name.as_deref(),
                r.action,
                peers,
                cnp_protocols(&r.protocols),
            )
        });
        let egress = spec.egress.iter().map(|r| {
            let peers = r.to.iter().map(cnp_egress_peer).collect();
            (
                r.name.as_deref(),
                r.action,
                peers,
                cnp_protocols(&r.protocols),
            )
        });
        ClusterPolicy {
            kind: PolicyKind::ClusterNetworkPolicy,
            name: policy.metadata.name.as_deref().unwrap_or_default(),
            band: band(spec.tier),
            priority: spec.priority,
            audit: false,
            subject: cnp_subject(&spec.subject),
            ingress: rules(ingress),
            egress: rules(egress),
        }
    }

    pub(super) fn from_segment_policy(policy: &'a SegmentPolicy) -> Self {
        let spec = &policy.spec;
        let protocols = |p: &'a Option<Vec<SegmentPolicyProtocol>>| {
            p.as_ref()
                .map(|list| list.iter().map(sp_protocol).collect())
        };
        let ingress = spec.ingress.iter().map(|r| {
            let peers = r.from.iter().map(sp_peer).collect();
            (r.name.as_deref(), r.action, peers, protocols(&r.protocols))
        });
        let egress = spec.egress.iter().map(|r| {
            let peers = r.to.iter().map(sp_peer).collect();
            (r.name.as_deref(), r.action, peers, protocols(&r.protocols))
        });
        ClusterPolicy {
            kind: PolicyKind::SegmentPolicy,
            name: policy.metadata.name.as_deref().unwrap_or_default(),
            band: band(spec.tier),
            priority: spec.priority,
            audit: spec.mode == netseg_crd::PolicyMode::Audit,
            subject: Subject::Segments(&spec.subject.segments),
            ingress: rules(ingress),
            egress: rules(egress),
        }
    }

    /// The order within a band: priority, then ClusterNetworkPolicy before
    /// SegmentPolicy, then name.
    pub(super) fn order(&self) -> (i32, u8, &str) {
        let kind = match self.kind {
            PolicyKind::SegmentPolicy => 1,
            _ => 0,
        };
        (self.priority, kind, self.name)
    }

    pub(super) fn rules(&self, direction: Direction) -> &[Rule<'a>] {
        match direction {
            Direction::Ingress => &self.ingress,
            Direction::Egress => &self.egress,
        }
    }
}

fn band(tier: Tier) -> Band {
    match tier {
        Tier::Admin => Band::Admin,
        Tier::Baseline => Band::Baseline,
    }
}

type RawRule<'a> = (
    Option<&'a str>,
    RuleAction,
    Vec<Peer<'a>>,
    Option<Vec<Protocol<'a>>>,
);

fn rules<'a>(raw: impl Iterator<Item = RawRule<'a>>) -> Vec<Rule<'a>> {
    (0u32..)
        .zip(raw)
        .map(|(index, (name, action, peers, protocols))| Rule {
            index,
            name,
            action: match action {
                RuleAction::Accept => Action::Accept,
                RuleAction::Deny => Action::Deny,
                RuleAction::Pass => Action::Pass,
            },
            peers,
            protocols,
        })
        .collect()
}

fn cnp_subject(subject: &ClusterNetworkPolicySubject) -> Subject<'_> {
    match (&subject.namespaces, &subject.pods) {
        (Some(namespaces), _) => Subject::Namespaces(namespaces),
        (None, Some(pods)) => Subject::Pods(pods),
        // Not valid: never read.
        (None, None) => Subject::Segments(&[]),
    }
}

fn cnp_ingress_peer(peer: &ClusterNetworkPolicyIngressPeer) -> Peer<'_> {
    if let Some(namespaces) = &peer.namespaces {
        Peer::Namespaces(namespaces)
    } else if let Some(pods) = &peer.pods {
        Peer::Pods(pods)
    } else {
        Peer::Unknown
    }
}

fn cnp_egress_peer(peer: &ClusterNetworkPolicyEgressPeer) -> Peer<'_> {
    if let Some(namespaces) = &peer.namespaces {
        Peer::Namespaces(namespaces)
    } else if let Some(pods) = &peer.pods {
        Peer::Pods(pods)
    } else if let Some(networks) = &peer.networks {
        Peer::Networks(networks)
    } else if let Some(nodes) = &peer.nodes {
        Peer::Nodes(nodes)
    } else {
        // `domainNames`, or a field this build does not know.
        Peer::Unknown
    }
}

fn sp_peer(peer: &SegmentPolicyPeer) -> Peer<'_> {
    if let Some(segments) = &peer.segments {
        Peer::Segments(segments)
    } else if let Some(namespaces) = &peer.namespaces {
        Peer::Namespaces(namespaces)
    } else if let Some(pods) = &peer.pods {
        Peer::Pods(pods)
    } else if let Some(networks) = &peer.networks {
        Peer::Networks(networks)
    } else {
        Peer::Unknown
    }
}

fn ports(protocol: u8, entry: &ProtocolPort) -> Protocol<'_> {
    Protocol::Ports(protocol, entry.destination_port.as_ref())
}

fn cnp_protocols(
    protocols: &Option<Vec<ClusterNetworkPolicyProtocol>>,
) -> Option<Vec<Protocol<'_>>> {
    protocols
        .as_ref()
        .map(|list| list.iter().map(cnp_protocol).collect())
}

fn cnp_protocol(p: &ClusterNetworkPolicyProtocol) -> Protocol<'_> {
    if let Some(tcp) = &p.tcp {
        ports(PROTO_TCP, tcp)
    } else if let Some(udp) = &p.udp {
        ports(PROTO_UDP, udp)
    } else if let Some(sctp) = &p.sctp {
        ports(PROTO_SCTP, sctp)
    } else if let Some(name) = &p.destination_named_port {
        Protocol::Named(name)
    } else {
        Protocol::Unknown
    }
}

fn sp_protocol(p: &SegmentPolicyProtocol) -> Protocol<'_> {
    if let Some(tcp) = &p.tcp {
        ports(PROTO_TCP, tcp)
    } else if let Some(udp) = &p.udp {
        ports(PROTO_UDP, udp)
    } else if let Some(sctp) = &p.sctp {
        ports(PROTO_SCTP, sctp)
    } else if let Some(name) = &p.destination_named_port {
        Protocol::Named(name)
    } else if p.icmp.is_some() {
        Protocol::Icmp(PROTO_ICMP)
    } else if p.icmpv6.is_some() {
        Protocol::Icmp(PROTO_ICMPV6)
    } else {
        Protocol::Unknown
    }
}
