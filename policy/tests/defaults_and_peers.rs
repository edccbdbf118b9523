//! Default action, node traffic, and which pods count as peers and
//! endpoints.

mod common;

use common::{ICMP, NODE, NODE_IP, TCP, UDP, ip, pair, pod};
use netseg_contract::{identity, rule};
use netseg_policy::{Decider, DefaultAction, Direction, IdentityKind, PodRef, evaluate, lookup};
use serde_json::json;

const IN: Direction = Direction::Ingress;
const OUT: Direction = Direction::Egress;

#[test]
fn default_allow_and_default_deny() {
    let external = ip("203.0.113.9");
    let c = pair(DefaultAction::Allow);
    let m = c.compile();
    for dir in [IN, OUT] {
        assert!(c.allowed(&m, "x/s", dir, external, UDP, 5353));
        assert_eq!(
            lookup(&m, &PodRef::new("x", "s"), dir, external, ICMP, 0).map(|v| v.rule),
            Some(rule::DEFAULT_ALLOW)
        );
    }
    let c = pair(DefaultAction::Deny);
    let m = c.compile();
    for dir in [IN, OUT] {
        assert!(!c.allowed(&m, "x/s", dir, ip("10.0.0.2"), TCP, 80));
    }
    let peer = ip("10.0.0.2");
    assert_eq!(
        lookup(&m, &PodRef::new("x", "s"), OUT, peer, TCP, 80).map(|v| v.rule),
        Some(rule::DEFAULT_DENY)
    );
}

#[test]
fn node_traffic_is_allowed_unless_denied() {
    let node = ip(NODE_IP);
    for default_action in [DefaultAction::Allow, DefaultAction::Deny] {
        let mut c = pair(default_action);
        c.add(
            "x",
            "deny",
            json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
        );
        let m = c.compile();
        assert!(c.allowed(&m, "x/s", IN, node, TCP, 10250));
        assert!(c.allowed(&m, "x/s", IN, ip(common::NODE_IP6), TCP, 8080));
        assert_eq!(
            lookup(&m, &PodRef::new("x", "s"), IN, node, TCP, 1).map(|v| v.rule),
            Some(rule::NODE_TRAFFIC)
        );
        assert!(
            !c.allowed(&m, "x/s", OUT, node, TCP, 10250),
            "node traffic is ingress only"
        );
        let node_id = m.ipcache[&"192.168.0.10/32".parse().unwrap()];
        assert_eq!(m.identities[&node_id].kind, IdentityKind::Node);
        assert_eq!(m.identities[&node_id].to_string(), "node");
        c.options.deny_node_traffic = true;
        let m = c.compile();
        assert!(!c.allowed(&m, "x/s", IN, node, TCP, 10250));
    }
    // Not isolated, default allow: the node still gets in, by the default.
    let mut c = pair(DefaultAction::Allow);
    c.options.deny_node_traffic = true;
    let m = c.compile();
    assert!(c.allowed(&m, "x/s", IN, node, TCP, 10250));
}

