//! Table tests per policy shape beyond the upstream e2e cases: policy type
//! defaulting, selector operators, port ranges, named ports, protocols.

mod common;

use common::{Cluster, ICMP, NODE, SCTP, TCP, UDP, ip, pair, pair_server, pod, with_ports};
use netseg_contract::identity;
use netseg_policy::{Compiler, DefaultAction, Direction, PodRef};
use serde_json::json;

const IN: Direction = Direction::Ingress;
const OUT: Direction = Direction::Egress;

#[test]
fn policy_types_default_from_the_spec() {
    let external = ip("203.0.113.9");
    // No policyTypes, `egress: []`: only Ingress (an empty list is not "present").
    let mut c = pair(DefaultAction::Allow);
    c.add(
        "x",
        "p",
        json!({"podSelector": {"matchLabels": {"app": "server"}}, "egress": []}),
    );
    let m = c.compile();
    assert!(!c.allowed(&m, "x/s", IN, external, TCP, 80));
    assert!(c.allowed(&m, "x/s", OUT, external, TCP, 80));
    // Egress rules present: Ingress and Egress; no ingress rules = deny ingress.
    c.remove_policies();
    c.add("x", "p", json!({"podSelector": {"matchLabels": {"app": "server"}}, "egress": [{"ports": [{"port": 53, "protocol": "UDP"}]}]}));
    let m = c.compile();
    assert!(!c.allowed(&m, "x/s", IN, external, TCP, 80));
    assert!(c.allowed(&m, "x/s", OUT, external, UDP, 53));
    assert!(!c.allowed(&m, "x/s", OUT, external, TCP, 53));
    // policyTypes [Egress]: ingress rules are ignored and ingress stays open.
    c.remove_policies();
    c.add("x", "p", json!({"podSelector": {}, "policyTypes": ["Egress"], "ingress": [{"ports": [{"port": 1}]}]}));
    let m = c.compile();
    assert!(c.allowed(&m, "x/s", IN, external, TCP, 80));
    assert!(!c.allowed(&m, "x/s", OUT, external, TCP, 80));
    // policyTypes [] is defaulting too.
    c.remove_policies();
    c.add("x", "p", json!({"podSelector": {}, "policyTypes": []}));
    let m = c.compile();
    assert!(!c.allowed(&m, "x/s", IN, external, TCP, 80));
    assert!(c.allowed(&m, "x/s", OUT, external, TCP, 80));
}

#[test]
fn end_port_ranges_include_both_ends_and_nothing_else() {
    let peer = ip("10.0.0.2");
    let mut c = pair(DefaultAction::Deny);
    c.add(
        "x",
        "p",
        json!({"podSelector": {}, "ingress": [{"ports": [
            {"port": 1000, "endPort": 2000},
            {"port": 32768, "endPort": 65535, "protocol": "UDP"},
            {"port": 7, "endPort": 7, "protocol": "SCTP"},
        ]}]}),
    );
    let m = c.compile();
    for (proto, port, expected) in [
        (TCP, 999, false),
        (TCP, 1000, true),
        (TCP, 1024, true),
        (TCP, 1999, true),
        (TCP, 2000, true),
        (TCP, 2001, false),
        (UDP, 1000, false),
        (UDP, 32767, false),
        (UDP, 32768, true),
        (UDP, 65535, true),
        (SCTP, 6, false),
        (SCTP, 7, true),
        (SCTP, 8, false),
        (TCP, 7, false),
    ] {
        assert_eq!(
            c.allowed(&m, "x/s", IN, peer, proto, port),
            expected,
            "proto {proto} port {port}"
        );
    }
    // Ranges are prefixes, never one entry per port: 1000-2000 is 8 prefixes,
    // 32768-65535 exactly one /1, 7 one /16, plus the whole-key entry of
    // every other peer, protocol and port (the default deny).
    let ingress = m.endpoints[&PodRef::new("x", "s")].ingress_policy;
    let entries: Vec<_> = m
        .policy
        .keys()
        .filter(|k| k.policy == ingress && k.identity == identity::ANY)
        .collect();
    assert_eq!(entries.len(), 11, "{entries:?}");
}

