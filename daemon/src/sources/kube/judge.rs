//! Each object the API server sends, judged by the rules a manifest file is
//! judged by: decoded, validated, and named in any problem.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, Node};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::DynamicObject;
use kube::core::error_boundary::InvalidObject;

use super::slim::{SlimPod, slim_namespace, slim_network_policy, slim_node};
use super::state::Judged;
use crate::sources::Problem;
use crate::sources::decode::{Rejection, decode_valid, validated};
use crate::sources::object::{Object, ObjectId, ObjectKind};

/// The identity of an object of `kind` with `metadata`.
pub fn object_id(kind: ObjectKind, metadata: &ObjectMeta) -> ObjectId {
    ObjectId {
        kind,
        namespace: kind
            .is_namespaced()
            .then(|| metadata.namespace.clone().unwrap_or_default()),
        name: metadata.name.clone().unwrap_or_default(),
    }
}

pub fn pod(id: &ObjectId, pod: SlimPod) -> Judged {
    judged(id, validated(Object::Pod(Arc::new(pod.into_pod()))))
}

pub fn namespace(id: &ObjectId, namespace: Namespace) -> Judged {
    judged(
        id,
        validated(Object::Namespace(Arc::new(slim_namespace(namespace)))),
    )
}

pub fn node(id: &ObjectId, node: Node) -> Judged {
    judged(id, validated(Object::Node(Arc::new(slim_node(node)))))
}

pub fn network_policy(id: &ObjectId, policy: NetworkPolicy) -> Judged {
    judged(
        id,
        validated(Object::NetworkPolicy(Arc::new(slim_network_policy(policy)))),
    )
}

/// A ClusterNetworkPolicy, Segment or SegmentPolicy, decoded as strictly as
/// from a file: an unknown field (a CRD newer than this netseg) refuses the
/// object, except inside rule peers and protocols, where it fails closed.
pub fn custom(id: &ObjectId, object: DynamicObject) -> Judged {
    let mut value = match serde_json::to_value(&object) {
        Ok(value) => value,
        Err(error) => return refused(id, &error),
    };
    // Written by status writers (netseg's leader among them), never enforced.
    if let Some(fields) = value.as_object_mut() {
        fields.remove("status");
    }
    judged(id, decode_valid(id.kind, value))
}

/// An object that does not even deserialize as its kind.
pub fn invalid(id: &ObjectId, object: &InvalidObject) -> Judged {
    refused(id, object)
}

fn judged(id: &ObjectId, result: Result<Object, Rejection>) -> Judged {
    match result {
        Ok(object) => Judged::Valid(object),
        Err(Rejection { errors, invalid }) => Judged::Refused {
            uid: None,
            problems: errors
                .iter()
                .map(|error| Problem::from_api(id.to_string(), error.field(), error))
                .collect(),
            invalid,
        },
    }
}

fn refused(id: &ObjectId, error: &dyn std::error::Error) -> Judged {
    Judged::Refused {
        problems: vec![Problem::from_api(id.to_string(), None, error)],
        invalid: None,
        uid: None,
    }
}
