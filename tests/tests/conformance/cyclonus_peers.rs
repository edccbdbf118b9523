//! Cyclonus-style cases about peers: ipBlocks with excepts over pod
//! addresses in both families, pod and ipBlock peers side by side, several
//! peers and ports in one rule, conflicting policies, selector operators.

use netseg_testbed::{Family, Probe, Reachability};
use serde_json::{Value, json};

use super::case::{Case, Model, netpol, pod_is};

/// The ipBlock cases name pods by the blocks that hold them: pods are
/// numbered in model order, so y/a..z/a are hosts 4..7, one aligned /30.
pub fn check_address_layout(m: &Model) {
    for (host, pod) in m.pods.iter().enumerate() {
        let octets = match m.ip(pod, Family::V4) {
            std::net::IpAddr::V4(v4) => v4.octets(),
            std::net::IpAddr::V6(_) => unreachable!("an IPv4 address"),
        };
        assert_eq!(
            usize::from(octets[3]),
            host + 1,
            "{pod} is not host {} of its /24",
            host + 1
        );
    }
}

pub fn ip_block_ingress(m: &Model, family: Family) -> Case {
    let (name, prefix, except_prefix, other) = match family {
        Family::V4 => ("IPv4", 24, 30, Family::V6),
        Family::V6 => ("IPv6", 64, 126, Family::V4),
    };
    let probe = Probe::tcp(80).family(family);
    Case::new(
        m,
        format!("ipBlock ingress ({name}): the pod range except the block of y/a..z/a; the other family is not in it"),
    )
    .policy(netpol(
        "x",
        "from-pod-range",
        json!({
            "podSelector": pod_is("a"), "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"ipBlock": {
                "cidr": m.cidr_around("x/a", family, prefix),
                "except": [m.cidr_around("y/a", family, except_prefix)],
            }}]}],
        }),
    ))
    .expect(probe, |r| {
        r.expect_peer("y/*", "x/a", false);
        r.expect("z/a", "x/a", false);
    })
    .expect(Probe::tcp(80).family(other), |r| r.expect_all_ingress("x/a", false))
}

pub fn ip_block_egress_excepts(m: &Model) -> Case {
    let block = |family: Family, prefix: u8| {
        json!({"ipBlock": {
            "cidr": m.cidr_around("x/a", family, prefix),
            "except": [m.host_cidr("x/b", family), m.host_cidr("z/b", family)],
        }})
    };
    Case::new(
        m,
        "ipBlock egress with two excepts (x/b, z/b) in both families",
    )
    .policy(netpol(
        "y",
        "to-pods-but-two",
        json!({
            "podSelector": {}, "policyTypes": ["Egress"],
            "egress": [{"to": [block(Family::V4, 28), block(Family::V6, 124)]}],
        }),
    ))
    .expect_each(&[Probe::tcp(80), Probe::tcp(80).v6()], |r| {
        r.expect_peer("y/*", "x/b", false);
        r.expect_peer("y/*", "z/b", false);
    })
}

pub fn nested_ip_block_excepts(m: &Model) -> Case {
    // Hosts 0..7 of the pod range are x/a..z/a; z/b and z/c stay outside.
    let block = |cidr: &str, except: String| json!({"ipBlock": {"cidr": cidr, "except": [except]}});
    Case::new(
        m,
        "ipBlock egress to a /8 except the first eight pod addresses, in both families",
    )
    .policy(netpol(
        "x",
        "wide-but-pods",
        json!({
            "podSelector": pod_is("a"), "policyTypes": ["Egress"],
            "egress": [{"to": [
                block("10.0.0.0/8", m.cidr_around("x/a", Family::V4, 29)),
                block("fd00::/8", m.cidr_around("x/a", Family::V6, 125)),
            ]}],
        }),
    ))
    .expect_each(&[Probe::tcp(80), Probe::tcp(80).v6()], |r| {
        r.expect_all_egress("x/a", false);
        r.expect("x/a", "z/b", true);
        r.expect("x/a", "z/c", true);
    })
}

pub fn pod_and_ip_block_peers(m: &Model) -> Case {
    Case::new(m, "a pod peer and an IPv4 ipBlock peer in one egress rule, probed in both families")
        .policy(netpol(
            "x",
            "to-xc-and-za",
            json!({
                "podSelector": pod_is("a"), "policyTypes": ["Egress"],
                "egress": [{"to": [{"podSelector": pod_is("c")}, {"ipBlock": {"cidr": m.host_cidr("z/a", Family::V4)}}]}],
            }),
        ))
        .expect(Probe::tcp(80), |r| {
            r.expect_all_egress("x/a", false);
            r.expect("x/a", "x/c", true);
            r.expect("x/a", "z/a", true);
        })
        .expect(Probe::tcp(80).v6(), |r| {
            r.expect_all_egress("x/a", false);
            r.expect("x/a", "x/c", true);
        })
}

pub fn several_peers_and_ports(m: &Model) -> Case {
    let reaches_xa_from_xb_and_z = |r: &mut Reachability| {
        r.expect_all_ingress("x/a", false);
        r.expect("x/b", "x/a", true);
        r.expect_peer("z/*", "x/a", true);
    };
    Case::new(m, "several peers and several ports in one rule (TCP 80 and UDP 81 from x/b and namespace z)")
        .policy(netpol(
            "x",
            "peers-and-ports",
            json!({
                "podSelector": pod_is("a"), "policyTypes": ["Ingress"],
                "ingress": [{
                    "from": [{"podSelector": pod_is("b")}, {"namespaceSelector": {"matchLabels": {"ns": "z"}}}],
                    "ports": [{"protocol": "TCP", "port": 80}, {"protocol": "UDP", "port": 81}],
                }],
            }),
        ))
        .expect_each(&[Probe::tcp(80), Probe::tcp(80).v6(), Probe::udp(81)], reaches_xa_from_xb_and_z)
        .expect_each(&[Probe::tcp(81), Probe::udp(80)], |r| r.expect_all_ingress("x/a", false))
}

