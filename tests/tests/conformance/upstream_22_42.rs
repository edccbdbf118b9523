//! Upstream cases #22–#42 of shared/NETPOL-CASES.md ("NetworkPolicy between
//! server and client", TCP): pod relabels, egress, ipBlocks, protocols,
//! precedence of allow-all policies, deletion, the default namespace label.

use netseg_testbed::{Family, Probe};
use serde_json::{Value, json};

use super::case::{Case, Model, netpol, ns_is, pod_is};

pub fn cases(m: &Model) -> Vec<Case> {
    vec![
        super::upstream_01_21::baseline(m),
        Case::new(m, "#22 should allow ingress access from updated pod")
            .policy(netpol(
                "x",
                "allow-client-a-via-pod-selector",
                json!({
                    "podSelector": pod_is("a"), "policyTypes": ["Ingress"],
                    "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "b", "pod2": "updated"}}}]}],
                }),
            ))
            .expect(Probe::tcp(80), |r| r.expect_all_ingress("x/a", false))
            .then("pod x/b labelled pod2=updated")
            .label_pod("x/b", &[("pod2", "updated")])
            .expect(Probe::tcp(80), |r| {
                r.expect_all_ingress("x/a", false);
                r.expect("x/b", "x/a", true);
            }),
        Case::new(m, "#23 should deny ingress from pods on other namespaces")
            .policy(netpol(
                "x",
                "deny-empty-policy",
                json!({"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{"from": [{"podSelector": {}}]}]}),
            ))
            .expect(Probe::tcp(80), |r| {
                r.expect_peer("y/*", "x/*", false);
                r.expect_peer("z/*", "x/*", false);
            }),
        Case::new(m, "#24 should deny ingress access to updated pod")
            .policy(netpol(
                "x",
                "deny-ingress-via-label-selector",
                json!({"podSelector": {"matchLabels": {"target": "isolated"}}, "policyTypes": ["Ingress"]}),
            ))
            .expect(Probe::tcp(80), |_| {})
            .then("pod x/a labelled target=isolated")
            .label_pod("x/a", &[("target", "isolated")])
            .expect(Probe::tcp(80), |r| r.expect_all_ingress("x/a", false)),
        Case::new(m, "#25 should deny egress from pods based on PodSelector")
            .policy(netpol("x", "deny-egress-pod-a", json!({"podSelector": pod_is("a"), "policyTypes": ["Egress"]})))
            .expect(Probe::tcp(80), |r| r.expect_all_egress("x/a", false)),
        Case::new(m, "#26 should deny egress from all pods in a namespace")
            .policy(netpol("x", "deny-egress-ns-x", json!({"podSelector": {}, "policyTypes": ["Egress"]})))
            .expect(Probe::tcp(80), |r| r.expect_peer("x/*", "*", false)),
        case_27(m),
        case_28(m),
        Case::new(
            m,
            "#29 should enforce egress policy allowing traffic to a server in a different namespace based on PodSelector and NamespaceSelector",
        )
        .policy(egress_to_ya("allow-to-ns-y-pod-a"))
        .expect(Probe::tcp(80), |r| {
            r.expect_all_egress("x/a", false);
            r.expect("x/a", "y/a", true);
        }),
        Case::new(m, "#30 should enforce ingress policy allowing any port traffic to a server on a specific protocol")
            .policy(netpol(
                "x",
                "allow-ingress-by-proto",
                json!({"podSelector": pod_is("a"), "policyTypes": ["Ingress"], "ingress": [{"ports": [{"protocol": "TCP"}]}]}),
            ))
            .expect(Probe::tcp(80), |_| {})
            .expect(Probe::udp(80), |r| r.expect_all_ingress("x/a", false)),
        Case::new(m, "#31 should enforce multiple ingress policies with ingress allow-all policy taking precedence")
            .policy(netpol(
                "x",
                "allow-ingress-port-80",
                json!({"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{"ports": [{"port": 80}]}]}),
            ))
            .expect(Probe::tcp(81), |r| r.expect_peer("*", "x/*", false))
            .then("an allow-all ingress policy added")
            .policy(netpol("x", "allow-ingress", json!({"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{}]})))
            .expect(Probe::tcp(81), |_| {}),
        Case::new(m, "#32 should enforce multiple egress policies with egress allow-all policy taking precedence")
            .policy(netpol(
                "x",
                "allow-egress-port-80",
                json!({"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"ports": [{"port": 80}]}]}),
            ))
            .expect(Probe::tcp(81), |r| r.expect_peer("x/*", "*", false))
            .then("an allow-all egress policy added")
            .policy(netpol("x", "allow-egress", json!({"podSelector": {}, "policyTypes": ["Egress"], "egress": [{}]})))
            .expect(Probe::tcp(81), |_| {}),
        Case::new(m, "#33 should stop enforcing policies after they are deleted")
            .policy(netpol("x", "deny-all", json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})))
            .expect(Probe::tcp(80), |r| {
                r.expect_peer("x/*", "*", false);
                r.expect_peer("*", "x/*", false);
            })
            .then("every policy deleted")
            .delete_all_policies()
            .expect(Probe::tcp(80), |_| {}),
        Case::new(m, "#34 should allow egress access to server in CIDR block")
            .policy(egress_to_blocks(&[json!({"cidr": m.host_cidr("y/b", Family::V4)})]))
            .expect(Probe::tcp(80), |r| {
                r.expect_all_egress("x/a", false);
                r.expect("x/a", "y/b", true);
            }),
        Case::new(m, "#35 should enforce except clause while egress access to server in CIDR block")
            .policy(egress_to_blocks(&[large_block_except_xb(m)]))
            .expect(Probe::tcp(80), |r| r.expect("x/a", "x/b", false)),
        Case::new(m, "#36 should ensure an IP overlapping both IPBlock.CIDR and IPBlock.Except is allowed")
            .policy(egress_to_blocks(&[large_block_except_xb(m)]))
            .expect(Probe::tcp(80), |r| r.expect("x/a", "x/b", false))
            .then("the policy updated to x/b's /32 alone")
            .policy(egress_to_blocks(&[json!({"cidr": m.host_cidr("x/b", Family::V4)})]))
            .expect(Probe::tcp(80), |r| {
                r.expect_all_egress("x/a", false);
                r.expect("x/a", "x/b", true);
            }),
        Case::new(
            m,
            "#37 should enforce policies to check ingress and egress policies can be controlled independently based on PodSelector",
        )
        .policy(netpol(
            "x",
            "allow-egress-for-target",
            json!({"podSelector": pod_is("a"), "policyTypes": ["Egress"], "egress": [{}]}),
        ))
        .expect(Probe::tcp(80), |_| {})
        .then("a deny-ingress policy for x/a added")
        .policy(netpol(
            "x",
            "deny-ingress-via-label-selector",
            json!({"podSelector": pod_is("a"), "policyTypes": ["Ingress"]}),
        ))
        .expect(Probe::tcp(80), |r| r.expect_all_ingress("x/a", false)),
        // Upstream probes only TCP; the SCTP matrix shows the SCTP rule works.
        Case::new(
            m,
            "#38 should not mistakenly treat 'protocol: SCTP' as 'protocol: TCP', even if the plugin doesn't support SCTP",
        )
        .policy(netpol("x", "deny-ingress", json!({"podSelector": {}, "policyTypes": ["Ingress"]})))
        .policy(only_protocol_port("allow-only-sctp-ingress-on-port-81", "SCTP", 81))
        .expect(Probe::tcp(81), |r| r.expect_peer("*", "x/*", false))
        .expect(Probe::sctp(81), |r| {
            r.expect_peer("*", "x/b", false);
            r.expect_peer("*", "x/c", false);
        }),
        Case::new(
            m,
            "#39 should properly isolate pods that are selected by a policy allowing SCTP, even if the plugin doesn't support SCTP",
        )
        .policy(only_protocol_port("allow-only-sctp-ingress-on-port-80", "SCTP", 80))
        .expect(Probe::tcp(81), |r| r.expect_all_ingress("x/a", false)),
        Case::new(m, "#40 should not allow access by TCP when a policy specifies only UDP")
            .policy(only_protocol_port("allow-only-udp-ingress-on-port-81", "UDP", 81))
            .expect(Probe::tcp(81), |r| r.expect_all_ingress("x/a", false))
            .expect(Probe::udp(81), |_| {}),
        Case::new(
            m,
            "#41 should enforce policy to allow traffic based on NamespaceSelector with MatchLabels using default ns label",
        )
        .policy(netpol(
            "x",
            "allow-client-a-via-ns-selector-for-immutable-ns-label",
            json!({
                "podSelector": pod_is("a"), "policyTypes": ["Ingress"],
                "ingress": [{"from": [{"namespaceSelector": ns_is("y")}]}],
            }),
        ))
        .expect(Probe::tcp(80), super::upstream_01_21::only_y_reaches_xa),
        Case::new(
            m,
            "#42 should enforce policy based on NamespaceSelector with MatchExpressions using default ns label",
        )
        .policy(netpol(
            "x",
            "allow-ns-y-match-selector-for-immutable-ns-label",
            json!({
                "podSelector": pod_is("a"), "policyTypes": ["Egress"],
                "egress": [{"to": [{"namespaceSelector": {"matchExpressions": [
                    {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["y"]}]}}]}],
            }),
        ))
        .expect(Probe::tcp(80), |r| r.expect_peer("x/a", "y/*", false)),
    ]
}

fn case_27(m: &Model) -> Case {
    Case::new(m, "#27 should work with Ingress, Egress specified together")
        .policy(netpol(
            "x",
            "allow-client-a-via-pod-selector",
            json!({
                "podSelector": pod_is("a"),
                "policyTypes": ["Egress", "Ingress"],
                "ingress": [{"from": [{"podSelector": pod_is("b")}]}],
                "egress": [{"ports": [{"port": 80}]}],
            }),
        ))
        .expect(Probe::tcp(80), |r| {
            r.expect_all_ingress("x/a", false);
            r.expect("x/b", "x/a", true);
        })
        .expect(Probe::tcp(81), |r| {
            r.expect_all_ingress("x/a", false);
            r.expect_all_egress("x/a", false);
            r.expect("x/b", "x/a", true);
        })
}

fn case_28(m: &Model) -> Case {
    let from_xa = json!([{"namespaceSelector": ns_is("x"), "podSelector": pod_is("a")}]);
    Case::new(
        m,
        "#28 should support denying of egress traffic on the client side (even if the server explicitly allows this traffic)",
    )
    .policy(egress_to_ya("allow-to-ns-y-pod-a"))
    .policy(netpol(
        "y",
        "allow-from-xa-on-ya-match-selector",
        json!({"podSelector": pod_is("a"), "policyTypes": ["Ingress"], "ingress": [{"from": from_xa}]}),
    ))
    .policy(netpol(
        "y",
        "allow-from-xa-on-yb-match-selector",
        json!({"podSelector": pod_is("b"), "policyTypes": ["Ingress"], "ingress": [{"from": from_xa}]}),
    ))
    .expect(Probe::tcp(80), |r| {
        r.expect_peer("x/a", "*", false);
        r.expect_peer("*", "y/a", false);
        r.expect_peer("x/a", "y/a", true);
        r.expect_peer("*", "y/b", false);
    })
}

/// x/a may open connections to y/a only.
fn egress_to_ya(name: &str) -> Value {
    netpol(
        "x",
        name,
        json!({
            "podSelector": pod_is("a"), "policyTypes": ["Egress"],
            "egress": [{"to": [{"namespaceSelector": ns_is("y"), "podSelector": pod_is("a")}]}],
        }),
    )
}

/// x/a may open connections to these ipBlocks only.
fn egress_to_blocks(blocks: &[Value]) -> Value {
    let peers: Vec<Value> = blocks.iter().map(|b| json!({ "ipBlock": b })).collect();
    netpol(
        "x",
        "allow-client-a-via-cidr-egress-rule",
        json!({"podSelector": pod_is("a"), "policyTypes": ["Egress"], "egress": [{"to": peers}]}),
    )
}

/// Upstream's `makeLargeCIDRForIP`: the /4 around x/b, except x/b itself.
fn large_block_except_xb(m: &Model) -> Value {
    json!({
        "cidr": m.cidr_around("x/b", Family::V4, 4),
        "except": [m.host_cidr("x/b", Family::V4)],
    })
}

/// x/a admits one protocol and port from everyone.
fn only_protocol_port(name: &str, protocol: &str, port: u16) -> Value {
    netpol(
        "x",
        name,
        json!({
            "podSelector": pod_is("a"), "policyTypes": ["Ingress"],
            "ingress": [{"ports": [{"port": port, "protocol": protocol}]}],
        }),
    )
}
