//! The compiler's output types: what the daemon writes into the maps and
//! what flow logs and `explain` use to name things.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnetwork::IpNetwork;
use netseg_contract as contract;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A pod by namespace and name; displays as `namespace/name`. Cheap to
/// clone: compilations hand out one per pod address and identity member.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PodRef {
    /// `metadata.namespace`.
    pub namespace: Arc<str>,
    /// `metadata.name`.
    pub name: Arc<str>,
}

impl PodRef {
    /// A reference to pod `name` in `namespace`.
    pub fn new(namespace: impl Into<Arc<str>>, name: impl Into<Arc<str>>) -> Self {
        PodRef {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for PodRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The controller of a pod (the owner reference with `controller: true`),
/// as flow records name its workload; displays as `Kind/name`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Workload {
    /// `Deployment`, `StatefulSet`, `DaemonSet`, `Job`, ...
    pub kind: Arc<str>,
    pub name: Arc<str>,
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind, self.name)
    }
}

/// A pod as flow records name it. Shared: a compilation hands out one per
/// pod, to each of its addresses, and keeps it from one compilation to the
/// next while the pod, its namespace's labels and the Segments are unchanged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodParty {
    pub pod: PodRef,
    /// Its controller; a ReplicaSet of a Deployment stands for the Deployment.
    pub workload: Option<Workload>,
    /// All of its labels (flow records carry the keys the operator chooses).
    pub labels: Arc<BTreeMap<String, String>>,
    /// The names of the Segments it is a member of (by their selectors), sorted.
    pub segments: Vec<Arc<str>>,
}

/// Direction of traffic as seen from the local pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Direction {
    /// The pod receives; the peer is the source.
    Ingress,
    /// The pod sends; the peer is the destination.
    Egress,
}

impl Direction {
    /// Both directions, ingress first.
    pub const BOTH: [Direction; 2] = [Direction::Ingress, Direction::Egress];

    /// Index of the direction in per-direction arrays: ingress 0, egress 1.
    pub fn index(self) -> usize {
        match self {
            Direction::Ingress => 0,
            Direction::Egress => 1,
        }
    }

    /// The datapath's encoding ([`contract::DIRECTION_INGRESS`] / [`contract::DIRECTION_EGRESS`]).
    pub fn as_contract(self) -> u8 {
        match self {
            Direction::Ingress => contract::DIRECTION_INGRESS,
            Direction::Egress => contract::DIRECTION_EGRESS,
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        })
    }
}

/// A pod on this node: its addresses and the policy ids of its two directions.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LocalEndpoint {
    /// The pod's IPv4 address, if it has one.
    pub ipv4: Option<Ipv4Addr>,
    /// The pod's IPv6 address, if it has one.
    pub ipv6: Option<Ipv6Addr>,
    /// Policy id for traffic the pod receives.
    pub ingress_policy: u32,
    /// Policy id for traffic the pod sends.
    pub egress_policy: u32,
}

impl LocalEndpoint {
    /// The policy id of `direction`.
    pub fn policy(&self, direction: Direction) -> u32 {
        match direction {
            Direction::Ingress => self.ingress_policy,
            Direction::Egress => self.egress_policy,
        }
    }

    /// The `ENDPOINTS` map value for this endpoint.
    pub fn to_contract(&self) -> contract::Endpoint {
        let mut flags = 0;
        if self.ipv4.is_some() {
            flags |= contract::ENDPOINT_HAS_IPV4;
        }
        if self.ipv6.is_some() {
            flags |= contract::ENDPOINT_HAS_IPV6;
        }
        contract::Endpoint {
            ingress_policy: self.ingress_policy,
            egress_policy: self.egress_policy,
            flags,
            ipv4: self.ipv4.map_or([0; 4], |a| a.octets()),
            ipv6: self.ipv6.map_or([0; 16], |a| a.octets()),
        }
    }
}

/// The first `len` bits of a 16-bit destination port. Bits past `len` are zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PortPrefix {
    /// The port with the bits past `len` cleared.
    pub port: u16,
    /// 0..=16.
    pub len: u8,
}

