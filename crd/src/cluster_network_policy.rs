//! `policy.networking.k8s.io/v1alpha2` ClusterNetworkPolicy, as upstream network-policy-api
//! v0.2.0 defines it (experimental channel: egress peers `nodes` and `domainNames`).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{NamespacedPod, ProtocolPort, ResourceStatus, RuleAction, Tier};
use crate::schema::{cidr_list, domain_name_list};

/// The spec of a ClusterNetworkPolicy: cluster-wide rules in the Admin or Baseline tier.
// Printer columns repeat `type_ = "string"`, which clippy takes for a duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "policy.networking.k8s.io",
    version = "v1alpha2",
    kind = "ClusterNetworkPolicy",
    plural = "clusternetworkpolicies",
    shortname = "cnp",
    status = "ResourceStatus",
    derive = "PartialEq",
    doc = "ClusterNetworkPolicy is a cluster-level network policy in the Admin or Baseline tier.",
    annotation(
        "api-approved.kubernetes.io",
        "https://github.com/kubernetes-sigs/network-policy-api/pull/347"
    ),
    annotation("policy.networking.k8s.io/bundle-version", "v0.2.0"),
    annotation("policy.networking.k8s.io/channel", "experimental"),
    printcolumn(name = "Tier", type_ = "string", json_path = ".spec.tier"),
    printcolumn(name = "Priority", type_ = "string", json_path = ".spec.priority"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterNetworkPolicySpec {
    /// The band the policy is evaluated in.
    pub tier: Tier,
    /// 0..=1000; lower values are evaluated first within the tier.
    #[schemars(range(min = 0, max = 1000))]
    pub priority: i32,
    /// The pods the policy applies to.
    pub subject: ClusterNetworkPolicySubject,
    /// Rules for connections to the subject pods, in evaluation order. Empty: ingress untouched.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 25))]
    pub ingress: Vec<ClusterNetworkPolicyIngressRule>,
    /// Rules for connections from the subject pods, in evaluation order. Empty: egress untouched.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 25))]
    pub egress: Vec<ClusterNetworkPolicyEgressRule>,
}

/// The pods a ClusterNetworkPolicy applies to: exactly one field is set.
/// Host-network pods are never subjects.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(extend("minProperties" = 1, "maxProperties" = 1))]
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
    #[schemars(length(max = 100))]
    pub name: Option<String>,
    /// What a matching connection gets.
    pub action: RuleAction,
    /// The sources, 1..=25 peers; the rule matches when any peer matches.
    #[schemars(length(min = 1, max = 25))]
    pub from: Vec<ClusterNetworkPolicyIngressPeer>,
    /// 1..=25 protocol entries, any of which must match; absent matches all traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 25))]
    pub protocols: Option<Vec<ClusterNetworkPolicyProtocol>>,
}

/// One egress rule: `action` for connections to any of `to` on any of `protocols`.
///
/// A named port cannot be combined with `networks`, `nodes` or `domainNames` peers: those
/// addresses have no named ports (upstream experimental channel rule).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "!(self.to.exists(peer, has(peer.networks) || has(peer.nodes) || has(peer.domainNames)) && has(self.protocols) && self.protocols.exists(protocol, has(protocol.destinationNamedPort)))",
    "message": "networks/nodes/domainNames peer cannot be set with namedPorts since there are no namedPorts for networks/nodes/domainNames"
}]))]
pub struct ClusterNetworkPolicyEgressRule {
    /// A name for observability, at most 100 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 100))]
    pub name: Option<String>,
    /// What a matching connection gets.
    pub action: RuleAction,
    /// The destinations, 1..=25 peers; the rule matches when any peer matches.
    #[schemars(length(min = 1, max = 25))]
    pub to: Vec<ClusterNetworkPolicyEgressPeer>,
    /// 1..=25 protocol entries, any of which must match; absent matches all traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 25))]
    pub protocols: Option<Vec<ClusterNetworkPolicyProtocol>>,
}

/// An ingress source: exactly one field is set.
///
/// A peer with none of these fields set (written for a newer version of the API) fails
/// closed: in an Accept rule it matches nothing, in a Deny or Pass rule the whole rule
/// denies all traffic.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(extend("minProperties" = 1, "maxProperties" = 1))]
pub struct ClusterNetworkPolicyIngressPeer {
    /// Every pod of the namespaces this selector matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<LabelSelector>,
    /// The pods this namespace/pod selector pair matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<NamespacedPod>,
}

/// An egress destination: exactly one field is set (none set fails closed, as for ingress).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("minProperties" = 1, "maxProperties" = 1))]
pub struct ClusterNetworkPolicyEgressPeer {
    /// Every pod of the namespaces this selector matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<LabelSelector>,
    /// The pods this namespace/pod selector pair matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<NamespacedPod>,
    /// The addresses of the nodes this selector matches (experimental).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<LabelSelector>,
    /// 1..=25 IPv4/IPv6 CIDRs; every address inside, pod addresses included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "cidr_list")]
    pub networks: Option<Vec<String>>,
    /// 1..=25 DNS names, `*.` prefix allowed (experimental; Accept rules only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "domain_name_list")]
    pub domain_names: Option<Vec<String>>,
}

/// A protocol match: exactly one field is set (none set fails closed, as for peers).
///
/// Unlike SegmentPolicy, `tcp`/`udp`/`sctp` must name a `destinationPort` here.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("minProperties" = 1, "maxProperties" = 1))]
pub struct ClusterNetworkPolicyProtocol {
    /// TCP to the given destination port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("minProperties" = 1))]
    pub tcp: Option<ProtocolPort>,
    /// UDP to the given destination port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("minProperties" = 1))]
    pub udp: Option<ProtocolPort>,
    /// SCTP to the given destination port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("minProperties" = 1))]
    pub sctp: Option<ProtocolPort>,
    /// A container port name, resolved on the destination pod (it also fixes the protocol).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_named_port: Option<String>,
}
