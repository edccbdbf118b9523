//! `nodes` egress peers (ClusterNetworkPolicy's experimental channel): they
//! select Node objects by label and match the IP addresses of their
//! `status.addresses`, whatever else holds those addresses.

mod common;

use std::sync::Arc;

use common::{NODE, TCP, ip, namespace, pod};
use netseg_contract::VERDICT_ALLOW;
use netseg_policy::{CompileOptions, Compiler, DefaultAction, Direction, PodRef, Snapshot, lookup};
use serde_json::json;

fn node(name: &str, zone: &str, address: &str) -> k8s_openapi::api::core::v1::Node {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"zone": zone}},
        "status": {"addresses": [
            {"type": "InternalIP", "address": address},
            {"type": "Hostname", "address": name},
        ]},
    }))
    .expect("node")
}

fn snapshot() -> Snapshot {
    let cnp: netseg_crd::ClusterNetworkPolicy = serde_json::from_value(json!({
        "apiVersion": "policy.networking.k8s.io/v1alpha2",
        "kind": "ClusterNetworkPolicy",
        "metadata": {"name": "kubelets-only"},
        "spec": {"tier": "Admin", "priority": 1, "subject": {"namespaces": {}},
            "egress": [
                {"action": "Accept", "to": [{"nodes": {"matchLabels": {"zone": "b"}}}],
                 "protocols": [{"tcp": {"destinationPort": {"number": 10250}}}]},
                {"action": "Deny", "to": [{"networks": ["0.0.0.0/0"]}]},
            ]},
    }))
    .expect("cnp");
    Snapshot {
        namespaces: vec![namespace("x", json!({})).into()],
        pods: vec![
            pod("x", "s", json!({}), NODE, &["10.0.0.1"]).into(),
            // A host-network pod shares its node's address: a `nodes` peer matches it.
            pod("x", "t", json!({}), "node-2", &["10.0.0.2"]).into(),
        ],
        nodes: vec![
            node("node-2", "b", "192.168.0.20").into(),
            node("node-3", "a", "192.168.0.30").into(),
        ],
        cluster_network_policies: vec![Arc::new(cnp)],
        ..Snapshot::default()
    }
}

fn allowed(snapshot: &Snapshot, peer: &str, port: u16) -> bool {
    let options = CompileOptions {
        node_name: NODE.into(),
        default_action: DefaultAction::Allow,
        ..CompileOptions::default()
    };
    let compiled = Compiler::new().compile(snapshot, &options);
    let endpoint = PodRef::new("x", "s");
    lookup(&compiled, &endpoint, Direction::Egress, ip(peer), TCP, port)
        .is_some_and(|value| value.verdict == VERDICT_ALLOW)
}

#[test]
fn a_nodes_peer_matches_the_addresses_of_the_nodes_it_selects() {
    let snapshot = snapshot();
    assert!(allowed(&snapshot, "192.168.0.20", 10250));
    assert!(
        !allowed(&snapshot, "192.168.0.20", 22),
        "other ports fall to the Deny"
    );
    assert!(
        !allowed(&snapshot, "192.168.0.30", 10250),
        "a node of zone a"
    );
    assert!(!allowed(&snapshot, "10.0.0.2", 10250), "a pod address");
}

#[test]
fn relabelling_a_node_moves_its_addresses_in_and_out() {
    let mut snapshot = snapshot();
    snapshot.nodes[1] = node("node-3", "b", "192.168.0.30").into();
    assert!(allowed(&snapshot, "192.168.0.30", 10250));
    snapshot.nodes[0] = node("node-2", "a", "192.168.0.20").into();
    assert!(!allowed(&snapshot, "192.168.0.20", 10250));
}

#[test]
fn a_warm_compiler_follows_a_node_relabel() {
    let options = CompileOptions {
        node_name: NODE.into(),
        default_action: DefaultAction::Allow,
        ..CompileOptions::default()
    };
    let mut snapshot = snapshot();
    let mut compiler = Compiler::new();
    compiler.compile(&snapshot, &options);
    snapshot.nodes[0] = node("node-2", "a", "192.168.0.20").into();
    let compiled = compiler.compile(&snapshot, &options);
    let endpoint = PodRef::new("x", "s");
    let value = lookup(
        &compiled,
        &endpoint,
        Direction::Egress,
        ip("192.168.0.20"),
        TCP,
        10250,
    );
    assert_ne!(value.map(|v| v.verdict), Some(VERDICT_ALLOW));
}
