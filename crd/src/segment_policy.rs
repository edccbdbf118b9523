//! `netseg.dev/v1alpha1` SegmentPolicy: rules between Segments, in the same Admin and
//! Baseline bands as ClusterNetworkPolicy, optionally in audit mode.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{NamespacedPod, ProtocolPort, ResourceStatus, RuleAction, Tier};

/// The spec of a SegmentPolicy.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "netseg.dev",
    version = "v1alpha1",
    kind = "SegmentPolicy",
    plural = "segmentpolicies",
    shortname = "segpol",
    status = "ResourceStatus",
    derive = "PartialEq"
)]
pub struct SegmentPolicySpec {
    /// The band the policy is evaluated in.
    pub tier: Tier,
    /// 0..=1000; lower values are evaluated first within the band.
    pub priority: i32,
    /// Whether the policy enforces or only reports what it would change.
    #[serde(default)]
    pub mode: PolicyMode,
    /// The pods the policy applies to.
    pub subject: SegmentPolicySubject,
    /// Rules for connections to the subject pods, in evaluation order. Empty: ingress untouched.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<SegmentPolicyIngressRule>,
    /// Rules for connections from the subject pods, in evaluation order. Empty: egress untouched.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
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
    pub segments: Vec<String>,
}

/// One ingress rule: `action` for connections from any of `from` on any of `protocols`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SegmentPolicyIngressRule {
    /// A name for observability, at most 100 characters, unique among the ingress rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What a matching connection gets.
    pub action: RuleAction,
    /// The sources, 1..=25 peers; the rule matches when any peer matches.
    pub from: Vec<SegmentPolicyPeer>,
    /// 1..=25 protocol entries, any of which must match; absent matches all traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocols: Option<Vec<SegmentPolicyProtocol>>,
}

/// One egress rule: `action` for connections to any of `to` on any of `protocols`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SegmentPolicyEgressRule {
    /// A name for observability, at most 100 characters, unique among the egress rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What a matching connection gets.
    pub action: RuleAction,
    /// The destinations, 1..=25 peers; the rule matches when any peer matches.
    pub to: Vec<SegmentPolicyPeer>,
    /// 1..=25 protocol entries, any of which must match; absent matches all traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocols: Option<Vec<SegmentPolicyProtocol>>,
}

/// A source or destination: exactly one field is set.
///
/// None set means the object carries a peer kind this build does not know: the compiler
/// fails closed (an Accept rule matches nothing, a Deny or Pass rule denies everything).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SegmentPolicyPeer {
    /// 1..=25 Segment names: their member pods and member networks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segments: Option<Vec<String>>,
    /// Every pod of the namespaces this selector matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<LabelSelector>,
    /// The pods this namespace/pod selector pair matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<NamespacedPod>,
    /// 1..=25 IPv4/IPv6 CIDRs; every address inside, pod addresses included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub networks: Option<Vec<String>>,
}

/// A protocol match: exactly one field is set (none set: fail closed, as for peers).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
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
