//! `netseg.dev/v1alpha1` SegmentPolicy: rules between Segments, in the same Admin and
//! Baseline bands as ClusterNetworkPolicy, optionally in audit mode.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{NamespacedPod, ProtocolPort, ResourceStatus, RuleAction, Tier};
use crate::schema::{UNIQUE_RULE_NAMES, cidr_list, segment_name_list};

/// The spec of a SegmentPolicy.
// Printer columns repeat `type_ = "string"`, which clippy takes for a duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "netseg.dev",
    version = "v1alpha1",
    kind = "SegmentPolicy",
    plural = "segmentpolicies",
    shortname = "segpol",
    status = "ResourceStatus",
    derive = "PartialEq",
    doc = "SegmentPolicy holds rules between Segments, in the Admin or Baseline tier, enforced or audited.",
    printcolumn(name = "Tier", type_ = "string", json_path = ".spec.tier"),
    printcolumn(name = "Priority", type_ = "string", json_path = ".spec.priority"),
    printcolumn(name = "Mode", type_ = "string", json_path = ".spec.mode"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
pub struct SegmentPolicySpec {
    /// The band the policy is evaluated in.
    pub tier: Tier,
    /// 0..=1000; lower values are evaluated first within the band.
    #[schemars(range(min = 0, max = 1000))]
    pub priority: i32,
    /// Whether the policy enforces or only reports what it would change.
    #[serde(default)]
    pub mode: PolicyMode,
    /// The pods the policy applies to.
    pub subject: SegmentPolicySubject,
    /// Rules for connections to the subject pods, in evaluation order. Empty: ingress untouched.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 25), extend("x-kubernetes-validations" = [
        {"rule": UNIQUE_RULE_NAMES, "message": "ingress rule names must be unique"}
    ]))]
    pub ingress: Vec<SegmentPolicyIngressRule>,
    /// Rules for connections from the subject pods, in evaluation order. Empty: egress untouched.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 25), extend("x-kubernetes-validations" = [
        {"rule": UNIQUE_RULE_NAMES, "message": "egress rule names must be unique"}
    ]))]
    pub egress: Vec<SegmentPolicyEgressRule>,
}

/// Whether a SegmentPolicy changes enforcement.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum PolicyMode {
    /// The policy decides connections (the default).
    #[default]
    Enforce,
    /// The policy never decides; flow records say where its verdict would differ.
    Audit,
}

/// The pods a SegmentPolicy applies to.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SegmentPolicySubject {
    /// 1..=25 Segment names; the member pods of any of them.
    #[schemars(schema_with = "segment_name_list")]
    pub segments: Vec<String>,
}

/// One ingress rule: `action` for connections from any of `from` on any of `protocols`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SegmentPolicyIngressRule {
    /// A name for observability, at most 100 characters, unique among the ingress rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 100))]
    pub name: Option<String>,
    /// What a matching connection gets.
    pub action: RuleAction,
    /// The sources, 1..=25 peers; the rule matches when any peer matches.
    #[schemars(length(min = 1, max = 25))]
    pub from: Vec<SegmentPolicyPeer>,
    /// 1..=25 protocol entries, any of which must match; absent matches all traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 25))]
    pub protocols: Option<Vec<SegmentPolicyProtocol>>,
}

/// One egress rule: `action` for connections to any of `to` on any of `protocols`.
///
/// A named port cannot be combined with a `networks` peer: network addresses have no named
/// ports. (A `segments` peer may have member networks; there the named port matches only
/// the member pods.)
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "!(self.to.exists(peer, has(peer.networks)) && has(self.protocols) && self.protocols.exists(protocol, has(protocol.destinationNamedPort)))",
    "message": "a networks peer cannot be combined with destinationNamedPort since networks have no named ports"
}]))]
pub struct SegmentPolicyEgressRule {
    /// A name for observability, at most 100 characters, unique among the egress rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 100))]
    pub name: Option<String>,
    /// What a matching connection gets.
    pub action: RuleAction,
    /// The destinations, 1..=25 peers; the rule matches when any peer matches.
    #[schemars(length(min = 1, max = 25))]
    pub to: Vec<SegmentPolicyPeer>,
    /// 1..=25 protocol entries, any of which must match; absent matches all traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 25))]
    pub protocols: Option<Vec<SegmentPolicyProtocol>>,
}

/// A source or destination: exactly one field is set.
///
/// A peer with none of these fields set (written for a newer version of the API) fails
/// closed: in an Accept rule it matches nothing, in a Deny or Pass rule the whole rule
/// denies all traffic. So does a peer naming a Segment that does not exist.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(extend("minProperties" = 1, "maxProperties" = 1))]
pub struct SegmentPolicyPeer {
    /// 1..=25 Segment names: their member pods and member networks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "segment_name_list")]
    pub segments: Option<Vec<String>>,
    /// Every pod of the namespaces this selector matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<LabelSelector>,
    /// The pods this namespace/pod selector pair matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<NamespacedPod>,
    /// 1..=25 IPv4/IPv6 CIDRs; every address inside, pod addresses included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "cidr_list")]
    pub networks: Option<Vec<String>>,
}

/// A protocol match: exactly one field is set (none set fails closed, as for peers).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("minProperties" = 1, "maxProperties" = 1))]
pub struct SegmentPolicyProtocol {
    /// TCP to the given destination port; `{}` matches every TCP port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<ProtocolPort>,
    /// UDP to the given destination port; `{}` matches every UDP port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udp: Option<ProtocolPort>,
    /// SCTP to the given destination port; `{}` matches every SCTP port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sctp: Option<ProtocolPort>,
    /// ICMP (IPv4), every type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmp: Option<IcmpMatch>,
    /// ICMPv6, every type (neighbour discovery and MLD are never subject to policy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmpv6: Option<IcmpMatch>,
    /// A container port name, resolved on the destination pod (it also fixes the protocol).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_named_port: Option<String>,
}

/// An ICMP or ICMPv6 match; it has no fields yet and matches every type.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct IcmpMatch {}
