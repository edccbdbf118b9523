//! Upstream cases #1–#21 of shared/NETPOL-CASES.md ("NetworkPolicy between
//! server and client", TCP): peer selection, ports, named ports, and the
//! first updates. Expectations are upstream's, widened to the full 3x3 model.

use netseg_testbed::Probe;
use serde_json::json;

use super::case::{Case, Model, netpol, ns_is, pod_is};

pub fn cases(m: &Model) -> Vec<Case> {
    vec![
        baseline(m),
        Case::new(m, "#1 should support a 'default-deny-ingress' policy")
            .policy(netpol("x", "deny-ingress", json!({"podSelector": {}, "policyTypes": ["Ingress"]})))
            .expect(Probe::tcp(80), |r| r.expect_peer("*", "x/*", false)),
        Case::new(m, "#2 should support a 'default-deny-all' policy")
            .policy(netpol(
                "x",
                "deny-all",
                json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
            ))
            .expect(Probe::tcp(80), |r| {
                r.expect_peer("*", "x/*", false);
                r.expect_peer("x/*", "*", false);
            }),
        case_3(m),
        case_4(m),
        Case::new(m, "#5 should enforce policy to allow ingress traffic from pods in all namespaces")
            .policy(netpol(
                "x",
                "allow-from-another-ns",
                json!({
                    "podSelector": pod_is("a"), "policyTypes": ["Ingress"],
                    "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {}}}]}],
                }),
            ))
            .expect(Probe::tcp(80), |_| {}),
        // The older suite selected namespaces by the model's own `ns` label.
        Case::new(
            m,
            "#6 should enforce policy to allow traffic only from a different namespace, based on NamespaceSelector",
        )
        .policy(netpol(
            "x",
            "allow-client-a-via-ns-selector",
            json!({
                "podSelector": pod_is("a"), "policyTypes": ["Ingress"],
                "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}]}],
            }),
        ))
        .expect(Probe::tcp(80), only_y_reaches_xa),
        Case::new(m, "#7 should enforce policy based on PodSelector with MatchExpressions")
            .policy(netpol(
                "x",
                "x-a-allows-x-b",
                json!({
                    "podSelector": pod_is("a"), "policyTypes": ["Ingress"],
                    "ingress": [{"from": [{"podSelector": {"matchExpressions": [
                        {"key": "pod", "operator": "In", "values": ["b"]}]}}]}],
                }),
            ))
            .expect(Probe::tcp(80), |r| {
                r.expect_all_ingress("x/a", false);
                r.expect("x/b", "x/a", true);
            }),
        Case::new(m, "#8 should enforce policy based on NamespaceSelector with MatchExpressions")
            .policy(netpol(
                "x",
                "allow-ns-y-match-selector",
                json!({
                    "podSelector": pod_is("a"), "policyTypes": ["Ingress"],
                    "ingress": [{"from": [{"namespaceSelector": {"matchExpressions": [
                        {"key": "ns", "operator": "In", "values": ["y"]}]}}]}],
                }),
            ))
            .expect(Probe::tcp(80), only_y_reaches_xa),
        Case::new(m, "#9 should enforce policy based on PodSelector or NamespaceSelector")
            .policy(netpol(
                "x",
                "allow-ns-y-match-selector",
                json!({
                    "podSelector": pod_is("a"), "policyTypes": ["Ingress"],
                    "ingress": [{"from": [
                        {"namespaceSelector": not_in_namespace("x")},
                        {"podSelector": pod_is("b")},
                    ]}],
                }),
            ))
            .expect(Probe::tcp(80), |r| {
                r.expect("x/a", "x/a", false);
                r.expect("x/c", "x/a", false);
            }),
        Case::new(m, "#10 should enforce policy based on PodSelector and NamespaceSelector")
            .policy(netpol(
                "x",
                "allow-ns-y-podselector-and-nsselector",
                json!({
                    "podSelector": pod_is("a"), "policyTypes": ["Ingress"],
                    "ingress": [{"from": [{"namespaceSelector": not_in_namespace("x"), "podSelector": pod_is("b")}]}],
                }),
            ))
            .expect(Probe::tcp(80), |r| {
                r.expect_all_ingress("x/a", false);
                r.expect("y/b", "x/a", true);
                r.expect("z/b", "x/a", true);
            }),
        Case::new(m, "#11 should enforce policy based on Multiple PodSelectors and NamespaceSelectors")
            .policy(netpol(
                "x",
                "allow-ns-y-z-pod-b-c",
                json!({
                    "podSelector": pod_is("a"), "policyTypes": ["Ingress"],
                    "ingress": [{"from": [{
                        "namespaceSelector": not_in_namespace("x"),
                        "podSelector": {"matchExpressions": [{"key": "pod", "operator": "In", "values": ["b", "c"]}]},
                    }]}],
                }),
            ))
            // Upstream's subset has no z pods; in the full model z/a is the
            // second pod whose namespace matches and whose name does not.
            .expect(Probe::tcp(80), |r| {
                r.expect_peer("x/*", "x/a", false);
                r.expect("y/a", "x/a", false);
                r.expect("z/a", "x/a", false);
            }),
        Case::new(m, "#12 should enforce policy based on any PodSelectors")
            .policy(netpol(
                "x",
                "allow-ns-x-pod-b-c",
                json!({
                    "podSelector": pod_is("a"), "policyTypes": ["Ingress"],
                    "ingress": [{"from": [{"podSelector": pod_is("b")}, {"podSelector": pod_is("c")}]}],
                }),
            ))
            .expect(Probe::tcp(80), |r| {
                r.expect_all_ingress("x/a", false);
                r.expect("x/b", "x/a", true);
                r.expect("x/c", "x/a", true);
            }),
        Case::new(
            m,
            "#13 should enforce policy to allow traffic only from a pod in a different namespace based on PodSelector and NamespaceSelector",
        )
        .policy(netpol(
            "x",
            "allow-ns-y-pod-a-via-namespace-pod-selector",
            json!({
                "podSelector": pod_is("a"), "policyTypes": ["Ingress"],
                "ingress": [{"from": [{"namespaceSelector": ns_is("y"), "podSelector": pod_is("a")}]}],
            }),
        ))
        .expect(Probe::tcp(80), |r| {
            r.expect_all_ingress("x/a", false);
            r.expect("y/a", "x/a", true);
        }),
        Case::new(m, "#14 should enforce policy based on Ports")
            .policy(from_y_on_port("allow-client-a-via-ns-selector", 81))
            .expect(Probe::tcp(81), only_y_reaches_xa),
        case_15(m),
        Case::new(m, "#16 should support allow-all policy")
            .policy(netpol("x", "allow-all", json!({"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{}]})))
            .expect_each(&[Probe::tcp(80), Probe::tcp(81)], |_| {}),
        Case::new(m, "#17 should allow ingress access on one named port")
            .policy(netpol(
                "x",
                "allow-all",
                json!({"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{"ports": [{"port": "serve-81-tcp"}]}]}),
            ))
            .expect(Probe::tcp(81), |_| {})
            .expect(Probe::tcp(80), |r| r.expect_peer("*", "x/*", false)),
        Case::new(m, "#18 should allow ingress access from namespace on one named port")
            .policy(netpol(
                "x",
                "allow-client-a-via-ns-selector-80",
                json!({
                    "podSelector": pod_is("a"), "policyTypes": ["Ingress"],
                    "ingress": [{
                        "from": [{"namespaceSelector": ns_is("y")}],
                        "ports": [{"port": "serve-80-tcp", "protocol": "TCP"}],
                    }],
                }),
            ))
            .expect(Probe::tcp(80), only_y_reaches_xa)
            .expect(Probe::tcp(81), |r| r.expect_all_ingress("x/a", false)),
        Case::new(m, "#19 should allow egress access on one named port")
            .policy(netpol(
                "x",
                "allow-egress",
                json!({"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"ports": [{"port": "serve-80-tcp"}]}]}),
            ))
            .expect(Probe::tcp(80), |_| {})
            .expect(Probe::tcp(81), |r| r.expect_peer("x/*", "*", false)),
        Case::new(m, "#20 should enforce updated policy")
            .policy(netpol(
                "x",
                "allow-all-mutate-to-deny-all",
                json!({"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{}]}),
            ))
            .expect(Probe::tcp(81), |_| {})
            .then("the policy updated to ingress: []")
            .policy(netpol(
                "x",
                "allow-all-mutate-to-deny-all",
                json!({"podSelector": {}, "policyTypes": ["Ingress"], "ingress": []}),
            ))
            .expect(Probe::tcp(81), |r| r.expect_peer("*", "x/*", false)),
        Case::new(m, "#21 should allow ingress access from updated namespace")
            .policy(netpol(
                "x",
                "allow-client-a-via-ns-selector",
                json!({
                    "podSelector": pod_is("a"), "policyTypes": ["Ingress"],
                    "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"ns2": "updated"}}}]}],
                }),
            ))
            .expect(Probe::tcp(80), |r| r.expect_all_ingress("x/a", false))
            .then("namespace y labelled ns2=updated")
            .label_namespace("y", &[("ns2", "updated")])
            .expect(Probe::tcp(80), |r| {
                r.expect_all_ingress("x/a", false);
                r.expect_peer("y/*", "*", true);
            }),
    ]
}

/// No policy: every pod reaches every pod on every port and protocol the
/// groups probe, which proves the harness before any case relies on it.
pub fn baseline(m: &Model) -> Case {
    Case::new(m, "baseline: no policy, everything reachable").expect_each(
        &[
            Probe::tcp(80),
            Probe::tcp(81),
            Probe::udp(80),
            Probe::udp(81),
            Probe::sctp(80),
            Probe::sctp(81),
            Probe::tcp(80).v6(),
        ],
        |_| {},
    )
}

fn case_3(m: &Model) -> Case {
    Case::new(
        m,
        "#3 should enforce policy to allow traffic from pods within server namespace based on PodSelector",
    )
    .policy(netpol(
        "x",
        "x-a-allows-x-b",
        json!({
            "podSelector": pod_is("a"), "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"podSelector": pod_is("b")}]}],
        }),
    ))
    .expect(Probe::tcp(80), |r| {
        r.expect_all_ingress("x/a", false);
        r.expect("x/b", "x/a", true);
    })
}

fn case_4(m: &Model) -> Case {
    Case::new(
        m,
        "#4 should enforce policy to allow ingress traffic for a target",
    )
    .policy(netpol(
        "x",
        "deny-all",
        json!({"podSelector": {}, "policyTypes": ["Ingress"]}),
    ))
    .policy(netpol(
        "x",
        "allow-all-to-a",
        json!({
            "podSelector": pod_is("a"), "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"podSelector": {}, "namespaceSelector": {}}]}],
        }),
    ))
    .expect(Probe::tcp(80), |r| {
        r.expect_all_ingress("x/a", true);
        r.expect_all_ingress("x/b", false);
        r.expect_all_ingress("x/c", false);
    })
}

fn case_15(m: &Model) -> Case {
    Case::new(
        m,
        "#15 should enforce multiple, stacked policies with overlapping podSelectors",
    )
    .policy(from_y_on_port("allow-client-a-via-ns-selector", 81))
    .expect(Probe::tcp(81), only_y_reaches_xa)
    .expect(Probe::tcp(80), |r| r.expect_all_ingress("x/a", false))
    .then("a second policy for port 80")
    .policy(from_y_on_port("allow-client-a-via-ns-selector-80", 80))
    .expect_each(&[Probe::tcp(80), Probe::tcp(81)], only_y_reaches_xa)
}

/// x/a admits namespace y on one TCP port.
fn from_y_on_port(name: &str, port: u16) -> serde_json::Value {
    netpol(
        "x",
        name,
        json!({
            "podSelector": pod_is("a"), "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"namespaceSelector": ns_is("y")}], "ports": [{"port": port, "protocol": "TCP"}]}],
        }),
    )
}

fn not_in_namespace(ns: &str) -> serde_json::Value {
    json!({"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": [ns]}]})
}

/// x/a is reachable from namespace y only.
pub fn only_y_reaches_xa(r: &mut netseg_testbed::Reachability) {
    r.expect_peer("x/*", "x/a", false);
    r.expect_peer("z/*", "x/a", false);
}
