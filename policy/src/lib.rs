//! netseg's policy compiler. Pure: no I/O, no clock, no async.
//!
//! Input: a [`Snapshot`] of Namespaces, Pods, NetworkPolicies,
//! ClusterNetworkPolicies, Segments and SegmentPolicies plus the
//! node's [`CompileOptions`]. Output: the exact datapath map entries for the
//! node ([`Compiler::compile`]), a diff between two compilations
//! ([`diff_maps`]), the datapath's decision over compiled maps ([`lookup`]),
//! the steps one connection meets on the way to that decision
//! ([`Compiler::trace`], for `explain`), a reference evaluator that answers
//! the same question directly from the API semantics ([`evaluate`]), and
//! what `check` and status writers report beyond field errors
//! ([`warnings`], [`conditions`]).

mod compile;
mod conditions;
mod diff;
mod evaluate;
#[cfg(test)]
mod fixtures;
mod lookup;
mod model;
mod ports;
mod trace;
mod types;
mod validate;
mod warnings;

use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use netseg_crd::{ClusterNetworkPolicy, Segment, SegmentPolicy};

pub use compile::Compiler;
pub use conditions::{
    ACCEPTED, CLUSTER_NETWORK_POLICY_ACCEPTED, Condition, ObjectRef, RESOLVED_REFS, conditions,
};
pub use diff::{MapDiff, diff_maps};
pub use evaluate::{Evaluator, evaluate};
pub use lookup::{lookup, lookup_identity};
pub use model::{FieldError, FieldProblem, NAMESPACE_NAME_LABEL, label_key_problem};
pub use ports::{protocol_number, range_to_prefixes};
pub use trace::{Connection, StepOutcome, Trace, TraceStep};
pub use types::{
    Action, Band, Compiled, Decider, Direction, IdentityInfo, IdentityKind, LocalEndpoint,
    PodParty, PodRef, PolicyEntryKey, PolicyKind, PortPrefix, RuleRef, SegmentNetworks, Verdict,
    Workload,
};
pub use validate::{
    validate_cluster_network_policy, validate_namespace, validate_network_policy, validate_node,
    validate_pod, validate_segment, validate_segment_policy,
};
pub use warnings::{Warning, warnings};

/// Everything the compiler reads: the cluster state relevant to one node.
///
/// Objects are shared: a [`Compiler`] remembers what it derived from each
/// object and reuses it while the next snapshot holds the same `Arc`, so a
/// source that keeps unchanged objects' `Arc`s gets incremental recompiles.
/// Replace an object's `Arc` (never mutate through it) when it changes.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub namespaces: Vec<Arc<Namespace>>,
    pub pods: Vec<Arc<Pod>>,
    pub network_policies: Vec<Arc<NetworkPolicy>>,
    pub cluster_network_policies: Vec<Arc<ClusterNetworkPolicy>>,
    pub segments: Vec<Arc<Segment>>,
    pub segment_policies: Vec<Arc<SegmentPolicy>>,
    /// Node objects, for `nodes` peers (the node's own addresses come from
    /// [`CompileOptions::node_addresses`] whether or not its Node is here).
    pub nodes: Vec<Arc<Node>>,
}

/// What happens to traffic that no policy decides.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum DefaultAction {
    /// Zero trust: every local pod is isolated in both directions.
    #[default]
    Deny,
    /// Kubernetes: a pod is isolated in a direction only when a policy selects it for it.
    Allow,
}

/// The node the compilation is for.
#[derive(Clone, Debug, Default)]
pub struct CompileOptions {
    /// Pods whose `spec.nodeName` equals this are local endpoints.
    pub node_name: String,
    pub default_action: DefaultAction,
    /// Deny traffic from the node's own addresses to local pods unless a policy allows it.
    pub deny_node_traffic: bool,
    /// The node's own addresses (the source of kubelet probes).
    pub node_addresses: Vec<IpAddr>,
}