impl PortPrefix {
    /// The prefix of length `len` (clamped to 16) that contains `port`.
    pub fn containing(port: u16, len: u8) -> Self {
        let len = len.min(16);
        PortPrefix {
            port: port & Self::mask(len),
            len,
        }
    }

    /// Whether `port` starts with this prefix.
    pub fn contains(&self, port: u16) -> bool {
        port & Self::mask(self.len) == self.port
    }

    /// The first and last port of the prefix.
    pub fn range(&self) -> (u16, u16) {
        (self.port, self.port | !Self::mask(self.len))
    }

    fn mask(len: u8) -> u16 {
        // `checked_shl` because a shift by 16 overflows a u16.
        u16::MAX
            .checked_shl(u32::from(16 - len.min(16)))
            .unwrap_or(0)
    }
}

/// A key of the POLICY trie, without the double-buffer slot.
///
/// `protocol: None` matches every protocol and port; `port: None` every port
/// of the protocol. A port is only given with a protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PolicyEntryKey {
    /// The policy id of an endpoint's direction.
    pub policy: u32,
    /// The peer identity, or [`contract::identity::ANY`].
    pub identity: u32,
    /// The IP protocol number; `None` for every protocol.
    pub protocol: Option<u8>,
    /// The destination port prefix; `None` for every port.
    pub port: Option<PortPrefix>,
}

impl PolicyEntryKey {
    /// The LPM prefix length of this key in the contract's `PolicyKey`.
    pub fn prefix_len(&self) -> u32 {
        match (self.protocol, self.port) {
            (None, _) => contract::POLICY_PREFIX_ANY_PROTOCOL,
            (Some(_), None) => contract::POLICY_PREFIX_ANY_PORT,
            (Some(_), Some(p)) => contract::POLICY_PREFIX_ANY_PORT + u32::from(p.len.min(16)),
        }
    }

    /// The contract key in `slot`; unused bits are zero.
    pub fn to_contract(&self, slot: u32) -> contract::PolicyKey {
        let port = match (self.protocol, self.port) {
            (Some(_), Some(p)) => p.port,
            _ => 0,
        };
        contract::PolicyKey {
            slot,
            policy: self.policy,
            identity: self.identity,
            protocol: self.protocol.unwrap_or(0),
            port: port.to_be_bytes(),
            _pad: 0,
        }
    }
}

/// The kind of object a rule belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PolicyKind {
    NetworkPolicy,
    ClusterNetworkPolicy,
    SegmentPolicy,
    /// A Segment's posture.
    Segment,
}

impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PolicyKind::NetworkPolicy => "NetworkPolicy",
            PolicyKind::ClusterNetworkPolicy => "ClusterNetworkPolicy",
            PolicyKind::SegmentPolicy => "SegmentPolicy",
            PolicyKind::Segment => "Segment",
        })
    }
}

/// The bands of precedence, in the order a new connection meets them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Band {
    /// ClusterNetworkPolicy and SegmentPolicy of `tier: Admin`.
    Admin,
    /// NetworkPolicies, for pods they isolate in the direction.
    NetworkPolicy,
    /// ClusterNetworkPolicy and SegmentPolicy of `tier: Baseline`.
    Baseline,
    /// The posture of the Segments the pod is a member of.
    Posture,
}

impl fmt::Display for Band {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Band::Admin => "admin",
            Band::NetworkPolicy => "networkpolicy",
            Band::Baseline => "baseline",
            Band::Posture => "posture",
        })
    }
}

/// What a matching rule does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Action {
    Accept,
    Deny,
    /// Skip the rest of the band.
    Pass,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Accept => "Accept",
            Action::Deny => "Deny",
            Action::Pass => "Pass",
        })
    }
}

