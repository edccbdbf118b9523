//! Cases beyond upstream's, in the spirit of cyclonus: endPort ranges with
//! their boundary ports, ipBlocks with excepts over pod addresses in both
//! families, named ports that match nothing or resolve per destination pod,
//! several peers and ports in one rule, and policies that conflict.

use netseg_testbed::{ContainerPort, Family, Probe, Protocol};
use serde_json::{Value, json};

use super::case::{Case, Model, netpol, pod_is};
use super::world::WorldConfig;

/// Every pod also serves TCP and UDP on the ports around 80–81.
const BOUNDARY_PORTS: [u16; 2] = [79, 82];

pub fn config() -> WorldConfig {
    WorldConfig {
        extra_server_ports: BOUNDARY_PORTS.to_vec(),
        extra_container_ports: vec![
            ("x/b", ContainerPort::new("only-on-b", 82, Protocol::Tcp)),
            // One name, a different number on each pod.
            ("y/a", ContainerPort::new("web", 79, Protocol::Tcp)),
            ("y/b", ContainerPort::new("web", 82, Protocol::Tcp)),
        ],
        ..WorldConfig::allow("cyclonus")
    }
}

pub fn cases(m: &Model) -> Vec<Case> {
    check_address_layout(m);
    vec![
        super::upstream_01_21::baseline(m).expect_each(
            &[Probe::tcp(79), Probe::tcp(82), Probe::udp(79), Probe::udp(82)],
            |_| {},
        ),
        end_port_ingress(m),
        end_port_egress(m),
        end_port_sctp(m),
        ip_block_ingress(m, Family::V4),
        ip_block_ingress(m, Family::V6),
        ip_block_egress_excepts(m),
        Case::new(m, "named port with the wrong protocol matches nothing, and still isolates")
            .policy(netpol(
                "x",
                "udp-named-tcp",
                json!({
                    "podSelector": pod_is("a"), "policyTypes": ["Ingress"],
                    "ingress": [{"ports": [{"port": "serve-80-tcp", "protocol": "UDP"}]}],
                }),
            ))
            .expect_each(&[Probe::tcp(80), Probe::udp(80)], |r| r.expect_all_ingress("x/a", false)),
        Case::new(m, "named port declared by one destination pod only")
            .policy(netpol(
                "x",
                "only-on-b",
                json!({"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{"ports": [{"port": "only-on-b"}]}]}),
            ))
            .expect(Probe::tcp(82), |r| {
                r.expect_all_ingress("x/a", false);
                r.expect_all_ingress("x/c", false);
            })
            .expect(Probe::tcp(80), |r| r.expect_peer("*", "x/*", false)),
        Case::new(m, "egress named port resolves per destination pod (web is 79 on y/a, 82 on y/b)")
            .policy(netpol(
                "x",
                "egress-web",
                json!({"podSelector": pod_is("a"), "policyTypes": ["Egress"], "egress": [{"ports": [{"port": "web"}]}]}),
            ))
            .expect(Probe::tcp(79), |r| {
                r.expect_all_egress("x/a", false);
                r.expect("x/a", "y/a", true);
            })
            .expect(Probe::tcp(82), |r| {
                r.expect_all_egress("x/a", false);
                r.expect("x/a", "y/b", true);
            })
            .expect(Probe::tcp(80), |r| r.expect_all_egress("x/a", false)),
        Case::new(m, "ingress named port resolves per destination pod (web is 79 on y/a, 82 on y/b, absent on y/c)")
            .policy(netpol(
                "y",
                "ingress-web",
                json!({"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{"ports": [{"port": "web"}]}]}),
            ))
            .expect(Probe::tcp(79), |r| {
                r.expect_all_ingress("y/b", false);
                r.expect_all_ingress("y/c", false);
            })
            .expect(Probe::tcp(82), |r| {
                r.expect_all_ingress("y/a", false);
                r.expect_all_ingress("y/c", false);
            }),
        several_peers_and_ports(m),
        peers_and_ports_pair_up_per_rule(m),
        conflicting_policies(m),
        pod_and_ip_block_peers(m),
        nested_ip_block_excepts(m),
        selector_operators(m),
        target_moves_on_update(m),
        deleting_one_of_two_policies(m),
        policy_types(m),
    ]
}

/// The ipBlock cases name pods by the blocks that hold them: pods are
/// numbered in model order, so y/a..z/a are hosts 4..7, one aligned /30.
fn check_address_layout(m: &Model) {
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

fn end_port_ingress(m: &Model) -> Case {
    Case::new(
        m,
        "endPort: ingress TCP 80-81 admits both ends of the range, not 79 or 82",
    )
    .policy(netpol(
        "x",
        "tcp-80-81",
        json!({
            "podSelector": pod_is("a"), "policyTypes": ["Ingress"],
            "ingress": [{"ports": [{"protocol": "TCP", "port": 80, "endPort": 81}]}],
        }),
    ))
    .expect_each(&[Probe::tcp(80), Probe::tcp(81)], |_| {})
    .expect_each(&[Probe::tcp(79), Probe::tcp(82)], |r| {
        r.expect_all_ingress("x/a", false)
    })
}

fn end_port_egress(m: &Model) -> Case {
    // 81-82 is not one prefix: the datapath needs 81/16 and 82/16.
    Case::new(
        m,
        "endPort: egress UDP 81-82 (not prefix-aligned) from namespace x",
    )
    .policy(netpol(
        "x",
        "udp-81-82",
        json!({
            "podSelector": {}, "policyTypes": ["Egress"],
            "egress": [{"ports": [{"protocol": "UDP", "port": 81, "endPort": 82}]}],
        }),
    ))
    .expect_each(&[Probe::udp(81), Probe::udp(82)], |_| {})
    .expect_each(&[Probe::udp(79), Probe::udp(80)], |r| {
        r.expect_peer("x/*", "*", false)
    })
}

fn end_port_sctp(m: &Model) -> Case {
    Case::new(
        m,
        "endPort: SCTP 80-81 at x/a; TCP on the same port stays closed",
    )
    .policy(netpol(
        "x",
        "sctp-80-81",
        json!({
            "podSelector": pod_is("a"), "policyTypes": ["Ingress"],
            "ingress": [{"ports": [{"protocol": "SCTP", "port": 80, "endPort": 81}]}],
        }),
    ))
    .expect_each(&[Probe::sctp(80), Probe::sctp(81)], |_| {})
    .expect_each(&[Probe::sctp(79), Probe::sctp(82), Probe::tcp(80)], |r| {
        r.expect_all_ingress("x/a", false)
    })
}

fn ip_block_ingress(m: &Model, family: Family) -> Case {
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

fn ip_block_egress_excepts(m: &Model) -> Case {
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

fn several_peers_and_ports(m: &Model) -> Case {
    let reaches_xa_from_xb_and_z = |r: &mut netseg_testbed::Reachability| {
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

fn conflicting_policies(m: &Model) -> Case {
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

fn pod_and_ip_block_peers(m: &Model) -> Case {
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

fn selector_operators(m: &Model) -> Case {
    let outside_x_without_pod2 =
        |r: &mut netseg_testbed::Reachability| r.expect_peer("x/*", "x/a", false);
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

fn peers_and_ports_pair_up_per_rule(m: &Model) -> Case {
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

fn nested_ip_block_excepts(m: &Model) -> Case {
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

fn target_moves_on_update(m: &Model) -> Case {
    let deny_ingress_of = |pod: &str| {
        netpol(
            "x",
            "moving",
            json!({"podSelector": pod_is(pod), "policyTypes": ["Ingress"]}),
        )
    };
    Case::new(m, "an updated podSelector moves isolation from x/a to x/b")
        .policy(deny_ingress_of("a"))
        .expect(Probe::tcp(80), |r| r.expect_all_ingress("x/a", false))
        .then("the policy now selects x/b")
        .policy(deny_ingress_of("b"))
        .expect(Probe::tcp(80), |r| r.expect_all_ingress("x/b", false))
}

fn policy_types(m: &Model) -> Case {
    let egress_to_y = json!([{"to": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}]}]);
    Case::new(m, "policyTypes: [Egress] ignores ingress rules; no policyTypes with egress rules isolates both ways")
        .policy(netpol(
            "x",
            "egress-only",
            json!({
                "podSelector": pod_is("a"), "policyTypes": ["Egress"],
                "ingress": [{"from": [{"podSelector": pod_is("b")}]}],
                "egress": egress_to_y,
            }),
        ))
        .expect(Probe::tcp(80), |r| {
            r.expect_all_egress("x/a", false);
            r.expect_peer("x/a", "y/*", true);
        })
        .then("the same rules without policyTypes")
        .policy(netpol(
            "x",
            "egress-only",
            json!({
                "podSelector": pod_is("a"),
                "ingress": [{"from": [{"podSelector": pod_is("b")}]}],
                "egress": egress_to_y,
            }),
        ))
        .expect(Probe::tcp(80), |r| {
            r.expect_all_egress("x/a", false);
            r.expect_peer("x/a", "y/*", true);
            r.expect_all_ingress("x/a", false);
            r.expect("x/b", "x/a", true);
        })
}

fn deleting_one_of_two_policies(m: &Model) -> Case {
    let from_y_on = |name: &str, port: u16| {
        netpol(
            "x",
            name,
            json!({
                "podSelector": pod_is("a"), "policyTypes": ["Ingress"],
                "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}], "ports": [{"port": port}]}],
            }),
        )
    };
    let only_y = super::upstream_01_21::only_y_reaches_xa;
    Case::new(m, "deleting one of two stacked policies keeps the other enforced")
        .policy(from_y_on("y-on-80", 80))
        .policy(from_y_on("y-on-81", 81))
        .expect_each(&[Probe::tcp(80), Probe::tcp(81)], only_y)
        .then("the port 80 policy deleted")
        .delete_policy("x", "y-on-80")
        .expect(Probe::tcp(80), |r| r.expect_all_ingress("x/a", false))
        .expect(Probe::tcp(81), only_y)
}