#[test]
fn node_addresses_carry_the_ip_blocks_that_contain_them() {
    let mut c = pair(DefaultAction::Deny);
    c.options.deny_node_traffic = true;
    c.add("x", "p", json!({"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "192.168.0.0/24", "except": ["192.168.0.128/25"]}}]}]}));
    let m = c.compile();
    assert!(c.allowed(&m, "x/s", IN, ip(NODE_IP), TCP, 1));
    assert!(c.allowed(&m, "x/s", IN, ip("192.168.0.11"), TCP, 1));
    assert!(!c.allowed(&m, "x/s", IN, ip("192.168.0.200"), TCP, 1));
}

#[test]
fn host_network_and_finished_pods_are_not_peers_or_endpoints() {
    let mut c = pair(DefaultAction::Deny);
    c.options.deny_node_traffic = true;
    let mut host = pod("x", "host", json!({"app": "agent"}), NODE, &[NODE_IP]);
    if let Some(spec) = host.spec.as_mut() {
        spec.host_network = Some(true);
    }
    c.snapshot.pods.push(host.into());
    let mut done = pod("x", "done", json!({"app": "old"}), NODE, &["10.0.0.2"]);
    if let Some(status) = done.status.as_mut() {
        status.phase = Some("Succeeded".into());
    }
    c.snapshot.pods.push(done.into());
    c.add(
        "x",
        "p",
        json!({"podSelector": {}, "ingress": [{"from": [
            {"podSelector": {"matchLabels": {"app": "agent"}}},
            {"podSelector": {"matchLabels": {"app": "old"}}},
        ]}]}),
    );
    let m = c.compile();
    assert!(!c.allowed(&m, "x/s", IN, ip(NODE_IP), TCP, 80));
    assert!(
        !c.allowed(&m, "x/s", IN, ip("10.0.0.2"), TCP, 80),
        "10.0.0.2 belongs to the running x/c"
    );
    for name in ["host", "done"] {
        let endpoint = PodRef::new("x", name);
        assert!(!m.endpoints.contains_key(&endpoint));
        let decision = evaluate(
            &c.snapshot,
            &c.options,
            &endpoint,
            IN,
            ip("10.0.0.1"),
            TCP,
            80,
        );
        assert_eq!(decision, None, "x/{name} is not an endpoint");
    }
}

#[test]
fn pods_on_other_nodes_are_peers_not_endpoints() {
    let mut c = pair(DefaultAction::Deny);
    c.snapshot.pods.push(
        pod(
            "y",
            "remote",
            json!({"app": "client"}),
            "node-2",
            &["10.1.0.1"],
        )
        .into(),
    );
    c.add("x", "p", json!({"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "client"}}}]}]}));
    let m = c.compile();
    assert!(c.allowed(&m, "x/s", IN, ip("10.1.0.1"), TCP, 80));
    assert!(!m.endpoints.contains_key(&PodRef::new("y", "remote")));
    assert_eq!(
        lookup(
            &m,
            &PodRef::new("y", "remote"),
            OUT,
            ip("10.0.0.1"),
            TCP,
            80
        ),
        None
    );
}

#[test]
fn namespace_name_label_is_always_set() {
    let mut c = pair(DefaultAction::Deny);
    // No Namespace object for "orphan"; "y" has one that mislabels itself.
    c.snapshot
        .pods
        .push(pod("orphan", "o", json!({}), "node-2", &["10.2.0.1"]).into());
    c.snapshot
        .namespaces
        .push(common::namespace("y", json!({"kubernetes.io/metadata.name": "wrong"})).into());
    c.snapshot
        .pods
        .push(pod("y", "w", json!({}), "node-2", &["10.3.0.1"]).into());
    c.add(
        "x",
        "p",
        json!({"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {"matchExpressions": [
        {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["orphan", "y"]}]}}]}]}),
    );
    let m = c.compile();
    assert!(c.allowed(&m, "x/s", IN, ip("10.2.0.1"), TCP, 80));
    assert!(c.allowed(&m, "x/s", IN, ip("10.3.0.1"), TCP, 80));
    assert!(!c.allowed(&m, "x/s", IN, ip("10.0.0.2"), TCP, 80));
}

#[test]
fn invalid_policies_are_skipped() {
    let mut c = pair(DefaultAction::Allow);
    c.add("x", "bad-op", json!({"podSelector": {"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["b"]}]}}));
    c.add(
        "x",
        "bad-cidr",
        json!({"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/33"}}]}]}),
    );
    c.add(
        "x",
        "bad-proto",
        json!({"podSelector": {}, "ingress": [{"ports": [{"protocol": "ICMP"}]}]}),
    );
    let m = c.compile();
    assert!(c.allowed(&m, "x/s", IN, ip("10.0.0.2"), TCP, 80));
    assert!(m.verdicts.values().all(|v| v.rule().is_none()));
}

#[test]
fn an_address_shared_by_two_pods_stands_for_both() {
    let mut c = pair(DefaultAction::Deny);
    c.snapshot
        .pods
        .push(pod("x", "twin", json!({"app": "twin"}), "node-2", &["10.0.0.2"]).into());
    c.add("x", "p", json!({"podSelector": {}, "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "twin"}}}]}]}));
    let m = c.compile();
    assert!(c.allowed(&m, "x/s", IN, ip("10.0.0.2"), TCP, 80));
    let id = m.ipcache[&"10.0.0.2/32".parse().unwrap()];
    let pods: Vec<String> = m.identities[&id]
        .pods
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(pods, ["x/c", "x/twin"]);
}

#[test]
fn evaluator_names_the_allowing_rule() {
    let mut c = pair(DefaultAction::Deny);
    c.add("x", "p", json!({"podSelector": {}, "ingress": [{"ports": [{"port": 1}]}, {"ports": [{"port": 80}]}]}));
    let m = c.compile();
    let endpoint = PodRef::new("x", "s");
    let decision = evaluate(
        &c.snapshot,
        &c.options,
        &endpoint,
        IN,
        ip("10.0.0.2"),
        TCP,
        80,
    );
    let Some(Decider::Rule(rule)) = decision.map(|v| v.decided_by) else {
        panic!("not decided by a rule")
    };
    assert_eq!(
        (rule.name.as_str(), rule.index, rule.direction),
        ("p", 1, IN)
    );
    let id = lookup(&m, &endpoint, IN, ip("10.0.0.2"), TCP, 80)
        .expect("allowed")
        .rule;
    assert_eq!(m.verdicts[&id].rule(), Some(&rule));
    assert_eq!(rule.to_string(), "NetworkPolicy x/p ingress[1] (Accept)");
    assert_eq!(m.identities[&identity::WORLD].kind, IdentityKind::World);
}
