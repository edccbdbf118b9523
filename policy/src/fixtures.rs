//! Builders of snapshot objects for the crate's unit tests.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use netseg_crd::{ClusterNetworkPolicy, Segment, SegmentPolicy};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::Snapshot;

pub(crate) const NODE: &str = "node-1";

pub(crate) fn object<T: DeserializeOwned>(value: Value) -> Arc<T> {
    Arc::new(serde_json::from_value(value).expect("test object"))
}

pub(crate) fn namespace(name: &str, labels: Value) -> Arc<Namespace> {
    object(json!({"metadata": {"name": name, "labels": labels}}))
}

/// A running pod on [`NODE`] with one IPv4 address.
pub(crate) fn pod(ns: &str, name: &str, labels: Value, ip: &str) -> Arc<Pod> {
    object(json!({
        "metadata": {"namespace": ns, "name": name, "labels": labels},
        "spec": {"nodeName": NODE, "containers": [{"name": "c", "image": "i"}]},
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]},
    }))
}

pub(crate) fn network_policy(ns: &str, name: &str, spec: Value) -> Arc<NetworkPolicy> {
    object(json!({"metadata": {"namespace": ns, "name": name}, "spec": spec}))
}

pub(crate) fn cnp(name: &str, spec: Value) -> Arc<ClusterNetworkPolicy> {
    object(json!({"metadata": {"name": name}, "spec": spec}))
}

pub(crate) fn segment(name: &str, spec: Value) -> Arc<Segment> {
    object(json!({"metadata": {"name": name}, "spec": spec}))
}

pub(crate) fn segment_policy(name: &str, spec: Value) -> Arc<SegmentPolicy> {
    object(json!({"metadata": {"name": name}, "spec": spec}))
}

/// Namespaces `shop` and `data`; pods `shop/web` (app=web, 10.0.0.1),
/// `shop/api` (app=api, 10.0.0.2) and `data/db` (app=db, 10.0.1.1).
pub(crate) fn shop() -> Snapshot {
    Snapshot {
        namespaces: vec![
            namespace("shop", json!({"zone": "shop"})),
            namespace("data", json!({"zone": "data"})),
        ],
        pods: vec![
            pod("shop", "web", json!({"app": "web"}), "10.0.0.1"),
            pod("shop", "api", json!({"app": "api"}), "10.0.0.2"),
            pod("data", "db", json!({"app": "db"}), "10.0.1.1"),
        ],
        ..Snapshot::default()
    }
}

/// Segments `front` (namespace shop) and `data` (namespace data).
pub(crate) fn zones() -> Vec<Arc<Segment>> {
    vec![
        segment(
            "front",
            json!({"members": [{"namespaces": {"matchLabels": {"zone": "shop"}}}]}),
        ),
        segment(
            "data",
            json!({"members": [{"namespaces": {"matchLabels": {"zone": "data"}}}]}),
        ),
    ]
}
