//! Fixtures shared by the manifests tests, which are split by concern.

use std::fs;
use std::path::{Path, PathBuf};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::ManifestStore;
use crate::sources::Problem;

mod incremental;
mod kinds;
mod parse;
mod scale;
mod store;
mod watch;
mod yaml;

pub(super) const NAMESPACE_SHOP: &str =
    "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n";

pub(super) fn pod(name: &str, app: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: shop\n  labels:\n    app: {app}\n\
         spec:\n  containers:\n    - name: main\n      image: example\n"
    )
}

/// `port` is inserted verbatim so a test can give it the wrong type.
pub(super) fn policy(name: &str, port: &str) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: {name}\n  namespace: shop\n\
         spec:\n  podSelector:\n    matchLabels:\n      app: backend\n  policyTypes: [Ingress]\n  ingress:\n\
         \x20   - ports:\n        - port: {port}\n"
    )
}

pub(super) fn write(dir: &Path, file: &str, text: &str) -> PathBuf {
    let path = dir.join(file);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).expect("create parent directory");
    }
    fs::write(&path, text).expect("write manifest");
    path
}

pub(super) fn lines(problems: &[Problem]) -> Vec<String> {
    problems.iter().map(ToString::to_string).collect()
}

pub(super) fn names(store: &ManifestStore) -> Vec<String> {
    let snapshot = store.snapshot();
    let namespaces = snapshot
        .namespaces
        .iter()
        .map(|ns| format!("Namespace {}", name_of(&ns.metadata)));
    let pods = snapshot
        .pods
        .iter()
        .map(|pod| format!("Pod {}", name_of(&pod.metadata)));
    let policies = snapshot
        .network_policies
        .iter()
        .map(|policy| format!("NetworkPolicy {}", name_of(&policy.metadata)));
    let cluster = snapshot
        .cluster_network_policies
        .iter()
        .map(|policy| format!("ClusterNetworkPolicy {}", name_of(&policy.metadata)));
    let segments = snapshot
        .segments
        .iter()
        .map(|segment| format!("Segment {}", name_of(&segment.metadata)));
    let segment_policies = snapshot
        .segment_policies
        .iter()
        .map(|policy| format!("SegmentPolicy {}", name_of(&policy.metadata)));
    namespaces
        .chain(pods)
        .chain(policies)
        .chain(cluster)
        .chain(segments)
        .chain(segment_policies)
        .collect()
}

fn name_of(metadata: &ObjectMeta) -> String {
    let name = metadata.name.as_deref().unwrap_or("?");
    match &metadata.namespace {
        Some(namespace) => format!("{namespace}/{name}"),
        None => name.to_owned(),
    }
}
