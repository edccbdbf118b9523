//! Upstream's ordered-rules manifests (`conformance/base/{admin,baseline}_tier/
//! standard-{ingress,egress}-{tcp,udp,sctp}-rules.yaml` and
//! `standard-gress-rules-combined.yaml`), shared by the tier tests and the
//! named-port tests.

use netseg_testbed::Probe;

use super::houses::House::{self, Gryffindor, Hufflepuff, Ravenclaw, Slytherin};
use super::houses::{sctp_probes, tcp_probes, udp_probes};
use super::objects::{Direction, PortMatch, Tier};
use super::ordered_rules::{OrderedRules, Rules};

/// Admin manifests have their own name and priority; every Baseline one is
/// `default` at priority 10.
fn named(tier: Tier, admin_name: &'static str, admin_priority: u32) -> (&'static str, u32) {
    match tier {
        Tier::Admin => (admin_name, admin_priority),
        Tier::Baseline => ("default", 10),
    }
}

struct Shape {
    whole: House,
    port_house_ports: Vec<PortMatch>,
    accept_house: House,
    accept_ports: Vec<PortMatch>,
}

fn rules(direction: Direction, shape: Shape) -> Rules {
    Rules {
        direction,
        whole: shape.whole,
        port_house: Slytherin,
        port_house_ports: shape.port_house_ports,
        accept_house: shape.accept_house,
        accept_ports: shape.accept_ports,
    }
}

fn one_direction(
    (policy, priority): (&'static str, u32),
    tier: Tier,
    subject: House,
    rules: Rules,
    (probes, what): (Vec<Probe>, &'static str),
) -> OrderedRules {
    OrderedRules {
        policy,
        tier,
        priority,
        subject,
        rules: vec![rules],
        probes,
        what,
    }
}

fn tcp_shape(accept_port: u16) -> Shape {
    Shape {
        whole: Ravenclaw,
        port_house_ports: vec![PortMatch::tcp(80)],
        accept_house: Hufflepuff,
        accept_ports: vec![PortMatch::tcp(accept_port)],
    }
}

fn udp_shape() -> Shape {
    Shape {
        whole: Ravenclaw,
        port_house_ports: vec![PortMatch::udp(5353)],
        accept_house: Gryffindor,
        accept_ports: vec![PortMatch::udp(53)],
    }
}

fn sctp_shape() -> Shape {
    Shape {
        whole: Gryffindor,
        port_house_ports: vec![PortMatch::sctp(9003)],
        accept_house: Hufflepuff,
        accept_ports: vec![PortMatch::sctp(9003)],
    }
}

fn tcp() -> (Vec<Probe>, &'static str) {
    (tcp_probes(), "for TCP protocol")
}

fn udp() -> (Vec<Probe>, &'static str) {
    (udp_probes(), "for UDP protocol")
}

fn sctp() -> (Vec<Probe>, &'static str) {
    (sctp_probes(), "for SCTP protocol")
}

pub fn ingress_tcp(tier: Tier) -> OrderedRules {
    let rules = rules(Direction::Ingress, tcp_shape(80));
    one_direction(
        named(tier, "ingress-tcp", 3),
        tier,
        Gryffindor,
        rules,
        tcp(),
    )
}

pub fn ingress_udp(tier: Tier) -> OrderedRules {
    let rules = rules(Direction::Ingress, udp_shape());
    one_direction(
        named(tier, "ingress-udp", 4),
        tier,
        Hufflepuff,
        rules,
        udp(),
    )
}

pub fn ingress_sctp(tier: Tier) -> OrderedRules {
    let rules = rules(Direction::Ingress, sctp_shape());
    one_direction(
        named(tier, "ingress-sctp", 5),
        tier,
        Ravenclaw,
        rules,
        sctp(),
    )
}

pub fn egress_tcp(tier: Tier) -> OrderedRules {
    let rules = rules(Direction::Egress, tcp_shape(8080));
    one_direction(named(tier, "egress-tcp", 6), tier, Gryffindor, rules, tcp())
}

pub fn egress_udp(tier: Tier) -> OrderedRules {
    let rules = rules(Direction::Egress, udp_shape());
    one_direction(named(tier, "egress-udp", 7), tier, Hufflepuff, rules, udp())
}

pub fn egress_sctp(tier: Tier) -> OrderedRules {
    let rules = rules(Direction::Egress, sctp_shape());
    one_direction(
        named(tier, "egress-sctp", 8),
        tier,
        Ravenclaw,
        rules,
        sctp(),
    )
}

/// Both directions, every protocol, in one policy on gryffindor.
pub fn gress(tier: Tier) -> OrderedRules {
    let denied_ports = || {
        vec![
            PortMatch::tcp(80),
            PortMatch::udp(53),
            PortMatch::sctp(9003),
        ]
    };
    let accepted = |tcp_port| {
        vec![
            PortMatch::tcp(tcp_port),
            PortMatch::udp(5353),
            PortMatch::sctp(9003),
        ]
    };
    let shape = |accept_ports| Shape {
        whole: Ravenclaw,
        port_house_ports: denied_ports(),
        accept_house: Hufflepuff,
        accept_ports,
    };
    let (policy, priority) = named(tier, "gress-rules", 15);
    OrderedRules {
        policy,
        tier,
        priority,
        subject: Gryffindor,
        rules: vec![
            rules(Direction::Egress, shape(accepted(8080))),
            rules(Direction::Ingress, shape(accepted(80))),
        ],
        probes: [tcp_probes(), udp_probes(), sctp_probes()].concat(),
        what: "across different protocols",
    }
}
