//! The registry without a kernel: what ADD reported laid over the
//! manifests' pods, and which interface ADD picks.

use std::{collections::BTreeMap, sync::Arc};

use k8s_openapi::{
    api::core::v1::{Pod, PodSpec},
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use netseg_cni::wire::{Attachment, AttachmentId};
use netseg_policy::Snapshot;

use super::{CniRegistry, ResolveError, resolve_interface};
use crate::node::{NodeLink, NodeView};

const NODE: &str = "node-a";

fn attachment(container: &str, pod: &str, host: &[&str], ips: &[&str]) -> Attachment {
    let (namespace, name) = pod.split_once('/').expect("namespace/name");
    Attachment {
        id: AttachmentId {
            container_id: container.to_owned(),
            ifname: "eth0".to_owned(),
        },
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        host_interfaces: host.iter().map(|&name| name.to_owned()).collect(),
        ips: ips
            .iter()
            .map(|ip| ip.parse().expect("an address"))
            .collect(),
    }
}

/// A Pod object as the manifests hold it before its sandbox: no address.
fn manifest_pod(pod: &str, labels: &[(&str, &str)]) -> Arc<Pod> {
    let (namespace, name) = pod.split_once('/').expect("namespace/name");
    let labels: BTreeMap<String, String> = labels
        .iter()
        .map(|&(key, value)| (key.to_owned(), value.to_owned()))
        .collect();
    Arc::new(Pod {
        metadata: ObjectMeta {
            namespace: Some(namespace.to_owned()),
            name: Some(name.to_owned()),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            node_name: Some(NODE.to_owned()),
            ..PodSpec::default()
        }),
        ..Pod::default()
    })
}

fn snapshot(pods: &[&Arc<Pod>]) -> Snapshot {
    Snapshot {
        pods: pods.iter().map(|&pod| Arc::clone(pod)).collect(),
        ..Snapshot::default()
    }
}

fn names(snapshot: &Snapshot) -> Vec<String> {
    snapshot
        .pods
        .iter()
        .map(|pod| {
            let meta = &pod.metadata;
            format!(
                "{}/{}",
                meta.namespace.as_deref().unwrap_or(""),
                meta.name.as_deref().unwrap_or("")
            )
        })
        .collect()
}

fn addresses(pod: &Pod) -> (Option<&str>, Vec<&str>) {
    let status = pod.status.as_ref().expect("a status");
    let ips = status
        .pod_ips
        .iter()
        .flatten()
        .map(|ip| ip.ip.as_str())
        .collect();
    (status.pod_ip.as_deref(), ips)
}

#[test]
fn the_reported_addresses_and_node_go_on_the_manifests_pod_with_its_labels() {
    let mut registry = CniRegistry::default();
    let reported = attachment(
        "c1",
        "app/new",
        &["veth1"],
        &["10.0.1.5", "fd00::5", "10.0.1.6"],
    );
    assert!(registry.add(&reported, ("veth1".to_owned(), 7)));
    let new = manifest_pod("app/new", &[("role", "new")]);
    let other = manifest_pod("app/other", &[]);
    let overlaid = registry.overlay(snapshot(&[&new, &other]), NODE);
    assert_eq!(names(&overlaid), ["app/new", "app/other"]);
    let pod = &overlaid.pods[0];
    assert_eq!(
        pod.metadata.labels, new.metadata.labels,
        "the Pod object's labels select its policies"
    );
    assert_eq!(
        addresses(pod),
        (Some("10.0.1.5"), vec!["10.0.1.5", "fd00::5"]),
        "one address per family, as status.podIPs"
    );
    assert_eq!(
        pod.spec.as_ref().and_then(|s| s.node_name.as_deref()),
        Some(NODE)
    );
    assert!(
        Arc::ptr_eq(&overlaid.pods[1], &other),
        "other pods untouched"
    );
}

#[test]
fn a_pod_without_a_pod_object_is_compiled_with_no_labels_in_name_order() {
    let mut registry = CniRegistry::default();
    registry.add(
        &attachment("c1", "b/unknown", &["veth1"], &["10.0.1.5"]),
        ("veth1".to_owned(), 7),
    );
    let first = manifest_pod("a/first", &[]);
    let last = manifest_pod("c/last", &[]);
    let overlaid = registry.overlay(snapshot(&[&first, &last]), NODE);
    assert_eq!(
        names(&overlaid),
        ["a/first", "b/unknown", "c/last"],
        "sorted as the store yields pods"
    );
    let provisional = &overlaid.pods[1];
    assert_eq!(provisional.metadata.labels, None);
    assert_eq!(addresses(provisional), (Some("10.0.1.5"), vec!["10.0.1.5"]));
    assert_eq!(
        provisional
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref()),
        Some(NODE)
    );
}

