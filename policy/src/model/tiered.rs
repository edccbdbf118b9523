//! ClusterNetworkPolicy, SegmentPolicy and Segment in one normalized form:
//! the two policy kinds share a rule shape (an action, peers, protocols),
//! so the compiler and `explain` treat them alike.

use ipnetwork::IpNetwork;

use super::policy::{PeerModel, PortModel};
use super::selector::{Labels, Selector};
use crate::types::{Action, Direction, PolicyKind};

/// The two tiers of cluster policies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Tier {
    Admin,
    Baseline,
}

/// Pods chosen by the labels of their namespace and their own.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct PodSelection {
    pub namespaces: Selector,
    pub pods: Selector,
}

impl PodSelection {
    pub fn matches(&self, namespace_labels: &Labels, pod_labels: &Labels) -> bool {
        self.namespaces.matches(namespace_labels) && self.pods.matches(pod_labels)
    }

    /// The same pods as a rule peer.
    pub fn as_peer(&self) -> PeerModel {
        PeerModel::Pods {
            namespaces: super::policy::NamespaceScope::Selected(self.namespaces.clone()),
            pods: self.pods.clone(),
        }
    }
}

/// Which pods a cluster policy applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Subject {
    Pods(PodSelection),
    /// The members of any of these Segments.
    Segments(Vec<String>),
}

impl Subject {
    /// Whether the subject selects a pod with these labels; `member_of`
    /// tells whether the pod is a member of a (valid) Segment by name.
    pub fn selects(
        &self,
        namespace_labels: &Labels,
        pod_labels: &Labels,
        member_of: impl Fn(&str) -> bool,
    ) -> bool {
        match self {
            Subject::Pods(selection) => selection.matches(namespace_labels, pod_labels),
            Subject::Segments(names) => names.iter().any(|name| member_of(name)),
        }
    }
}

/// A peer of a cluster policy rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum TieredPeer {
    Peer(PeerModel),
    /// The members of the named Segment, resolved when compiling.
    Segment {
        name: String,
        /// Where the name is written (`spec.ingress[0].from[1].segments[0]`).
        field: String,
    },
}

/// One rule of a cluster policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TieredRule {
    /// Position in `spec.ingress` / `spec.egress`.
    pub index: u32,
    pub name: Option<String>,
    pub action: Action,
    /// The peers and protocol entries netseg cannot match, if any: the rule
    /// then fails closed (an Accept rule matches nothing, a Deny or Pass
    /// rule denies everything).
    pub fails_closed: Vec<FailClosed>,
    pub peers: Vec<TieredPeer>,
    /// `None`: every protocol and port.
    pub ports: Option<Vec<PortModel>>,
}

/// A peer or protocol entry that netseg cannot match, which makes its rule
/// fail closed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FailClosed {
    /// The path of the peer or protocol entry (`spec.egress[0].to[1]`).
    pub field: String,
    pub reason: String,
}

impl std::fmt::Display for FailClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

impl TieredRule {
    /// Why the rule fails closed when `segment_exists` tells which Segment
    /// names resolve: its unmatchable peers and protocol entries, then its
    /// peers that name no valid Segment. Empty: it does not fail closed.
    pub fn fail_closed_reasons(&self, segment_exists: impl Fn(&str) -> bool) -> Vec<FailClosed> {
        let unknown_segments = self.peers.iter().filter_map(|peer| match peer {
            TieredPeer::Segment { name, field } if !segment_exists(name) => Some(FailClosed {
                field: field.clone(),
                reason: format!("Segment {name:?} does not exist or is invalid"),
            }),
            _ => None,
        });
        self.fails_closed
            .iter()
            .cloned()
            .chain(unknown_segments)
            .collect()
    }
}

/// A valid ClusterNetworkPolicy or SegmentPolicy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TieredPolicy {
    pub kind: PolicyKind,
    pub name: String,
    pub tier: Tier,
    pub priority: u32,
    /// An Audit-mode SegmentPolicy: computed, never enforced.
    pub audit: bool,
    pub subject: Subject,
    pub ingress: Vec<TieredRule>,
    pub egress: Vec<TieredRule>,
}

impl TieredPolicy {
    pub fn rules(&self, direction: Direction) -> &[TieredRule] {
        match direction {
            Direction::Ingress => &self.ingress,
            Direction::Egress => &self.egress,
        }
    }

    /// The order of cluster policies within a tier: priority, then
    /// ClusterNetworkPolicy before SegmentPolicy, then name.
    pub fn order_key(&self) -> (Tier, u32, PolicyKind, &str) {
        (self.tier, self.priority, self.kind, &self.name)
    }
}

/// The posture of a Segment for its members in one direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Posture {
    Accept,
    Deny,
}

/// A valid Segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SegmentModel {
    pub name: String,
    /// Pods are members by these selections only.
    pub pods: Vec<PodSelection>,
    /// External members: addresses in these networks that no pod holds.
    pub networks: Vec<IpNetwork>,
    /// Ingress, egress.
    pub posture: [Posture; 2],
}

impl SegmentModel {
    pub fn posture(&self, direction: Direction) -> Posture {
        self.posture[direction.index()]
    }

    pub fn has_member(&self, namespace_labels: &Labels, pod_labels: &Labels) -> bool {
        self.pods
            .iter()
            .any(|s| s.matches(namespace_labels, pod_labels))
    }

    /// The Segment's members as rule peers.
    pub fn as_peers(&self) -> impl Iterator<Item = PeerModel> + '_ {
        let pods = self.pods.iter().map(PodSelection::as_peer);
        let networks = self.networks.iter().map(|net| {
            PeerModel::Block(super::IpBlockModel {
                cidr: *net,
                except: Vec::new(),
                pods_excluded: true,
            })
        });
        pods.chain(networks)
    }
}
