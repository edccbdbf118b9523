//! Types shared by ClusterNetworkPolicy and SegmentPolicy (and Segment).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The precedence band a policy belongs to.
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum RuleAction {
    /// Allow the connection (replies and related ICMP included); evaluation stops.
    Accept,
    /// Drop the connection; evaluation stops.
    Deny,
    /// Skip the rest of the current tier; evaluation goes on with the next band.
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

/// A protocol's destination-port match. With no `destination_port`, every port.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProtocolPort {
    /// The destination port or port range; absent matches every port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_port: Option<Port>,
}

/// A destination port: exactly one of `number` and `range` is set.
///
/// Neither set means the CRD knows a field this build does not: fail closed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Port {
    /// One port, 1..=65535.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<i32>,
    /// An inclusive port range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<PortRange>,
}

/// An inclusive port range, `start < end`, both 1..=65535.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PortRange {
    /// First port of the range.
    pub start: i32,
    /// Last port of the range (inclusive).
    pub end: i32,
}

/// The status of every netseg-handled kind: conditions only.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ResourceStatus {
    /// The object's conditions, one per `type`.
    pub conditions: Vec<Condition>,
}