#[test]
fn the_built_pod_is_reused_until_the_manifests_pod_changes() {
    let mut registry = CniRegistry::default();
    registry.add(
        &attachment("c1", "app/new", &["veth1"], &["10.0.1.5"]),
        ("veth1".to_owned(), 7),
    );
    let provisional = registry.overlay(Snapshot::default(), NODE).pods[0].clone();
    let again = registry.overlay(Snapshot::default(), NODE).pods[0].clone();
    assert!(
        Arc::ptr_eq(&provisional, &again),
        "the provisional pod, reused"
    );
    let new = manifest_pod("app/new", &[("role", "new")]);
    let built = registry.overlay(snapshot(&[&new]), NODE).pods[0].clone();
    assert!(
        !Arc::ptr_eq(&built, &provisional),
        "rebuilt when the Pod object arrives"
    );
    let again = registry.overlay(snapshot(&[&new]), NODE).pods[0].clone();
    assert!(
        Arc::ptr_eq(&built, &again),
        "the same Arc while the Pod object is"
    );
    let relabelled = manifest_pod("app/new", &[("role", "other")]);
    let rebuilt = registry.overlay(snapshot(&[&relabelled]), NODE).pods[0].clone();
    assert!(!Arc::ptr_eq(&rebuilt, &built));
    assert_eq!(rebuilt.metadata.labels, relabelled.metadata.labels);
    // A Pod object that already says what the plugin reported is used as is.
    let current = Arc::new((*rebuilt).clone());
    let overlaid = registry.overlay(snapshot(&[&current]), NODE);
    assert!(Arc::ptr_eq(&overlaid.pods[0], &current));
}

#[test]
fn a_pod_has_one_attachment_and_an_unchanged_add_changes_nothing() {
    let mut registry = CniRegistry::default();
    let first = attachment("c1", "app/new", &["veth1"], &["10.0.1.5"]);
    assert!(registry.add(&first, ("veth1".to_owned(), 7)));
    assert!(
        !registry.add(&first, ("veth1".to_owned(), 7)),
        "ADD retried"
    );
    assert!(
        registry.add(&first, ("veth1".to_owned(), 8)),
        "the interface was recreated"
    );
    let sandbox = attachment("c2", "app/new", &["veth2"], &["10.0.1.9"]);
    assert!(registry.add(&sandbox, ("veth2".to_owned(), 9)));
    assert_eq!(
        registry.get(&first.id),
        None,
        "the old sandbox is forgotten"
    );
    let pod = netseg_policy::PodRef::new("app", "new");
    assert_eq!(registry.interface_of(&pod), Some(9));
    assert_eq!(registry.interfaces().collect::<Vec<_>>(), [("veth2", 9)]);
    let view = NodeView {
        links: vec![link("veth1", 7, true)],
        ..NodeView::default()
    };
    assert!(
        registry.retain_present(&view),
        "veth2 is gone: a DEL that never came"
    );
    assert_eq!(registry.interface_of(&pod), None);
}

fn link(name: &str, ifindex: u32, peer_elsewhere: bool) -> NodeLink {
    NodeLink {
        ifindex,
        name: name.to_owned(),
        peer_elsewhere,
    }
}

fn view_with_routes(routes: &[(&str, u32)]) -> NodeView {
    NodeView {
        links: vec![
            link("cni0", 2, false),
            link("br1", 3, false),
            link("veth1", 7, true),
            link("veth2", 8, true),
            link("cali1", 9, true),
        ],
        routes: routes
            .iter()
            .map(|&(network, oif)| (network.parse().expect("a network"), oif))
            .collect(),
        addresses: Vec::new(),
    }
}

#[test]
fn add_picks_the_veth_of_prev_result_or_the_interface_a_host_route_leads_to() {
    let view = view_with_routes(&[("10.0.1.0/24", 2), ("10.0.2.7/32", 9)]);
    let resolve =
        |host: &[&str], ip: &str| resolve_interface(&attachment("c", "a/p", host, &[ip]), &view);
    assert_eq!(
        resolve(&["veth1"], "10.0.1.5").unwrap(),
        ("veth1".to_owned(), 7)
    );
    assert_eq!(
        resolve(&["cni0", "veth2"], "10.0.1.5").unwrap(),
        ("veth2".to_owned(), 8),
        "of a bridge and its port, the veth"
    );
    assert_eq!(
        resolve(&["gone0", "veth1"], "10.0.1.5").unwrap(),
        ("veth1".to_owned(), 7),
        "only one of them is in the node namespace"
    );
    assert!(matches!(
        resolve(&["gone0"], "10.0.1.5"),
        Err(ResolveError::Missing { .. })
    ));
    assert!(matches!(
        resolve(&["cni0", "br1"], "10.0.1.5"),
        Err(ResolveError::Ambiguous { .. })
    ));
    assert_eq!(
        resolve(&[], "10.0.2.7").unwrap(),
        ("cali1".to_owned(), 9),
        "no host interface: the one its address alone is routed to"
    );
    assert!(
        matches!(resolve(&[], "10.0.1.5"), Err(ResolveError::NoRoute)),
        "a bridge other pods share is not this pod's"
    );
    assert!(
        matches!(resolve(&[], "10.9.9.9"), Err(ResolveError::NoRoute)),
        "no route at all"
    );
}
