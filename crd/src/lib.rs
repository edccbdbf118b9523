//! netseg's custom resource types.
//!
//! - [`ClusterNetworkPolicy`]: the upstream `policy.networking.k8s.io/v1alpha2` kind, standard
//!   channel plus the experimental egress peers `nodes` and `domainNames`.
//! - [`Segment`] and [`SegmentPolicy`]: netseg's own `netseg.dev/v1alpha1` kinds.
//! - [`NetsegNode`]: the per-node status object (`netseg.dev/v1alpha1`), one per node, written
//!   only by that node's daemon.
//!
//! All four are cluster-scoped. The types are plain serde: a peer or protocol entry whose
//! known fields are all unset (because a newer CRD added a field this build does not know)
//! deserializes rather than failing, so the compiler can apply the per-action fail-closed
//! rule to it. Exactly-one-of constraints are enforced by the CRD schema, not by serde.
//!
//! [`crd_manifests`] generates the CustomResourceDefinitions (schema, CEL validation rules,
//! printer columns); the `crdgen` binary writes them to `deploy/crds/` or checks that the
//! committed files are current.

mod cluster_network_policy;
mod common;
mod definitions;
mod netseg_node;
mod schema;
mod segment;
mod segment_policy;

pub use cluster_network_policy::{
    ClusterNetworkPolicy, ClusterNetworkPolicyEgressPeer, ClusterNetworkPolicyEgressRule,
    ClusterNetworkPolicyIngressPeer, ClusterNetworkPolicyIngressRule, ClusterNetworkPolicyProtocol,
    ClusterNetworkPolicySpec, ClusterNetworkPolicySubject,
};
pub use common::{NamespacedPod, Port, PortRange, ProtocolPort, ResourceStatus, RuleAction, Tier};
pub use definitions::{CrdManifest, crd_manifests};
pub use netseg_node::{EnforcedPolicy, MapUsage, NetsegNode, NetsegNodeSpec, NetsegNodeStatus};
pub use segment::{PostureAction, Segment, SegmentMember, SegmentPosture, SegmentSpec};
pub use segment_policy::{
    IcmpMatch, PolicyMode, SegmentPolicy, SegmentPolicyEgressRule, SegmentPolicyIngressRule,
    SegmentPolicyPeer, SegmentPolicyProtocol, SegmentPolicySpec, SegmentPolicySubject,
};
