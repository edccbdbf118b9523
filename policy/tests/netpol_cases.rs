//! The upstream NetworkPolicy e2e connectivity cases (shared/NETPOL-CASES.md),
//! one test per policy shape, on the full 3x3 model. Every probe is checked
//! both through the compiled maps and the reference evaluator.

mod common;

use common::{Cluster, SCTP, TCP, UDP, ns_of};
use serde_json::json;

fn all(_: &str, _: &str) -> bool {
    true
}

#[test]
fn default_deny_ingress_over_tcp_udp_and_sctp() {
    // Cases 1, 43, 46.
    let mut c = Cluster::model_3x3();
    c.add(
        "x",
        "deny",
        json!({"podSelector": {}, "policyTypes": ["Ingress"]}),
    );
    for proto in [TCP, UDP, SCTP] {
        c.expect_matrix(proto, 80, |_, to| ns_of(to) != "x");
    }
}

#[test]
fn default_deny_all() {
    // Case 2.
    let mut c = Cluster::model_3x3();
    c.add(
        "x",
        "deny",
        json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
    );
    c.expect_matrix(TCP, 80, |from, to| ns_of(to) != "x" && ns_of(from) != "x");
}

#[test]
fn pod_selector_peer_in_own_namespace() {
    // Cases 3 and 7 (matchLabels and matchExpressions spell the same).
    for peer in [
        json!({"podSelector": {"matchLabels": {"pod": "b"}}}),
        json!({"podSelector": {"matchExpressions": [{"key": "pod", "operator": "In", "values": ["b"]}]}}),
    ] {
        let mut c = Cluster::model_3x3();
        c.add(
            "x",
            "p",
            json!({"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"from": [peer]}]}),
        );
        c.expect_matrix(TCP, 80, |from, to| to != "x/a" || from == "x/b");
    }
}

#[test]
fn allow_all_peers_for_one_target_over_namespace_deny() {
    // Case 4.
    let mut c = Cluster::model_3x3();
    c.add(
        "x",
        "deny",
        json!({"podSelector": {}, "policyTypes": ["Ingress"]}),
    );
    c.add(
        "x",
        "allow-a",
        json!({
            "podSelector": {"matchLabels": {"pod": "a"}},
            "ingress": [{"from": [{"podSelector": {}, "namespaceSelector": {}}]}],
        }),
    );
    c.expect_matrix(TCP, 80, |_, to| ns_of(to) != "x" || to == "x/a");
}

#[test]
fn empty_namespace_selector_selects_every_namespace() {
    // Case 5.
    let mut c = Cluster::model_3x3();
    c.add("x", "p", json!({"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"from": [{"namespaceSelector": {}}]}]}));
    c.expect_matrix(TCP, 80, all);
}

#[test]
fn namespace_selector_by_labels_expressions_and_default_name_label() {
    // Cases 6, 8, 41.
    for selector in [
        json!({"matchLabels": {"ns": "y"}}),
        json!({"matchExpressions": [{"key": "ns", "operator": "In", "values": ["y"]}]}),
        json!({"matchLabels": {"kubernetes.io/metadata.name": "y"}}),
    ] {
        let mut c = Cluster::model_3x3();
        c.add("x", "p", json!({"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"from": [{"namespaceSelector": selector}]}]}));
        c.expect_matrix(TCP, 80, |from, to| to != "x/a" || ns_of(from) == "y");
    }
}

#[test]
fn two_peers_are_or() {
    // Case 9.
    let mut c = Cluster::model_3x3();
    c.add("x", "p", json!({
        "podSelector": {"matchLabels": {"pod": "a"}},
        "ingress": [{"from": [
            {"namespaceSelector": {"matchExpressions": [{"key": "ns", "operator": "NotIn", "values": ["x"]}]}},
            {"podSelector": {"matchLabels": {"pod": "b"}}},
        ]}],
    }));
    c.expect_matrix(TCP, 80, |from, to| {
        to != "x/a" || ns_of(from) != "x" || from == "x/b"
    });
}

#[test]
fn pod_and_namespace_selector_in_one_peer_are_and() {
    // Cases 10, 11, 13, 45, 48.
    let mut c = Cluster::model_3x3();
    c.add("x", "p", json!({
        "podSelector": {"matchLabels": {"pod": "a"}},
        "ingress": [{"from": [{
            "namespaceSelector": {"matchExpressions": [{"key": "ns", "operator": "NotIn", "values": ["x"]}]},
            "podSelector": {"matchExpressions": [{"key": "pod", "operator": "In", "values": ["b", "c"]}]},
        }]}],
    }));
    let expected =
        |from: &str, to: &str| to != "x/a" || (ns_of(from) != "x" && !from.ends_with("/a"));
    for proto in [TCP, UDP, SCTP] {
        c.expect_matrix(proto, 80, expected);
    }
}

#[test]
fn any_of_several_pod_selectors() {
    // Case 12.
    let mut c = Cluster::model_3x3();
    c.add("x", "p", json!({
        "podSelector": {"matchLabels": {"pod": "a"}},
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "b"}}}, {"podSelector": {"matchLabels": {"pod": "c"}}}]}],
    }));
    c.expect_matrix(TCP, 80, |from, to| {
        to != "x/a" || from == "x/b" || from == "x/c"
    });
}

#[test]
fn numeric_port_from_namespace() {
    // Cases 14, 44, 47.
    for proto in ["TCP", "UDP", "SCTP"] {
        let mut c = Cluster::model_3x3();
        c.add("x", "p", json!({
            "podSelector": {"matchLabels": {"pod": "a"}},
            "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}], "ports": [{"port": 81, "protocol": proto}]}],
        }));
        let number = common::ports_protocol(proto);
        c.expect_matrix(number, 81, |from, to| to != "x/a" || ns_of(from) == "y");
        c.expect_matrix(number, 80, |_, to| to != "x/a");
    }
}

#[test]
fn stacked_policies_add_up() {
    // Case 15.
    let mut c = Cluster::model_3x3();
    let spec = |port: u16| {
        json!({
            "podSelector": {"matchLabels": {"pod": "a"}},
            "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}], "ports": [{"port": port}]}],
        })
    };
    c.add("x", "p81", spec(81));
    c.expect_matrix(TCP, 81, |from, to| to != "x/a" || ns_of(from) == "y");
    c.expect_matrix(TCP, 80, |_, to| to != "x/a");
    c.add("x", "p80", spec(80));
    c.expect_matrix(TCP, 80, |from, to| to != "x/a" || ns_of(from) == "y");
}

#[test]
fn allow_all_rule_and_its_precedence_over_a_port_rule() {
    // Cases 16, 31.
    let mut c = Cluster::model_3x3();
    c.add(
        "x",
        "only-80",
        json!({"podSelector": {}, "ingress": [{"ports": [{"port": 80}]}]}),
    );
    c.expect_matrix(TCP, 81, |_, to| ns_of(to) != "x");
    c.add("x", "all", json!({"podSelector": {}, "ingress": [{}]}));
    c.expect_matrix(TCP, 80, all);
    c.expect_matrix(TCP, 81, all);
}

#[test]
fn egress_allow_all_takes_precedence_over_a_port_rule() {
    // Case 32.
    let mut c = Cluster::model_3x3();
    c.add("x", "only-80", json!({"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"ports": [{"port": 80}]}]}));
    c.expect_matrix(TCP, 81, |from, _| ns_of(from) != "x");
    c.add(
        "x",
        "all",
        json!({"podSelector": {}, "policyTypes": ["Egress"], "egress": [{}]}),
    );
    c.expect_matrix(TCP, 81, all);
}

#[test]
fn named_ingress_ports_resolve_at_the_destination() {
    // Cases 17, 18.
    let mut c = Cluster::model_3x3();
    c.add(
        "x",
        "p",
        json!({"podSelector": {}, "ingress": [{"ports": [{"port": "serve-81-tcp"}]}]}),
    );
    c.expect_matrix(TCP, 81, all);
    c.expect_matrix(TCP, 80, |_, to| ns_of(to) != "x");
    let mut c = Cluster::model_3x3();
    c.add("x", "p", json!({
        "podSelector": {"matchLabels": {"pod": "a"}},
        "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}], "ports": [{"port": "serve-80-tcp"}]}],
    }));
    c.expect_matrix(TCP, 80, |from, to| to != "x/a" || ns_of(from) == "y");
    c.expect_matrix(TCP, 81, |_, to| to != "x/a");
}

#[test]
fn named_egress_port() {
    // Case 19.
    let mut c = Cluster::model_3x3();
    c.add("x", "p", json!({"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"ports": [{"port": "serve-80-tcp"}]}]}));
    c.expect_matrix(TCP, 80, all);
    c.expect_matrix(TCP, 81, |from, _| ns_of(from) != "x");
}

#[test]
fn updates_of_policies_namespaces_and_pods() {
    // Cases 20, 21, 22, 24, 33.
    let mut c = Cluster::model_3x3();
    c.add("x", "p", json!({"podSelector": {}, "ingress": [{}]}));
    c.expect_matrix(TCP, 81, all);
    c.remove_policies();
    c.add("x", "p", json!({"podSelector": {}, "ingress": []}));
    c.expect_matrix(TCP, 81, |_, to| ns_of(to) != "x");
    c.remove_policies();
    c.expect_matrix(TCP, 81, all);

    c.add(
        "x",
        "from-updated",
        json!({
            "podSelector": {"matchLabels": {"pod": "a"}},
            "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"ns2": "updated"}}}]}],
        }),
    );
    c.expect_matrix(TCP, 80, |_, to| to != "x/a");
    c.snapshot.namespaces[1] = common::namespace("y", json!({"ns": "y", "ns2": "updated"})).into();
    c.expect_matrix(TCP, 80, |from, to| to != "x/a" || ns_of(from) == "y");

    c.remove_policies();
    c.add(
        "x",
        "deny-isolated",
        json!({"podSelector": {"matchLabels": {"target": "isolated"}}, "policyTypes": ["Ingress"]}),
    );
    c.expect_matrix(TCP, 80, all);
    let labels = std::sync::Arc::make_mut(&mut c.snapshot.pods[0])
        .metadata
        .labels
        .get_or_insert_default();
    labels.insert("target".into(), "isolated".into());
    c.expect_matrix(TCP, 80, |_, to| to != "x/a");
}

#[test]
fn pod_selector_only_stays_in_the_policy_namespace() {
    // Case 23.
    let mut c = Cluster::model_3x3();
    c.add(
        "x",
        "p",
        json!({"podSelector": {}, "ingress": [{"from": [{"podSelector": {}}]}]}),
    );
    c.expect_matrix(TCP, 80, |from, to| ns_of(to) != "x" || ns_of(from) == "x");
}

#[test]
fn empty_egress_denies_when_egress_is_a_policy_type() {
    // Cases 25, 26.
    let mut c = Cluster::model_3x3();
    c.add("x", "p", json!({"podSelector": {"matchLabels": {"pod": "a"}}, "policyTypes": ["Egress"], "egress": []}));
    c.expect_matrix(TCP, 80, |from, _| from != "x/a");
    c.remove_policies();
    c.add(
        "x",
        "p",
        json!({"podSelector": {}, "policyTypes": ["Egress"]}),
    );
    c.expect_matrix(TCP, 80, |from, _| ns_of(from) != "x");
}

#[test]
fn ingress_and_egress_together() {
    // Case 27.
    let mut c = Cluster::model_3x3();
    c.add(
        "x",
        "p",
        json!({
            "podSelector": {"matchLabels": {"pod": "a"}},
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "b"}}}]}],
            "egress": [{"ports": [{"port": 80, "protocol": "TCP"}]}],
        }),
    );
    c.expect_matrix(TCP, 80, |from, to| to != "x/a" || from == "x/b");
    c.expect_matrix(TCP, 81, |from, to| {
        from != "x/a" && (to != "x/a" || from == "x/b")
    });
}

#[test]
fn client_side_egress_denies_what_the_server_allows() {
    // Cases 28, 29.
    let mut c = Cluster::model_3x3();
    let peer = |ns: &str| json!([{"namespaceSelector": {"matchLabels": {"ns": ns}}, "podSelector": {"matchLabels": {"pod": "a"}}}]);
    c.add("x", "egress", json!({"podSelector": {"matchLabels": {"pod": "a"}}, "policyTypes": ["Egress"], "egress": [{"to": peer("y")}]}));
    c.add("y", "ingress", json!({"podSelector": {"matchExpressions": [{"key": "pod", "operator": "In", "values": ["a", "b"]}]}, "ingress": [{"from": peer("x")}]}));
    c.expect_matrix(TCP, 80, |from, to| {
        let egress_ok = from != "x/a" || to == "y/a";
        let ingress_ok = !(to == "y/a" || to == "y/b") || from == "x/a";
        egress_ok && ingress_ok
    });
}

#[test]
fn protocol_without_port_allows_every_port_of_that_protocol_only() {
    // Case 30.
    let mut c = Cluster::model_3x3();
    c.add("x", "p", json!({"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"ports": [{"protocol": "TCP"}]}]}));
    c.expect_matrix(TCP, 80, all);
    c.expect_matrix(TCP, 65535, all);
    c.expect_matrix(UDP, 80, |_, to| to != "x/a");
}

#[test]
fn ip_block_egress_with_except_and_update() {
    // Cases 34, 35, 36 (IPv4 and IPv6 blocks side by side).
    let mut c = Cluster::model_3x3();
    let block = |cidr: &str, except: &[&str]| json!({"ipBlock": {"cidr": cidr, "except": except}});
    c.add(
        "x",
        "p",
        json!({
            "podSelector": {"matchLabels": {"pod": "a"}}, "policyTypes": ["Egress"],
            "egress": [{"to": [block("10.0.2.2/32", &[]), block("fd00::2:2/128", &[])]}],
        }),
    );
    c.expect_matrix(TCP, 80, |from, to| from != "x/a" || to == "y/b");
    c.remove_policies();
    c.add("x", "p", json!({
        "podSelector": {"matchLabels": {"pod": "a"}}, "policyTypes": ["Egress"],
        "egress": [{"to": [block("0.0.0.0/4", &["10.0.1.2/32"]), block("fd00::/100", &["fd00::1:2/128"])]}],
    }));
    c.expect_matrix(TCP, 80, |from, to| from != "x/a" || to != "x/b");
    c.remove_policies();
    c.add(
        "x",
        "p",
        json!({
            "podSelector": {"matchLabels": {"pod": "a"}}, "policyTypes": ["Egress"],
            "egress": [{"to": [block("10.0.1.2/32", &[]), block("fd00::1:2/128", &[])]}],
        }),
    );
    c.expect_matrix(TCP, 80, |from, to| from != "x/a" || to == "x/b");
}

#[test]
fn directions_are_independent() {
    // Case 37.
    let mut c = Cluster::model_3x3();
    c.add("x", "egress-all", json!({"podSelector": {"matchLabels": {"pod": "a"}}, "policyTypes": ["Egress"], "egress": [{}]}));
    c.expect_matrix(TCP, 80, all);
    c.add(
        "x",
        "deny-in",
        json!({"podSelector": {"matchLabels": {"pod": "a"}}, "policyTypes": ["Ingress"]}),
    );
    c.expect_matrix(TCP, 80, |_, to| to != "x/a");
}

#[test]
fn sctp_and_udp_rules_do_not_allow_tcp() {
    // Cases 38, 39, 40.
    let mut c = Cluster::model_3x3();
    c.add(
        "x",
        "deny",
        json!({"podSelector": {}, "policyTypes": ["Ingress"]}),
    );
    c.add("x", "sctp", json!({"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"ports": [{"protocol": "SCTP", "port": 81}]}]}));
    c.expect_matrix(TCP, 81, |_, to| ns_of(to) != "x");
    c.expect_matrix(SCTP, 81, |_, to| ns_of(to) != "x" || to == "x/a");
    let mut c = Cluster::model_3x3();
    c.add("x", "udp", json!({"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"ports": [{"protocol": "UDP", "port": 81}]}]}));
    c.expect_matrix(TCP, 81, |_, to| to != "x/a");
    c.expect_matrix(UDP, 81, all);
}

#[test]
fn egress_to_namespaces_not_in_a_list_by_name_label() {
    // Case 42.
    let mut c = Cluster::model_3x3();
    c.add(
        "x",
        "p",
        json!({
            "podSelector": {"matchLabels": {"pod": "a"}}, "policyTypes": ["Egress"],
            "egress": [{"to": [{"namespaceSelector": {"matchExpressions": [
                {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["y"]}]}}]}],
        }),
    );
    c.expect_matrix(TCP, 80, |from, to| from != "x/a" || ns_of(to) != "y");
}