#[test]
fn named_ingress_port_resolves_against_the_local_pod_and_its_protocol() {
    let peer = ip("10.0.0.2");
    let mut c = pair(DefaultAction::Deny);
    c.add("x", "p", json!({"podSelector": {}, "ingress": [{"ports": [{"port": "http"}, {"port": "dns", "protocol": "TCP"}]}]}));
    let m = c.compile();
    assert!(c.allowed(&m, "x/s", IN, peer, TCP, 8080));
    assert!(!c.allowed(&m, "x/s", IN, peer, TCP, 80));
    // `dns` exists only for UDP: a TCP rule on it allows nothing.
    assert!(!c.allowed(&m, "x/s", IN, peer, TCP, 53));
    assert!(!c.allowed(&m, "x/s", IN, peer, UDP, 53));
    // The client has no named ports: the same policy allows it nothing.
    assert!(!c.allowed(&m, "x/c", IN, ip("10.0.0.1"), TCP, 8080));
    let e = &m.endpoints;
    assert_ne!(
        e[&PodRef::new("x", "s")].ingress_policy,
        e[&PodRef::new("x", "c")].ingress_policy
    );
}

#[test]
fn named_egress_ports_resolve_per_destination_pod() {
    let mut c = Cluster::new(DefaultAction::Deny);
    for (name, v4, port) in [("a", "10.0.0.1", 80), ("b", "10.0.0.2", 8080)] {
        let server = pod("x", name, json!({"role": "server"}), "elsewhere", &[v4]);
        c.snapshot
            .pods
            .push(with_ports(server, &[("serve-80-tcp", port, "TCP")]).into());
    }
    c.snapshot
        .pods
        .push(pod("x", "client", json!({}), NODE, &["10.0.0.9"]).into());
    c.add("x", "p", json!({"podSelector": {}, "policyTypes": ["Egress"], "egress": [
        {"to": [{"podSelector": {"matchLabels": {"role": "server"}}}], "ports": [{"port": "serve-80-tcp"}]},
        {"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"port": "serve-80-tcp", "protocol": "UDP"}]},
    ]}));
    let m = c.compile();
    let (a, b) = (ip("10.0.0.1"), ip("10.0.0.2"));
    assert!(c.allowed(&m, "x/client", OUT, a, TCP, 80));
    assert!(!c.allowed(&m, "x/client", OUT, a, TCP, 8080));
    assert!(c.allowed(&m, "x/client", OUT, b, TCP, 8080));
    assert!(!c.allowed(&m, "x/client", OUT, b, TCP, 80));
    // Same labels, different resolution: different identities.
    assert_ne!(
        m.ipcache[&"10.0.0.1/32".parse().unwrap()],
        m.ipcache[&"10.0.0.2/32".parse().unwrap()]
    );
    // A named port has nothing to resolve against outside pods.
    assert!(!c.allowed(&m, "x/client", OUT, ip("198.51.100.1"), UDP, 80));
    assert!(!c.allowed(&m, "x/client", OUT, a, UDP, 80));
}

#[test]
fn named_egress_port_to_every_peer_reaches_every_pod_that_has_it() {
    let mut c = pair(DefaultAction::Deny);
    c.add("x", "p", json!({"podSelector": {"matchLabels": {"app": "client"}}, "policyTypes": ["Egress"], "egress": [{"ports": [{"port": "http"}]}]}));
    let m = c.compile();
    assert!(c.allowed(&m, "x/c", OUT, ip("10.0.0.1"), TCP, 8080));
    assert!(c.allowed(&m, "x/c", OUT, ip("fd00::1"), TCP, 8080));
    assert!(!c.allowed(&m, "x/c", OUT, ip("198.51.100.1"), TCP, 8080));
}

#[test]
fn a_warm_compiler_follows_a_peer_whose_named_port_moves() {
    // Only the server's resolution of `http` changes: a recompile decides
    // again the identities whose resolutions changed, and no others.
    let mut c = pair(DefaultAction::Deny);
    c.add("x", "p", json!({"podSelector": {"matchLabels": {"app": "client"}}, "policyTypes": ["Egress"], "egress": [{"ports": [{"port": "http"}]}]}));
    let mut compiler = Compiler::new();
    let before = compiler.compile(&c.snapshot, &c.options);
    assert!(c.allowed(&before, "x/c", OUT, ip("10.0.0.1"), TCP, 8080));
    c.snapshot.pods[0] = pair_server(&[("http", 8081, "TCP")]).into();
    let full = compiler.without_memo().compile(&c.snapshot, &c.options);
    let warm = compiler.compile(&c.snapshot, &c.options);
    assert!(c.allowed(&warm, "x/c", OUT, ip("10.0.0.1"), TCP, 8081));
    assert!(!c.allowed(&warm, "x/c", OUT, ip("10.0.0.1"), TCP, 8080));
    assert_eq!(warm, full, "a recompile differs from a full compile");
}

#[test]
fn a_warm_compiler_follows_a_peer_that_changes_address() {
    // The client keeps its name and labels but moves to another address:
    // the recompile may not keep the host table (or anything derived from
    // it) of the address it left.
    let mut c = pair(DefaultAction::Deny);
    c.add("x", "p", json!({"podSelector": {"matchLabels": {"app": "server"}}, "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "client"}}}]}]}));
    let mut compiler = Compiler::new();
    let before = compiler.compile(&c.snapshot, &c.options);
    assert!(c.allowed(&before, "x/s", IN, ip("10.0.0.2"), TCP, 8080));
    let moved = pod("x", "c", json!({"app": "client"}), NODE, &["10.0.0.9"]);
    c.snapshot.pods[1] = moved.into();
    let full = compiler.without_memo().compile(&c.snapshot, &c.options);
    let warm = compiler.compile(&c.snapshot, &c.options);
    assert!(c.allowed(&warm, "x/s", IN, ip("10.0.0.9"), TCP, 8080));
    assert!(!c.allowed(&warm, "x/s", IN, ip("10.0.0.2"), TCP, 8080));
    assert_eq!(warm, full, "a recompile differs from a full compile");
}

#[test]
fn icmp_and_unknown_protocols_pass_only_rules_without_ports() {
    let peer = ip("10.0.0.2");
    let mut c = pair(DefaultAction::Deny);
    c.add("x", "ports", json!({"podSelector": {}, "ingress": [{"ports": [{"protocol": "TCP"}, {"protocol": "UDP"}, {"protocol": "SCTP"}]}]}));
    let m = c.compile();
    assert!(!c.allowed(&m, "x/s", IN, peer, ICMP, 0));
    assert!(!c.allowed(&m, "x/s", IN, peer, 47, 0));
    c.add("x", "all", json!({"podSelector": {}, "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "client"}}}]}]}));
    let m = c.compile();
    assert!(c.allowed(&m, "x/s", IN, peer, ICMP, 0));
    assert!(c.allowed(&m, "x/s", IN, peer, 47, 0));
    assert!(!c.allowed(&m, "x/s", IN, ip("10.9.9.9"), ICMP, 0));
}

#[test]
fn not_in_and_does_not_exist_match_pods_without_the_label() {
    let mut c = pair(DefaultAction::Deny);
    c.snapshot
        .pods
        .push(pod("x", "t", json!({"tier": "front"}), NODE, &["10.0.0.3"]).into());
    c.add("x", "p", json!({"podSelector": {"matchLabels": {"app": "server"}}, "ingress": [
        {"from": [{"podSelector": {"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["back"]}]}}], "ports": [{"port": 1}]},
        {"from": [{"podSelector": {"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}}], "ports": [{"port": 2}]},
        {"from": [{"podSelector": {"matchExpressions": [{"key": "tier", "operator": "Exists"}]}}], "ports": [{"port": 3}]},
    ]}));
    let m = c.compile();
    let (client, tiered) = (ip("10.0.0.2"), ip("10.0.0.3"));
    for (peer, port, expected) in [
        (client, 1, true),
        (tiered, 1, true),
        (client, 2, true),
        (tiered, 2, false),
        (client, 3, false),
        (tiered, 3, true),
    ] {
        assert_eq!(
            c.allowed(&m, "x/s", IN, peer, TCP, port),
            expected,
            "{peer} port {port}"
        );
    }
}
