//! Validation of the objects the compiler reads. The compiler skips any
//! object with a problem; the daemon uses these to keep the last good
//! version of an object and to report why a new one was refused.

use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;

use netseg_crd::{ClusterNetworkPolicy, Segment, SegmentPolicy};

use crate::model::{
    Errors, FieldError, parse_cluster_network_policy, parse_namespace, parse_node, parse_pod,
    parse_policy, parse_segment, parse_segment_policy,
};

/// Every problem with the fields of `policy` that netseg reads (empty: valid).
pub fn validate_network_policy(policy: &NetworkPolicy) -> Vec<FieldError> {
    let mut errs = Errors::default();
    parse_policy(policy, &mut errs);
    errs.0
}

/// Every problem with the fields of `pod` that netseg reads: name and
/// namespace, labels, container ports, pod IPs.
pub fn validate_pod(pod: &Pod) -> Vec<FieldError> {
    let mut errs = Errors::default();
    parse_pod(pod, &mut errs);
    errs.0
}

/// Every problem with the fields of a Node that netseg reads: name, labels
/// and the IP addresses of `status.addresses`.
pub fn validate_node(node: &Node) -> Vec<FieldError> {
    let mut errs = Errors::default();
    parse_node(node, &mut errs);
    errs.0
}

/// Every problem with the fields of `namespace` that netseg reads: name and labels.
pub fn validate_namespace(namespace: &Namespace) -> Vec<FieldError> {
    let mut errs = Errors::default();
    parse_namespace(namespace, &mut errs);
    errs.0
}

/// Every problem with the fields of a ClusterNetworkPolicy (empty: valid).
/// Peers and protocols netseg does not implement are not errors: the rule
/// fails closed (see [`crate::warnings`]).
pub fn validate_cluster_network_policy(policy: &ClusterNetworkPolicy) -> Vec<FieldError> {
    let mut errs = Errors::default();
    parse_cluster_network_policy(policy, &mut errs);
    errs.0
}

/// Every problem with the fields of a SegmentPolicy (empty: valid). Segment
/// names are checked against the other objects by [`crate::warnings`].
pub fn validate_segment_policy(policy: &SegmentPolicy) -> Vec<FieldError> {
    let mut errs = Errors::default();
    parse_segment_policy(policy, &mut errs);
    errs.0
}

/// Every problem with the fields of a Segment (empty: valid).
pub fn validate_segment(segment: &Segment) -> Vec<FieldError> {
    let mut errs = Errors::default();
    parse_segment(segment, &mut errs);
    errs.0
}