/// One rule of one policy object; for a posture, the Segment.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RuleRef {
    pub kind: PolicyKind,
    pub band: Band,
    /// Namespace of the policy; empty for cluster-scoped kinds.
    pub namespace: String,
    pub name: String,
    /// Whether the rule is in `spec.ingress` or `spec.egress` (a posture:
    /// the direction it is for).
    pub direction: Direction,
    /// Index of the rule within `spec.ingress` or `spec.egress` (a posture: 0).
    pub index: u32,
    /// The rule's `name`, if it has one.
    pub rule_name: Option<String>,
    /// What the rule does when it matches. A rule that fails closed (an
    /// unknown peer in a Deny or Pass rule) is `Deny`.
    pub action: Action,
}

impl RuleRef {
    /// `ingress[1]`, or `ingress[1] "name"`: the rule within its policy.
    pub fn within_policy(&self) -> String {
        match (&self.rule_name, self.kind) {
            (_, PolicyKind::Segment) => format!("posture.{}", self.direction),
            (Some(name), _) => format!("{}[{}] {name:?}", self.direction, self.index),
            (None, _) => format!("{}[{}]", self.direction, self.index),
        }
    }

    /// `namespace/name`, or `name` for cluster-scoped kinds.
    pub fn policy_name(&self) -> String {
        if self.namespace.is_empty() {
            self.name.clone()
        } else {
            format!("{}/{}", self.namespace, self.name)
        }
    }
}

impl fmt::Display for RuleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} ({})",
            self.kind,
            self.policy_name(),
            self.within_policy(),
            self.action
        )
    }
}

/// What decided a verdict.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Decider {
    /// A rule, or a Segment's posture.
    Rule(RuleRef),
    /// NetworkPolicies of `namespace` isolate the pod in the direction and
    /// none of their rules allows the traffic.
    Isolation {
        namespace: String,
        /// The isolating policies, sorted.
        policies: Vec<String>,
    },
    /// The node's own addresses to a local pod (kubelet probes).
    NodeTraffic,
    /// Nothing decided: the node's default action.
    Default,
}

impl fmt::Display for Decider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decider::Rule(rule) => write!(f, "{rule}"),
            Decider::Isolation {
                namespace,
                policies,
            } => write!(
                f,
                "NetworkPolicy isolation in {namespace} ({})",
                policies.join(", ")
            ),
            Decider::NodeTraffic => f.write_str("node-traffic"),
            Decider::Default => f.write_str("default-action"),
        }
    }
}

/// What a compiled verdict id stands for: the verdict on a new connection
/// in one direction and everything that led to it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Verdict {
    pub allow: bool,
    pub decided_by: Decider,
    /// The Pass rules that sent the connection on to a later band, in order.
    pub passed_by: Vec<RuleRef>,
    /// The verdict with the Audit-mode SegmentPolicies enforced at their
    /// place, when it differs (allow against deny) from this one.
    pub audit: Option<Box<Verdict>>,
}

impl Verdict {
    /// A verdict without Pass trail or audit difference.
    pub fn plain(allow: bool, decided_by: Decider) -> Self {
        Verdict {
            allow,
            decided_by,
            passed_by: Vec::new(),
            audit: None,
        }
    }

    /// The rule that decided, if a rule (or a posture) did.
    pub fn rule(&self) -> Option<&RuleRef> {
        match &self.decided_by {
            Decider::Rule(rule) => Some(rule),
            _ => None,
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} by {}",
            if self.allow { "allow" } else { "deny" },
            self.decided_by
        )?;
        for pass in &self.passed_by {
            write!(f, ", after Pass by {pass}")?;
        }
        if let Some(audit) = &self.audit {
            write!(f, "; audit would {audit}")?;
        }
        Ok(())
    }
}

/// What kind of addresses an identity stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum IdentityKind {
    /// Addresses the ipcache does not know, and ipBlock `except` prefixes
    /// that no other ipBlock peer includes.
    World,
    /// The node's own addresses.
    Node,
    /// Pod addresses.
    Pods,
    /// Non-pod address space carved out by ipBlock peers.
    External,
    /// Addresses of other nodes (Node objects) that `nodes` peers select.
    RemoteNode,
}