pub fn peers_and_ports_pair_up_per_rule(m: &Model) -> Case {
    Case::new(m, "peers and ports pair up within a rule, never across two rules")
        .policy(netpol(
            "x",
            "two-rules",
            json!({
                "podSelector": pod_is("a"), "policyTypes": ["Ingress"],
                "ingress": [
                    {"from": [{"podSelector": pod_is("b")}], "ports": [{"protocol": "TCP", "port": 80}]},
                    {"from": [{"namespaceSelector": {"matchLabels": {"ns": "z"}}}], "ports": [{"protocol": "TCP", "port": 81}]},
                ],
            }),
        ))
        .expect(Probe::tcp(80), |r| {
            r.expect_all_ingress("x/a", false);
            r.expect("x/b", "x/a", true);
        })
        .expect(Probe::tcp(81), |r| {
            r.expect_all_ingress("x/a", false);
            r.expect_peer("z/*", "x/a", true);
        })
}

pub fn conflicting_policies(m: &Model) -> Case {
    let to_namespaces = |names: &[&str]| -> Vec<Value> {
        names
            .iter()
            .map(|ns| json!({"namespaceSelector": {"matchLabels": {"ns": ns}}}))
            .collect()
    };
    Case::new(m, "conflicting policies: isolating ones and allowing ones add up, allows win")
        .policy(netpol("x", "deny-ingress", json!({"podSelector": {}, "policyTypes": ["Ingress"]})))
        .policy(netpol(
            "x",
            "a-from-y",
            json!({"podSelector": pod_is("a"), "policyTypes": ["Ingress"], "ingress": [{"from": to_namespaces(&["y"])}]}),
        ))
        .policy(netpol("z", "deny-egress", json!({"podSelector": {}, "policyTypes": ["Egress"]})))
        .policy(netpol(
            "z",
            "b-to-x-and-y",
            json!({"podSelector": pod_is("b"), "policyTypes": ["Egress"], "egress": [{"to": to_namespaces(&["x", "y"])}]}),
        ))
        .expect_each(&[Probe::tcp(80), Probe::tcp(80).v6()], |r| {
            r.expect_peer("*", "x/*", false);
            r.expect_peer("y/*", "x/a", true);
            r.expect_peer("z/*", "*", false);
            r.expect_peer("z/b", "y/*", true);
        })
}

pub fn selector_operators(m: &Model) -> Case {
    let outside_x_without_pod2 = |r: &mut Reachability| r.expect_peer("x/*", "x/a", false);
    Case::new(
        m,
        "selector operators Exists, NotIn and DoesNotExist, then a pod gains the excluded label",
    )
    .policy(netpol(
        "x",
        "operators",
        json!({
            "podSelector": pod_is("a"), "policyTypes": ["Ingress"],
            "ingress": [{"from": [{
                "namespaceSelector": {"matchExpressions": [
                    {"key": "ns", "operator": "Exists"},
                    {"key": "ns", "operator": "NotIn", "values": ["x"]},
                ]},
                "podSelector": {"matchExpressions": [{"key": "pod2", "operator": "DoesNotExist"}]},
            }]}],
        }),
    ))
    .expect(Probe::tcp(80), outside_x_without_pod2)
    .then("pod y/b labelled pod2=updated")
    .label_pod("y/b", &[("pod2", "updated")])
    .expect(Probe::tcp(80), |r| {
        outside_x_without_pod2(r);
        r.expect("y/b", "x/a", false);
    })
}

/// An address excepted from one ipBlock but inside another is allowed.
pub fn overlapping_ip_blocks(m: &Model) -> Case {
    Case::new(m, "two ipBlocks of one rule: an address excepted by one and inside the other is allowed")
        .policy(netpol(
            "x",
            "overlapping-blocks",
            json!({
                "podSelector": pod_is("a"), "policyTypes": ["Ingress"],
                "ingress": [{"from": [
                    {"ipBlock": {"cidr": m.cidr_around("x/a", Family::V4, 24), "except": [m.cidr_around("y/a", Family::V4, 30)]}},
                    {"ipBlock": {"cidr": m.host_cidr("y/b", Family::V4)}},
                ]}],
            }),
        ))
        .expect(Probe::tcp(80), |r| {
            r.expect("y/a", "x/a", false);
            r.expect("y/c", "x/a", false);
            r.expect("z/a", "x/a", false);
        })
}

/// Namespaces move in and out of a namespace selector by their labels.
pub fn namespaces_relabelled_both_ways(m: &Model) -> Case {
    Case::new(
        m,
        "namespaces relabelled both ways: team=blue moves from z to y",
    )
    .policy(netpol(
        "x",
        "from-blue",
        json!({
            "podSelector": pod_is("a"), "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "blue"}}}]}],
        }),
    ))
    .label_namespace("z", &[("team", "blue")])
    .expect(Probe::tcp(80), |r| {
        r.expect_all_ingress("x/a", false);
        r.expect_peer("z/*", "x/a", true);
    })
    .then("z relabelled team=red, y labelled team=blue")
    .label_namespace("z", &[("team", "red")])
    .label_namespace("y", &[("team", "blue")])
    .expect(Probe::tcp(80), |r| {
        r.expect_all_ingress("x/a", false);
        r.expect_peer("y/*", "x/a", true);
    })
}
