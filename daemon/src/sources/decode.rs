//! One object as the API would hold it, decoded into netseg's types and
//! validated: the same rules for a manifest file and for an object the API
//! server sends.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::object::{Object, ObjectKind};

/// The namespace of a namespaced object that names none, as kubectl assumes.
pub(crate) const DEFAULT_NAMESPACE: &str = "default";

/// Why an object is not enforced as written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DecodeError {
    // The serde message says it all ("invalid type: string \"x\", expected i32").
    #[error("{source}")]
    WrongType {
        path: Option<String>,
        source: serde_json::Error,
    },
    // Rejected rather than ignored: a misspelt `matchLabels` would otherwise
    // silently become an empty selector that matches every pod.
    #[error("unknown field")]
    UnknownField { path: String },
    #[error("{}", error.problem)]
    Invalid { error: netseg_policy::FieldError },
}

impl DecodeError {
    pub(crate) fn field(&self) -> Option<&str> {
        match self {
            Self::WrongType { path, .. } => path.as_deref(),
            Self::UnknownField { path } => Some(path),
            Self::Invalid { error } => Some(&error.field),
        }
    }
}

/// An object refused: every error, and the object as written when it
/// decoded but failed validation (its status conditions say why).
#[derive(Debug)]
pub(crate) struct Rejection {
    pub(crate) errors: Vec<DecodeError>,
    pub(crate) invalid: Option<Object>,
}

/// `value` (a whole object, `apiVersion` and `kind` already checked to be
/// `kind`) as netseg enforces it, or why it is refused.
pub(crate) fn decode_valid(kind: ObjectKind, value: Value) -> Result<Object, Rejection> {
    match decode(kind, value) {
        Ok(object) => validated(object),
        Err(errors) => Err(Rejection {
            errors,
            invalid: None,
        }),
    }
}

/// `object`, already decoded, if it passes validation.
pub(crate) fn validated(object: Object) -> Result<Object, Rejection> {
    match validation_errors(&object) {
        errors if errors.is_empty() => Ok(object),
        errors => Err(Rejection {
            errors,
            invalid: Some(object),
        }),
    }
}

fn decode(kind: ObjectKind, value: Value) -> Result<Object, Vec<DecodeError>> {
    Ok(match kind {
        ObjectKind::Namespace => Object::Namespace(Arc::new(decode_as(value)?)),
        ObjectKind::Node => Object::Node(Arc::new(decode_as(value)?)),
        ObjectKind::Pod => {
            let mut pod: Pod = decode_as(value)?;
            default_namespace(&mut pod.metadata);
            Object::Pod(Arc::new(pod))
        }
        ObjectKind::NetworkPolicy => {
            let mut policy: NetworkPolicy = decode_as(value)?;
            default_namespace(&mut policy.metadata);
            Object::NetworkPolicy(Arc::new(policy))
        }
        ObjectKind::ClusterNetworkPolicy => {
            Object::ClusterNetworkPolicy(Arc::new(decode_tolerating(value, |path| {
                is_type_meta(path) || fails_closed(path)
            })?))
        }
        ObjectKind::Segment => Object::Segment(Arc::new(decode_tolerating(value, is_type_meta)?)),
        ObjectKind::SegmentPolicy => {
            Object::SegmentPolicy(Arc::new(decode_tolerating(value, |path| {
                is_type_meta(path) || fails_closed(path)
            })?))
        }
    })
}

fn default_namespace(metadata: &mut ObjectMeta) {
    if metadata.namespace.as_deref().is_none_or(str::is_empty) {
        metadata.namespace = Some(DEFAULT_NAMESPACE.to_owned());
    }
}

fn decode_as<T: DeserializeOwned>(value: Value) -> Result<T, Vec<DecodeError>> {
    decode_tolerating(value, |_| false)
}

/// Decodes `value`, rejecting unknown fields except those `tolerated` names.
fn decode_tolerating<T: DeserializeOwned>(
    value: Value,
    tolerated: fn(&str) -> bool,
) -> Result<T, Vec<DecodeError>> {
    let mut unknown = Vec::new();
    let mut on_ignored = |path: serde_ignored::Path<'_>| unknown.push(field_path(&path));
    let decoded =
        serde_path_to_error::deserialize(serde_ignored::Deserializer::new(value, &mut on_ignored));
    match decoded {
        Err(error) => {
            let path = error.path().to_string();
            let path = (path != ".").then_some(path);
            Err(vec![DecodeError::WrongType {
                path,
                source: error.into_inner(),
            }])
        }
        Ok(_) if unknown.iter().any(|path| !tolerated(path)) => Err(unknown
            .into_iter()
            .filter(|path| !tolerated(path))
            .map(|path| DecodeError::UnknownField { path })
            .collect()),
        Ok(decoded) => Ok(decoded),
    }
}

/// `apiVersion` and `kind`, which the types kube's `CustomResource` derive
/// generates do not read (they write them from constants); the caller has
/// already checked both.
fn is_type_meta(path: &str) -> bool {
    matches!(path, "apiVersion" | "kind")
}

/// Whether an unknown field is one that a rule peer or protocol entry of a
/// ClusterNetworkPolicy or SegmentPolicy may carry: a field of a newer CRD
/// version, which the API asks implementations to fail closed on (an Accept
/// rule matches nothing, a Deny or Pass rule denies everything) rather than
/// to reject the object.
fn fails_closed(path: &str) -> bool {
    let mut parts = path.split('.');
    let (Some("spec"), Some(rule), Some(entry), Some(_field), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    let is_rule = rule.starts_with("ingress[") || rule.starts_with("egress[");
    let is_entry = ["from[", "to[", "protocols["]
        .iter()
        .any(|prefix| entry.starts_with(prefix));
    is_rule && is_entry
}

/// serde_ignored's own Display writes `spec.?.ingress.0`; this writes the
/// `spec.ingress[0]` form that serde_path_to_error and kubectl use.
fn field_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", field_path(parent)),
        Path::Map { parent, key } => match field_path(parent) {
            parent if parent.is_empty() => key.clone(),
            parent => format!("{parent}.{key}"),
        },
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => field_path(parent),
    }
}

/// The one call into the policy crate's validators, kept apart so a change
/// in their signature touches only this function.
fn validation_errors(object: &Object) -> Vec<DecodeError> {
    let errors = match object {
        Object::Namespace(namespace) => netseg_policy::validate_namespace(namespace),
        Object::Pod(pod) => netseg_policy::validate_pod(pod),
        Object::Node(node) => netseg_policy::validate_node(node),
        Object::NetworkPolicy(policy) => netseg_policy::validate_network_policy(policy),
        Object::ClusterNetworkPolicy(policy) => {
            netseg_policy::validate_cluster_network_policy(policy)
        }
        Object::Segment(segment) => netseg_policy::validate_segment(segment),
        Object::SegmentPolicy(policy) => netseg_policy::validate_segment_policy(policy),
    };
    errors
        .into_iter()
        .map(|error| DecodeError::Invalid { error })
        .collect()
}