/// A human description of an identity, for flow logs and `explain`.
/// Cheap to clone: a compilation hands out the descriptions of the
/// identities whose addresses did not change from the one before.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IdentityInfo {
    /// What kind of addresses the identity stands for.
    pub kind: IdentityKind,
    /// The pods whose addresses carry this identity (sorted).
    pub pods: Arc<[PodRef]>,
    /// The ipcache prefixes that map to this identity (sorted).
    pub prefixes: Arc<[IpNetwork]>,
}

impl fmt::Display for IdentityInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label = match self.kind {
            IdentityKind::World => "world",
            IdentityKind::Node => "node",
            IdentityKind::Pods => "pods",
            IdentityKind::External => "cidr",
            IdentityKind::RemoteNode => "remote-node",
        };
        f.write_str(label)?;
        match self.kind {
            IdentityKind::Pods => write_list(f, &self.pods),
            IdentityKind::External => write_list(f, &self.prefixes),
            IdentityKind::World | IdentityKind::Node | IdentityKind::RemoteNode => Ok(()),
        }
    }
}

fn write_list<T: fmt::Display>(f: &mut fmt::Formatter<'_>, items: &[T]) -> fmt::Result {
    for (i, item) in items.iter().enumerate() {
        f.write_str(if i == 0 { " " } else { ", " })?;
        write!(f, "{item}")?;
    }
    Ok(())
}

/// One compilation for one node: every map entry the datapath needs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Compiled {
    /// Local pods that have an IP (host-network pods are not endpoints).
    pub endpoints: BTreeMap<PodRef, LocalEndpoint>,
    /// Address prefix (network address, host bits zero) to identity.
    pub ipcache: BTreeMap<IpNetwork, u32>,
    /// POLICY trie entries to their verdicts.
    pub policy: BTreeMap<PolicyEntryKey, contract::PolicyValue>,
    /// Compiled verdict id (a POLICY value's `rule`) to what it stands for;
    /// the reserved ids of [`contract::rule`] included.
    pub verdicts: BTreeMap<u32, Verdict>,
    /// Identity to what it stands for, [`contract::identity::WORLD`] included.
    pub identities: BTreeMap<u32, IdentityInfo>,
    /// Every pod address of the snapshot (any node), for naming flow peers.
    /// An address two pods claim names the first in snapshot order.
    pub pod_addresses: BTreeMap<IpAddr, Arc<PodParty>>,
    /// The Segments of the addresses that no pod holds, by network.
    pub segment_networks: SegmentNetworks,
}

/// Every network of a Segment's `networks`, each with the names of the
/// Segments whose networks cover all of it; most specific first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SegmentNetworks(Vec<(IpNetwork, Vec<Arc<str>>)>);

impl SegmentNetworks {
    /// `networks`, each with the names (sorted) of the Segments whose
    /// networks cover all of it.
    pub fn new(mut networks: Vec<(IpNetwork, Vec<Arc<str>>)>) -> Self {
        networks.sort_by(|(a, _), (b, _)| b.prefix().cmp(&a.prefix()).then(a.cmp(b)));
        SegmentNetworks(networks)
    }

    /// The networks with their Segments, most specific first.
    pub fn entries(&self) -> &[(IpNetwork, Vec<Arc<str>>)] {
        &self.0
    }

    /// The index in [`SegmentNetworks::entries`] of the entry whose
    /// Segments an address that no pod holds is a member of: the most
    /// specific network that contains it. The networks that contain one
    /// address are nested, so that network's Segments are all of the
    /// address's.
    pub fn position(&self, ip: IpAddr) -> Option<usize> {
        self.0.iter().position(|(network, _)| network.contains(ip))
    }

    /// The Segments an address that no pod holds is a member of, sorted.
    pub fn segments_of(&self, ip: IpAddr) -> &[Arc<str>] {
        self.position(ip).map_or(&[], |i| &self.0[i].1)
    }
}
