//! The evaluator's reading of the raw objects. Written independently of the
//! compiler's model on purpose: only the validity filter is shared.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use netseg_crd::{NamespacedPod, Segment};

use super::cluster::ClusterPolicy;
use crate::{
    NAMESPACE_NAME_LABEL, Snapshot, protocol_number, validate_cluster_network_policy,
    validate_namespace, validate_network_policy, validate_node, validate_pod, validate_segment,
    validate_segment_policy,
};

pub(super) type Labels = BTreeMap<String, String>;

/// The valid objects of a snapshot; of several of a kind with one name, the
/// first in the snapshot.
pub(super) struct View<'a> {
    pub pods: Vec<&'a Pod>,
    pub policies: Vec<&'a NetworkPolicy>,
    /// ClusterNetworkPolicies and SegmentPolicies, Enforce and Audit alike,
    /// sorted by (priority, kind, name); the band is told by each.
    pub cluster: Vec<ClusterPolicy<'a>>,
    /// By name.
    pub segments: BTreeMap<&'a str, &'a Segment>,
    pub nodes: Vec<&'a Node>,
    namespaces: BTreeMap<String, Labels>,
}

fn name_of(meta: &ObjectMeta) -> (String, String) {
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

/// The objects of `objects` that `valid` accepts, the first of each name.
fn first_valid<T>(
    objects: &[std::sync::Arc<T>],
    meta: impl Fn(&T) -> &ObjectMeta,
    valid: impl Fn(&T) -> bool,
) -> Vec<&T> {
    let mut seen = BTreeSet::new();
    objects
        .iter()
        .map(AsRef::as_ref)
        .filter(|o| valid(o) && seen.insert(name_of(meta(o))))
        .collect()
}

impl<'a> View<'a> {
    pub(super) fn new(snapshot: &'a Snapshot) -> Self {
        let pods = first_valid(
            &snapshot.pods,
            |p| &p.metadata,
            |p| validate_pod(p).is_empty(),
        );
        let policies = first_valid(
            &snapshot.network_policies,
            |p| &p.metadata,
            |p| validate_network_policy(p).is_empty(),
        );
        let cnps = first_valid(
            &snapshot.cluster_network_policies,
            |p| &p.metadata,
            |p| validate_cluster_network_policy(p).is_empty(),
        );
        let segment_policies = first_valid(
            &snapshot.segment_policies,
            |p| &p.metadata,
            |p| validate_segment_policy(p).is_empty(),
        );
        let mut cluster: Vec<ClusterPolicy<'a>> = cnps
            .into_iter()
            .map(ClusterPolicy::from_cluster_network_policy)
            .chain(
                segment_policies
                    .into_iter()
                    .map(ClusterPolicy::from_segment_policy),
            )
            .collect();
        cluster.sort_by(|a, b| a.order().cmp(&b.order()));
        let segments = first_valid(
            &snapshot.segments,
            |s| &s.metadata,
            |s| validate_segment(s).is_empty(),
        )
        .into_iter()
        .map(|s| (s.metadata.name.as_deref().unwrap_or_default(), s))
        .collect();
        let mut namespaces = BTreeMap::new();
        for ns in snapshot
            .namespaces
            .iter()
            .filter(|ns| validate_namespace(ns).is_empty())
        {
            let name = ns.metadata.name.clone().unwrap_or_default();
            namespaces
                .entry(name)
                .or_insert_with(|| ns.metadata.labels.clone().unwrap_or_default());
        }
        let nodes = first_valid(
            &snapshot.nodes,
            |n| &n.metadata,
            |n| validate_node(n).is_empty(),
        );
        View {
            pods,
            policies,
            cluster,
            segments,
            nodes,
            namespaces,
        }
    }

    /// Labels of namespace `name`, with the name label the API server sets.
    pub(super) fn namespace_labels(&self, name: &str) -> Labels {
        let mut labels = self.namespaces.get(name).cloned().unwrap_or_default();
        labels.insert(NAMESPACE_NAME_LABEL.to_string(), name.to_string());
        labels
    }

    /// Pods whose addresses are pod addresses and that hold `addr`.
    pub(super) fn pods_holding(&self, addr: IpAddr) -> Vec<&'a Pod> {
        self.pods
            .iter()
            .copied()
            .filter(|p| is_pod_address_holder(p) && pod_ips(p).contains(&addr))
            .collect()
    }

    /// Whether `pod` is in a namespace `namespaces` selects.
    pub(super) fn in_namespaces(&self, namespaces: &LabelSelector, pod: &Pod) -> bool {
        let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
        selector_matches(namespaces, &self.namespace_labels(ns))
    }

    /// Whether `selection` (absent namespace selector: every namespace) selects `pod`.
    pub(super) fn selects(&self, selection: &NamespacedPod, pod: &Pod) -> bool {
        selection
            .namespace_selector
            .as_ref()
            .is_none_or(|ns| self.in_namespaces(ns, pod))
            && selector_matches(&selection.pod_selector, labels_of(pod))
    }
}

pub(super) fn pod_ips(pod: &Pod) -> Vec<IpAddr> {
    let Some(status) = &pod.status else {
        return Vec::new();
    };
    let listed: Vec<IpAddr> = status
        .pod_ips
        .iter()
        .flatten()
        .filter_map(|ip| ip.ip.parse().ok())
        .collect();
    if !listed.is_empty() {
        return listed;
    }
    status
        .pod_ip
        .iter()
        .filter_map(|ip| ip.parse().ok())
        .collect()
}

/// Running (or pending) pods with an IP of their own: not host-network, not finished.
pub(super) fn is_pod_address_holder(pod: &Pod) -> bool {
    let host_network = pod
        .spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false);
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    let finished = phase == Some("Succeeded") || phase == Some("Failed");
    !host_network && !finished && !pod_ips(pod).is_empty()
}

pub(super) fn labels_of(pod: &Pod) -> &Labels {
    static NONE: Labels = BTreeMap::new();
    pod.metadata.labels.as_ref().unwrap_or(&NONE)
}

pub(super) fn selector_matches(selector: &LabelSelector, labels: &Labels) -> bool {
    let labels_ok = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let exprs_ok = selector.match_expressions.iter().flatten().all(|e| {
        let values = e.values.as_deref().unwrap_or_default();
        let value = labels.get(&e.key);
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => !value.is_some_and(|v| values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    labels_ok && exprs_ok
}

/// Whether `pod` has a container port `name` for `protocol` numbered `port`.
pub(super) fn has_named_port(pod: &Pod, name: &str, protocol: u8, port: u16) -> bool {
    let containers = pod
        .spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or_default();
    containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .any(|p| {
            p.name.as_deref() == Some(name)
                && protocol_number(p.protocol.as_deref().unwrap_or("TCP")) == Some(protocol)
                && p.container_port == i32::from(port)
        })
}
