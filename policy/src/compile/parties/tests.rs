use std::net::IpAddr;
use std::sync::Arc;

use serde_json::json;

use crate::fixtures::{NODE, namespace, object, pod, segment, shop, zones};
use crate::{CompileOptions, Compiled, Compiler, Snapshot};

fn options() -> CompileOptions {
    CompileOptions {
        node_name: NODE.to_string(),
        ..CompileOptions::default()
    }
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("test address")
}

/// The Segments of the pod at `address`, by name.
fn segments_of_pod(compiled: &Compiled, address: &str) -> Vec<String> {
    let party = &compiled.pod_addresses[&ip(address)];
    party.segments.iter().map(ToString::to_string).collect()
}

fn segments_of_address(compiled: &Compiled, address: &str) -> Vec<String> {
    (compiled.segment_networks.segments_of(ip(address)).iter())
        .map(ToString::to_string)
        .collect()
}

/// The shop with Segments `front` (namespace shop), `data` (namespace
/// data) and `web` (app=web in any namespace).
fn zoned_shop() -> Snapshot {
    let mut snapshot = shop();
    snapshot.segments = zones();
    snapshot.segments.push(segment(
        "web",
        json!({"members": [{"pods": {"namespaceSelector": {},
                                     "podSelector": {"matchLabels": {"app": "web"}}}}]}),
    ));
    snapshot
}

#[test]
fn a_pod_is_a_member_of_every_segment_that_selects_it() {
    let compiled = Compiler::new().compile(&zoned_shop(), &options());
    assert_eq!(segments_of_pod(&compiled, "10.0.0.1"), ["front", "web"]);
    assert_eq!(segments_of_pod(&compiled, "10.0.0.2"), ["front"]);
    assert_eq!(segments_of_pod(&compiled, "10.0.1.1"), ["data"]);
}

#[test]
fn an_address_no_pod_holds_is_a_member_by_the_networks_that_contain_it() {
    let mut snapshot = zoned_shop();
    snapshot.segments.extend([
        segment(
            "outside",
            json!({"members": [{"networks": ["203.0.113.0/24", "10.0.0.0/8"]}]}),
        ),
        segment(
            "partners",
            json!({"members": [{"networks": ["203.0.113.128/25", "2001:db8::/64"]}]}),
        ),
    ]);
    let compiled = Compiler::new().compile(&snapshot, &options());
    assert_eq!(
        segments_of_address(&compiled, "203.0.113.200"),
        ["outside", "partners"]
    );
    assert_eq!(segments_of_address(&compiled, "203.0.113.1"), ["outside"]);
    assert_eq!(segments_of_address(&compiled, "2001:db8::7"), ["partners"]);
    assert!(segments_of_address(&compiled, "192.0.2.1").is_empty());
    assert_eq!(
        segments_of_pod(&compiled, "10.0.0.1"),
        ["front", "web"],
        "a pod address in a Segment's network is a member by selector only"
    );
}

#[test]
fn a_pod_is_named_with_its_workload_and_labels() {
    let mut snapshot = shop();
    snapshot.pods[0] = object(json!({
        "metadata": {"namespace": "shop", "name": "web-5d4f8c9b7-x2x9k",
            "labels": {"app": "web", "pod-template-hash": "5d4f8c9b7"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "name": "web-5d4f8c9b7", "uid": "u", "controller": true}]},
        "spec": {"nodeName": NODE, "containers": [{"name": "c", "image": "i"}]},
        "status": {"phase": "Running", "podIPs": [{"ip": "10.0.0.1"}, {"ip": "fd00::1"}]},
    }));
    let compiled = Compiler::new().compile(&snapshot, &options());
    let web = &compiled.pod_addresses[&ip("10.0.0.1")];
    assert_eq!(web.pod.to_string(), "shop/web-5d4f8c9b7-x2x9k");
    let workload = web.workload.as_ref().map(ToString::to_string);
    assert_eq!(workload.as_deref(), Some("Deployment/web"));
    assert_eq!(web.labels.get("app").map(String::as_str), Some("web"));
    assert!(
        Arc::ptr_eq(web, &compiled.pod_addresses[&ip("fd00::1")]),
        "both addresses of a pod share its party"
    );
    assert_eq!(compiled.pod_addresses[&ip("10.0.0.2")].workload, None);
}

#[test]
fn a_recompile_keeps_parties_until_what_they_name_changes() {
    let mut compiler = Compiler::new();
    let mut snapshot = zoned_shop();
    let first = compiler.compile(&snapshot, &options());
    let again = compiler.compile(&snapshot, &options());
    for (address, party) in &first.pod_addresses {
        assert!(Arc::ptr_eq(party, &again.pod_addresses[address]));
    }
    // Namespace data moves to zone shop: db leaves `data` for `front`.
    snapshot.namespaces[1] = namespace("data", json!({"zone": "shop"}));
    let relabelled = compiler.compile(&snapshot, &options());
    assert_eq!(segments_of_pod(&relabelled, "10.0.1.1"), ["front"]);
    assert!(Arc::ptr_eq(
        &again.pod_addresses[&ip("10.0.0.1")],
        &relabelled.pod_addresses[&ip("10.0.0.1")]
    ));
    // A pod added first moves every other one down the snapshot.
    (snapshot.pods).insert(0, pod("shop", "new", json!({"app": "web"}), "10.0.0.9"));
    let added = compiler.compile(&snapshot, &options());
    assert_eq!(segments_of_pod(&added, "10.0.0.9"), ["front", "web"]);
    for address in ["10.0.0.1", "10.0.0.2", "10.0.1.1"] {
        let party = &added.pod_addresses[&ip(address)];
        assert!(Arc::ptr_eq(party, &relabelled.pod_addresses[&ip(address)]));
    }
    // A new Segment takes in every pod.
    snapshot
        .segments
        .push(segment("all", json!({"members": [{"namespaces": {}}]})));
    let segmented = compiler.compile(&snapshot, &options());
    assert_eq!(segments_of_pod(&segmented, "10.0.0.2"), ["all", "front"]);
    assert_eq!(segments_of_pod(&segmented, "10.0.1.1"), ["all", "front"]);
    let fresh = Compiler::new().compile(&snapshot, &options());
    assert_eq!(
        segmented.pod_addresses, fresh.pod_addresses,
        "a compiler with history names what a new one does"
    );
}
