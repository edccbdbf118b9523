//! Types shared by ClusterNetworkPolicy, SegmentPolicy and Segment.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The band a policy is evaluated in: `Admin` before NetworkPolicies, `Baseline` after them.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
pub enum Tier {
    /// Evaluated before NetworkPolicies.
    Admin,
    /// Evaluated after NetworkPolicies.
    Baseline,
}

/// What a matching rule does with a connection.
///
/// `Accept` allows it (replies and related ICMP included) and ends evaluation, `Deny` drops it
/// and ends evaluation, `Pass` skips the rest of the tier and goes on with the next band.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum RuleAction {
    /// Allow the connection; evaluation stops.
    Accept,
    /// Drop the connection; evaluation stops.
    Deny,
    /// Skip the rest of the current tier.
    Pass,
}

/// Pods selected by a namespace selector and a pod selector together.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NamespacedPod {
    /// The namespaces the pods must be in. Absent or empty selects every namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    /// The pods, within the selected namespaces. Empty selects every pod.
    pub pod_selector: LabelSelector,
}

/// A protocol's destination-port match. Without `destinationPort`, every port.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProtocolPort {
    /// The destination port or port range; absent matches every port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_port: Option<Port>,
}

/// A destination port: exactly one of `number` and `range` is set.
///
/// Neither set (a port form from a newer version of the API) fails closed like an unknown
/// protocol entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(extend("minProperties" = 1, "maxProperties" = 1))]
pub struct Port {
    /// One port, 1..=65535.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub number: Option<i32>,
    /// An inclusive port range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<PortRange>,
}

/// An inclusive port range, `start < end`, both 1..=65535.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self.start < self.end", "message": "Start port must be less than End port"}
]))]
pub struct PortRange {
    /// First port of the range.
    #[schemars(range(min = 1, max = 65535))]
    pub start: i32,
    /// Last port of the range (inclusive).
    #[schemars(range(min = 1, max = 65535))]
    pub end: i32,
}

/// The status of every kind here: conditions only.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ResourceStatus {
    /// The object's conditions, one per `type`.
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}
