//! `policy.networking.k8s.io/v1alpha2` ClusterNetworkPolicy, as upstream network-policy-api
//! v0.2.0 defines it (experimental channel: egress peers `nodes` and `domainNames`).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{NamespacedPod, ProtocolPort, ResourceStatus, RuleAction, Tier};

/// The spec of a ClusterNetworkPolicy: cluster-wide rules in the Admin or Baseline tier.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "policy.networking.k8s.io",
    version = "v1alpha2",
    kind = "ClusterNetworkPolicy",
    plural = "clusternetworkpolicies",
    shortname = "cnp",
    status = "ResourceStatus",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterNetworkPolicySpec {
    /// The band the policy is evaluated in.
    pub tier: Tier,
    /// 0..=1000; lower values are evaluated first within the tier.
    pub priority: i32,
    /// The pods the policy applies to.
    pub subject: ClusterNetworkPolicySubject,
    /// Rules for connections to the subject pods, in evaluation order. Empty: ingress untouched.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<ClusterNetworkPolicyIngressRule>,
    /// Rules for connections from the subject pods, in evaluation order. Empty: egress untouched.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<ClusterNetworkPolicyEgressRule>,
}

/// The pods a ClusterNetworkPolicy applies to: exactly one field is set.
/// Host-network pods are never subjects.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ClusterNetworkPolicySubject {
    /// Every pod of the namespaces this selector matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<LabelSelector>,
    /// The pods this namespace/pod selector pair matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<NamespacedPod>,
}

/// One ingress rule: `action` for connections from any of `from` on any of `protocols`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ClusterNetworkPolicyIngressRule {
    /// A name for observability, at most 100 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What a matching connection gets.
    pub action: RuleAction,
    /// The sources, 1..=25 peers; the rule matches when any peer matches.
    pub from: Vec<ClusterNetworkPolicyIngressPeer>,
    /// 1..=25 protocol entries, any of which must match; absent matches all traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocols: Option<Vec<ClusterNetworkPolicyProtocol>>,
}

/// One egress rule: `action` for connections to any of `to` on any of `protocols`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ClusterNetworkPolicyEgressRule {
    /// A name for observability, at most 100 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What a matching connection gets.
    pub action: RuleAction,
    /// The destinations, 1..=25 peers; the rule matches when any peer matches.
    pub to: Vec<ClusterNetworkPolicyEgressPeer>,
    /// 1..=25 protocol entries, any of which must match; absent matches all traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocols: Option<Vec<ClusterNetworkPolicyProtocol>>,
}

/// An ingress source: exactly one field is set.
///
/// None set means the object carries a peer kind this build does not know: the compiler
/// fails closed (an Accept rule matches nothing, a Deny or Pass rule denies everything).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ClusterNetworkPolicyIngressPeer {
    /// Every pod of the namespaces this selector matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<LabelSelector>,
    /// The pods this namespace/pod selector pair matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<NamespacedPod>,
}

/// An egress destination: exactly one field is set (none set: fail closed, as for ingress).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterNetworkPolicyEgressPeer {
    /// Every pod of the namespaces this selector matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<LabelSelector>,
    /// The pods this namespace/pod selector pair matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<NamespacedPod>,
    /// The addresses of the nodes this selector matches (experimental channel).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<LabelSelector>,
    /// 1..=25 IPv4/IPv6 CIDRs; every address inside, pod addresses included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub networks: Option<Vec<String>>,
    /// 1..=25 DNS names, `*.` prefix allowed (experimental channel; Accept rules only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain_names: Option<Vec<String>>,
}

/// A protocol match: exactly one field is set (none set: fail closed, as for peers).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterNetworkPolicyProtocol {
    /// TCP to the given destination port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<ProtocolPort>,
    /// UDP to the given destination port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udp: Option<ProtocolPort>,
    /// SCTP to the given destination port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sctp: Option<ProtocolPort>,
    /// A container port name, resolved on the destination pod (it also fixes the protocol).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_named_port: Option<String>,
}
