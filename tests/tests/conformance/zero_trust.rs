//! Cases under `--default-action deny` (zero trust): every pod is isolated
//! both ways, so a connection needs an egress allow at the client AND an
//! ingress allow at the server; replies of an admitted connection always
//! pass; the node reaches its pods unless `--deny-node-traffic`.

use netseg_testbed::{Family, Probe};
use serde_json::{Value, json};

use super::case::{Case, Model, netpol, ns_is, pod_is};

pub fn cases(m: &Model) -> Vec<Case> {
    vec![
        Case::new(m, "no policy: every pod isolated both ways, the node still reaches every pod")
            .expect_each(
                &[Probe::tcp(80), Probe::tcp(80).v6(), Probe::udp(80), Probe::sctp(80), Probe::icmp()],
                |_| {},
            )
            .expect_from_node(Probe::tcp(80), |_| true)
            .expect_from_node(Probe::tcp(80).v6(), |_| true)
            .expect_from_node(Probe::udp(81), |_| true),
        Case::new(m, "an ingress allow at the server alone is not enough")
            .policy(y_from_x(json!([])))
            .expect_each(&[Probe::tcp(80), Probe::udp(80)], |_| {}),
        Case::new(m, "an egress allow at the client alone is not enough")
            .policy(x_to_y(json!([])))
            .expect_each(&[Probe::tcp(80), Probe::udp(80)], |_| {}),
        Case::new(m, "egress at the client and ingress at the server: allowed one way, replies pass")
            .policy(x_to_y(json!([])))
            .policy(y_from_x(json!([])))
            .expect_each(
                &[Probe::tcp(80), Probe::tcp(81).v6(), Probe::udp(80), Probe::sctp(81), Probe::icmp()],
                |r| r.expect_peer("x/*", "y/*", true),
            ),
        both_ends_name_the_pair(m),
        Case::new(m, "both ends must allow the port: egress TCP 80, ingress TCP 80 and 81")
            .policy(x_to_y(json!([{"protocol": "TCP", "port": 80}])))
            .policy(y_from_x(json!([{"protocol": "TCP", "port": 80}, {"protocol": "TCP", "port": 81}])))
            .expect(Probe::tcp(80), |r| r.expect_peer("x/*", "y/*", true))
            // ICMP has no ports: only a rule without ports admits it.
            .expect_each(&[Probe::tcp(81), Probe::icmp()], |_| {}),
        Case::new(m, "a named port at both ends: egress and ingress on serve-81-udp")
            .policy(x_to_y(json!([{"protocol": "UDP", "port": "serve-81-udp"}])))
            .policy(y_from_x(json!([{"protocol": "UDP", "port": "serve-81-udp"}])))
            .expect(Probe::udp(81), |r| r.expect_peer("x/*", "y/*", true))
            .expect_each(&[Probe::udp(80), Probe::tcp(81)], |_| {}),
        Case::new(m, "egress to an IPv4 ipBlock of the server, ingress from a pod selector of the client")
            .policy(netpol(
                "x",
                "a-to-yb-address",
                json!({
                    "podSelector": pod_is("a"), "policyTypes": ["Egress"],
                    "egress": [{"to": [{"ipBlock": {"cidr": m.host_cidr("y/b", Family::V4)}}]}],
                }),
            ))
            .policy(netpol(
                "y",
                "b-from-xa",
                json!({
                    "podSelector": pod_is("b"), "policyTypes": ["Ingress"],
                    "ingress": [{"from": [{"namespaceSelector": ns_is("x"), "podSelector": pod_is("a")}]}],
                }),
            ))
            .expect(Probe::tcp(80), |r| r.expect("x/a", "y/b", true))
            .expect(Probe::tcp(80).v6(), |_| {}),
        Case::new(m, "allow-all both ways in namespace z opens z to itself only")
            .policy(netpol(
                "z",
                "open",
                json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"], "ingress": [{}], "egress": [{}]}),
            ))
            .expect_each(&[Probe::tcp(80), Probe::udp(81)], |r| r.expect_peer("z/*", "z/*", true)),
        deny_node_traffic(m),
        Case::new(m, "the group's flags again: the node reaches every pod")
            .expect_from_node(Probe::tcp(80), |_| true),
    ]
}

/// Namespace x may open connections to namespace y on `ports`.
fn x_to_y(ports: Value) -> Value {
    netpol(
        "x",
        "to-y",
        json!({"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"to": [{"namespaceSelector": ns_is("y")}], "ports": ports}]}),
    )
}

/// Namespace y admits connections from namespace x on `ports`.
fn y_from_x(ports: Value) -> Value {
    netpol(
        "y",
        "from-x",
        json!({"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{"from": [{"namespaceSelector": ns_is("x")}], "ports": ports}]}),
    )
}

fn both_ends_name_the_pair(m: &Model) -> Case {
    Case::new(m, "both ends must name the pair: x/a may reach y, y/a admits x/a, y/b admits namespace x")
        .policy(netpol(
            "x",
            "a-to-y",
            json!({"podSelector": pod_is("a"), "policyTypes": ["Egress"], "egress": [{"to": [{"namespaceSelector": ns_is("y")}]}]}),
        ))
        .policy(netpol(
            "y",
            "a-from-xa",
            json!({
                "podSelector": pod_is("a"), "policyTypes": ["Ingress"],
                "ingress": [{"from": [{"namespaceSelector": ns_is("x"), "podSelector": pod_is("a")}]}],
            }),
        ))
        .policy(netpol(
            "y",
            "b-from-x",
            json!({"podSelector": pod_is("b"), "policyTypes": ["Ingress"], "ingress": [{"from": [{"namespaceSelector": ns_is("x")}]}]}),
        ))
        .expect_each(&[Probe::tcp(80), Probe::tcp(80).v6()], |r| {
            r.expect("x/a", "y/a", true);
            r.expect("x/a", "y/b", true);
        })
}

fn deny_node_traffic(m: &Model) -> Case {
    Case::new(m, "--deny-node-traffic: the node reaches only a pod whose ipBlock admits it, not 'all pods'")
        .restart_daemon(&["--default-action", "deny", "--deny-node-traffic"])
        .policy(netpol(
            "x",
            "a-from-node",
            json!({
                "podSelector": pod_is("a"), "policyTypes": ["Ingress"],
                "ingress": [{"from": [
                    {"ipBlock": {"cidr": m.node_cidr(Family::V4)}},
                    {"ipBlock": {"cidr": m.node_cidr(Family::V6)}},
                ]}],
            }),
        ))
        .policy(netpol(
            "y",
            "a-from-all-pods",
            json!({"podSelector": pod_is("a"), "policyTypes": ["Ingress"], "ingress": [{"from": [{"namespaceSelector": {}}]}]}),
        ))
        .expect_from_node(Probe::tcp(80), |pod| pod == "x/a")
        .expect_from_node(Probe::tcp(80).v6(), |pod| pod == "x/a")
        .expect(Probe::tcp(80), |_| {})
        .then("every policy deleted")
        .delete_all_policies()
        .expect_from_node(Probe::tcp(80), |_| false)
}
