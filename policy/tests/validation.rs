//! validate_*: every problem named by its field path.

mod common;

use common::{NODE, namespace, pod, policy, with_ports};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use netseg_policy::{FieldProblem, validate_namespace, validate_network_policy, validate_pod};
use serde_json::{Value, json};

fn fields(p: &NetworkPolicy) -> Vec<String> {
    validate_network_policy(p)
        .into_iter()
        .map(|e| e.field)
        .collect()
}

fn ingress_ports(ports: Value) -> NetworkPolicy {
    policy(
        "x",
        "p",
        json!({"podSelector": {}, "ingress": [{"ports": ports}]}),
    )
}

fn ingress_peer(peer: Value) -> NetworkPolicy {
    policy(
        "x",
        "p",
        json!({"podSelector": {}, "ingress": [{"from": [{"podSelector": {}}, peer]}]}),
    )
}

#[test]
fn valid_policies_have_no_errors() {
    let p = policy(
        "x",
        "p",
        json!({
            "podSelector": {"matchExpressions": [{"key": "a", "operator": "Exists"}]},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}], "ports": [{"port": 1, "endPort": 65535}, {"port": "http", "protocol": "SCTP"}]}],
            "egress": [{"to": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "db"}}}]}],
        }),
    );
    assert_eq!(validate_network_policy(&p), vec![]);
    // A spec-less policy is the defaulted one: valid.
    let bare: NetworkPolicy =
        serde_json::from_value(json!({"metadata": {"namespace": "x", "name": "p"}})).unwrap();
    assert_eq!(validate_network_policy(&bare), vec![]);
}

#[test]
fn metadata() {
    let p: NetworkPolicy = serde_json::from_value(json!({"metadata": {}, "spec": {}})).unwrap();
    assert_eq!(fields(&p), ["metadata.name", "metadata.namespace"]);
    let errors = validate_network_policy(&p);
    assert_eq!(errors[0].problem, FieldProblem::Required);
    assert_eq!(errors[0].to_string(), "metadata.name: required value");
    let p: NetworkPolicy =
        serde_json::from_value(json!({"metadata": {"name": "Bad_Name", "namespace": "x"}}))
            .unwrap();
    assert_eq!(fields(&p), ["metadata.name"]);
}

#[test]
fn selectors() {
    let p = policy(
        "x",
        "p",
        json!({"podSelector": {"matchExpressions": [
        {"key": "a", "operator": "Equals", "values": ["b"]},
        {"key": "a", "operator": "In"},
        {"key": "a", "operator": "NotIn", "values": []},
        {"key": "a", "operator": "Exists", "values": ["b"]},
        {"key": "a", "operator": "DoesNotExist", "values": ["b"]},
        {"key": "-bad", "operator": "Exists"},
    ], "matchLabels": {"app": "not valid"}}}),
    );
    assert_eq!(
        fields(&p),
        [
            "spec.podSelector.matchLabels[app]",
            "spec.podSelector.matchExpressions[0].operator",
            "spec.podSelector.matchExpressions[1].values",
            "spec.podSelector.matchExpressions[2].values",
            "spec.podSelector.matchExpressions[3].values",
            "spec.podSelector.matchExpressions[4].values",
            "spec.podSelector.matchExpressions[5].key",
        ]
    );
    let p = ingress_peer(
        json!({"namespaceSelector": {"matchExpressions": [{"key": "a", "operator": "in", "values": ["b"]}]}}),
    );
    assert_eq!(
        fields(&p),
        ["spec.ingress[0].from[1].namespaceSelector.matchExpressions[0].operator"]
    );
}

#[test]
fn policy_types() {
    let p = policy(
        "x",
        "p",
        json!({"podSelector": {}, "policyTypes": ["Ingress", "ingress"]}),
    );
    assert_eq!(fields(&p), ["spec.policyTypes[1]"]);
    let p = policy(
        "x",
        "p",
        json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress", "Ingress"]}),
    );
    assert_eq!(fields(&p), ["spec.policyTypes"]);
}

#[test]
fn peers_and_ip_blocks() {
    for (peer, expected) in [
        (json!({}), "spec.ingress[0].from[1]"),
        (
            json!({"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}),
            "spec.ingress[0].from[1]",
        ),
        (
            json!({"ipBlock": {"cidr": "10.0.0.0/33"}}),
            "spec.ingress[0].from[1].ipBlock.cidr",
        ),
        (
            json!({"ipBlock": {"cidr": "10.0.0.1"}}),
            "spec.ingress[0].from[1].ipBlock.cidr",
        ),
        (
            json!({"ipBlock": {"cidr": "nonsense/8"}}),
            "spec.ingress[0].from[1].ipBlock.cidr",
        ),
        (
            json!({"ipBlock": {"cidr": "10.0.0.0/8", "except": ["11.0.0.0/16"]}}),
            "spec.ingress[0].from[1].ipBlock.except[0]",
        ),
        (
            json!({"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.0.0.0/8"]}}),
            "spec.ingress[0].from[1].ipBlock.except[0]",
        ),
        (
            json!({"ipBlock": {"cidr": "10.0.0.0/8", "except": ["::/64"]}}),
            "spec.ingress[0].from[1].ipBlock.except[0]",
        ),
        (
            json!({"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.0.0.0/16", "bad"]}}),
            "spec.ingress[0].from[1].ipBlock.except[1]",
        ),
    ] {
        assert_eq!(fields(&ingress_peer(peer.clone())), [expected], "{peer}");
    }
    let egress = policy(
        "x",
        "p",
        json!({"podSelector": {}, "egress": [{}, {"to": [{"ipBlock": {"cidr": "::/129"}}]}]}),
    );
    assert_eq!(fields(&egress), ["spec.egress[1].to[0].ipBlock.cidr"]);
}

