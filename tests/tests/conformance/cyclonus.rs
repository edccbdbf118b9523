//! Cases beyond upstream's, in the spirit of cyclonus: endPort ranges with
//! their boundary ports, named ports that match nothing or resolve per
//! destination pod, updates and deletions, policyTypes defaulting; and the
//! peer cases of [`super::cyclonus_peers`].

use netseg_testbed::suite::WorldConfig;
use netseg_testbed::{ContainerPort, Family, Probe, Protocol};
use serde_json::json;

use super::case::{Case, Model, model_layout, netpol, pod_is};
use super::cyclonus_peers::{
    check_address_layout, conflicting_policies, ip_block_egress_excepts, ip_block_ingress,
    namespaces_relabelled_both_ways, nested_ip_block_excepts, overlapping_ip_blocks,
    peers_and_ports_pair_up_per_rule, pod_and_ip_block_peers, selector_operators,
    several_peers_and_ports,
};

/// Every pod also serves TCP and UDP on the ports around 80–81.
const BOUNDARY_PORTS: [u16; 2] = [79, 82];

pub fn config() -> WorldConfig {
    let layout = model_layout()
        .serving(&BOUNDARY_PORTS)
        .declaring("x/b", ContainerPort::new("only-on-b", 82, Protocol::Tcp))
        // One name, a different number on each pod.
        .declaring("y/a", ContainerPort::new("web", 79, Protocol::Tcp))
        .declaring("y/b", ContainerPort::new("web", 82, Protocol::Tcp));
    WorldConfig::allow("cyclonus", layout)
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
        overlapping_ip_blocks(m),
        selector_operators(m),
        namespaces_relabelled_both_ways(m),
        target_moves_on_update(m),
        deleting_one_of_two_policies(m),
        policy_types(m),
    ]
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
    Case::new(
        m,
        "deleting one of two stacked policies keeps the other enforced",
    )
    .policy(from_y_on("y-on-80", 80))
    .policy(from_y_on("y-on-81", 81))
    .expect_each(&[Probe::tcp(80), Probe::tcp(81)], only_y)
    .then("the port 80 policy deleted")
    .delete_policy("x", "y-on-80")
    .expect(Probe::tcp(80), |r| r.expect_all_ingress("x/a", false))
    .expect(Probe::tcp(81), only_y)
}
