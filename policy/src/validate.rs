//! Validation of the objects the compiler reads. The compiler skips any
//! object with a problem; the daemon uses these to keep the last good
//! version of an object and to report why a new one was refused.

use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;

use crate::model::{Errors, FieldError, parse_namespace, parse_pod, parse_policy};

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

/// Every problem with the fields of `namespace` that netseg reads: name and labels.
pub fn validate_namespace(namespace: &Namespace) -> Vec<FieldError> {
    let mut errs = Errors::default();
    parse_namespace(namespace, &mut errs);
    errs.0
}