#[test]
fn ports() {
    for (port, expected) in [
        (json!({"port": 0}), "spec.ingress[0].ports[1].port"),
        (json!({"port": 65536}), "spec.ingress[0].ports[1].port"),
        (
            json!({"port": 80, "endPort": 79}),
            "spec.ingress[0].ports[1].endPort",
        ),
        (
            json!({"port": 80, "endPort": 65536}),
            "spec.ingress[0].ports[1].endPort",
        ),
        (json!({"endPort": 90}), "spec.ingress[0].ports[1].endPort"),
        (
            json!({"port": "http", "endPort": 90}),
            "spec.ingress[0].ports[1].endPort",
        ),
        (json!({"port": "80"}), "spec.ingress[0].ports[1].port"),
        (
            json!({"port": "Not-A-Name"}),
            "spec.ingress[0].ports[1].port",
        ),
        (
            json!({"protocol": "ICMP"}),
            "spec.ingress[0].ports[1].protocol",
        ),
        (
            json!({"protocol": "tcp", "port": 80}),
            "spec.ingress[0].ports[1].protocol",
        ),
    ] {
        let p = ingress_ports(json!([{"port": 80}, port]));
        assert_eq!(fields(&p), [expected], "{port}");
    }
    let errors = validate_network_policy(&ingress_ports(
        json!([{"port": 80}, {"port": 80, "endPort": 79}]),
    ));
    assert_eq!(
        errors[0].to_string(),
        "spec.ingress[0].ports[1].endPort: invalid value \"79\": must be greater than or equal to port (80)"
    );
}

#[test]
fn pods() {
    let good = with_ports(
        pod(
            "x",
            "a",
            json!({"app": "web"}),
            NODE,
            &["10.0.0.1", "fd00::1"],
        ),
        &[("http", 80, "TCP")],
    );
    assert_eq!(validate_pod(&good), vec![]);
    let bad = with_ports(
        pod(
            "x",
            "a",
            json!({"bad key!": "v"}),
            NODE,
            &["10.0.0.1", "10.0.0.2", "not-an-ip"],
        ),
        &[
            ("http", 0, "TCP"),
            ("Bad Name", 80, "TCP"),
            ("dns", 53, "ICMP"),
        ],
    );
    let fields: Vec<String> = validate_pod(&bad).into_iter().map(|e| e.field).collect();
    assert_eq!(
        fields,
        [
            "metadata.labels",
            "spec.containers[0].ports[0].containerPort",
            "spec.containers[0].ports[1].name",
            "spec.containers[0].ports[2].protocol",
            "status.podIPs[1].ip",
            "status.podIPs[2].ip",
        ]
    );
    let mut mismatched = pod("x", "a", json!({}), NODE, &["10.0.0.1"]);
    mismatched.status.as_mut().unwrap().pod_ip = Some("10.0.0.2".into());
    let fields: Vec<String> = validate_pod(&mismatched)
        .into_iter()
        .map(|e| e.field)
        .collect();
    assert_eq!(fields, ["status.podIP"]);
}

#[test]
fn namespaces() {
    assert_eq!(
        validate_namespace(&namespace("x", json!({"team": "a"}))),
        vec![]
    );
    let fields: Vec<String> = validate_namespace(&namespace("X_", json!({"team": "a b"})))
        .into_iter()
        .map(|e| e.field)
        .collect();
    assert_eq!(fields, ["metadata.name", "metadata.labels[team]"]);
}

#[test]
fn the_compiler_never_panics_on_invalid_objects() {
    let mut c = common::Cluster::new(netseg_policy::DefaultAction::Allow);
    c.snapshot
        .pods
        .push(pod("x", "a", json!({}), NODE, &["not-an-ip"]).into());
    c.snapshot
        .pods
        .push(pod("x", "b", json!({}), NODE, &["10.0.0.1"]).into());
    c.snapshot
        .namespaces
        .push(namespace("Bad!", json!({})).into());
    c.snapshot
        .network_policies
        .push(ingress_ports(json!([{"port": -1}])).into());
    c.snapshot.network_policies.push(std::sync::Arc::new(
        serde_json::from_value(json!({"metadata": {}})).unwrap(),
    ));
    let m = c.compile();
    assert_eq!(m.endpoints.len(), 1, "only the valid pod is an endpoint");
    assert!(c.allowed(
        &m,
        "x/b",
        netseg_policy::Direction::Ingress,
        common::ip("10.0.0.2"),
        common::TCP,
        80
    ));
}
