//! Validated, normalized forms of the Kubernetes objects the compiler reads.
//!
//! Parsing is validation: each `parse_*` pushes every problem it finds as a
//! [`FieldError`] and yields a model only for a valid object, so the compiler
//! and `validate_*` cannot disagree on what is valid.

mod errors;
mod names;
mod node;
mod pod;
mod policy;
mod selector;
mod tiered;
mod tiered_parse;

pub use errors::{FieldError, FieldProblem};
pub use names::label_key_problem;
pub use pod::NAMESPACE_NAME_LABEL;

pub(crate) use errors::Errors;
pub(crate) use node::{NodeModel, parse_node};
pub(crate) use pod::{NamespaceModel, PodModel, namespace_labels, parse_namespace, parse_pod};
pub(crate) use policy::{
    IpBlockModel, NamespaceScope, PeerModel, PolicyModel, PortModel, parse_policy,
};
pub(crate) use selector::{Labels, Selector};
pub(crate) use tiered::{
    Posture, SegmentModel, Subject, Tier, TieredPeer, TieredPolicy, TieredRule,
};
pub(crate) use tiered_parse::{parse_cluster_network_policy, parse_segment, parse_segment_policy};
