//! What cluster policy rules match: rules that fail closed, named ports,
//! `networks` peers and Segment `networks` members. Every verdict is read
//! from the compiled maps and checked against the reference evaluator.

mod common;

use common::tiered::{DB, OTHER, WEB, zones};
use common::{ICMP, TCP, UDP};
use netseg_policy::{DefaultAction, Direction};
use serde_json::{Value, json};

const IN: Direction = Direction::Ingress;
const OUT: Direction = Direction::Egress;
const EXTERNAL: &str = "203.0.113.9";

fn zone(name: &str) -> Value {
    json!({"matchLabels": {"zone": name}})
}

/// An Admin ClusterNetworkPolicy of priority 1 on the pods of namespace `subject`.
fn admin(subject: &str, field: &str, rules: Value) -> Value {
    let mut spec =
        json!({"tier": "Admin", "priority": 1, "subject": {"namespaces": zone(subject)}});
    spec[field] = rules;
    spec
}

/// An Admin SegmentPolicy of priority 1 on the members of Segment `subject`.
fn segment_admin(subject: &str, field: &str, rules: Value) -> Value {
    let mut spec = json!({"tier": "Admin", "priority": 1, "subject": {"segments": [subject]}});
    spec[field] = rules;
    spec
}

/// Segments `front` (namespace web) and `data` (namespace db).
fn with_segments(default_action: DefaultAction) -> common::Cluster {
    let mut c = zones(default_action);
    for (segment, ns) in [("front", "web"), ("data", "db")] {
        let posture = json!({"ingress": "Accept", "egress": "Accept"});
        c.add_segment(
            segment,
            json!({"members": [{"namespaces": zone(ns)}], "posture": posture}),
        );
    }
    c
}

#[test]
fn a_deny_or_pass_rule_that_fails_closed_denies_everything() {
    let mut c = zones(DefaultAction::Allow);
    let unknown_peer = json!([{"action": "Deny", "to": [{"domainNames": ["example.com"]}],
        "protocols": [{"tcp": {"destinationPort": {"number": 443}}}]}]);
    c.add_cnp("dns-names", admin("web", "egress", unknown_peer));
    let unknown_protocol =
        json!([{"action": "Pass", "from": [{"namespaces": zone("web")}], "protocols": [{}]}]);
    c.add_cnp("new-protocol", admin("db", "ingress", unknown_protocol));
    let m = c.compile();
    let deny_all = "deny by ClusterNetworkPolicy dns-names egress[0] (Deny)";
    assert_eq!(c.says(&m, "web/w", OUT, EXTERNAL, TCP, 443), deny_all);
    assert_eq!(c.says(&m, "web/w", OUT, DB, UDP, 53), deny_all);
    assert_eq!(c.says(&m, "web/w", OUT, OTHER, ICMP, 0), deny_all);
    assert_eq!(
        c.says(&m, "db/d", IN, OTHER, TCP, 80),
        "deny by ClusterNetworkPolicy new-protocol ingress[0] (Deny)",
        "a Pass rule that fails closed denies, whatever its peers"
    );
    assert_eq!(
        c.says(&m, "web/w", IN, OTHER, TCP, 80),
        "allow by default-action"
    );
}

#[test]
fn an_unknown_segment_name_fails_a_deny_rule_closed() {
    let mut c = with_segments(DefaultAction::Allow);
    let rule = json!([{"name": "typo", "action": "Deny", "from": [{"segments": ["frnot"]}]}]);
    c.add_segment_policy("guard", segment_admin("data", "ingress", rule));
    let m = c.compile();
    assert_eq!(
        c.says(&m, "db/d", IN, OTHER, TCP, 80),
        "deny by SegmentPolicy guard ingress[0] \"typo\" (Deny)"
    );
}

#[test]
fn an_accept_rule_with_an_unknown_peer_matches_nothing() {
    let mut c = with_segments(DefaultAction::Deny);
    let rules = json!([
        {"action": "Accept", "to": [{"namespaces": zone("db")}, {"domainNames": ["example.com"]}]},
        {"action": "Deny", "to": [{"namespaces": zone("db")}]},
    ]);
    c.add_cnp("partly-known", admin("web", "egress", rules));
    let unknown_segment = json!([{"action": "Accept", "from": [{"segments": ["front", "gone"]}]}]);
    c.add_segment_policy(
        "half-named",
        segment_admin("data", "ingress", unknown_segment),
    );
    let m = c.compile();
    assert_eq!(
        c.says(&m, "web/w", OUT, DB, TCP, 5432),
        "deny by ClusterNetworkPolicy partly-known egress[1] (Deny)",
        "the known peer of a failed Accept rule does not match either"
    );
    assert_eq!(
        c.says(&m, "db/d", IN, WEB, TCP, 5432),
        "allow by Segment data posture.ingress (Accept)",
        "the Accept rule naming an unknown Segment is skipped"
    );
}

#[test]
fn named_ports_resolve_on_the_destination_pod_for_any_protocol() {
    let mut c = zones(DefaultAction::Deny);
    let named = |field: &str, peer: &str, name: &str| {
        json!({"action": "Accept", field: [{"namespaces": zone(peer)}],
            "protocols": [{"destinationNamedPort": name}]})
    };
    c.add_cnp(
        "in",
        admin(
            "db",
            "ingress",
            json!([named("from", "web", "pg"), named("from", "web", "dns")]),
        ),
    );
    c.add_cnp(
        "out",
        admin("web", "egress", json!([named("to", "db", "pg")])),
    );
    let m = c.compile();
    let allow_in = |i| format!("allow by ClusterNetworkPolicy in ingress[{i}] (Accept)");
    assert_eq!(c.says(&m, "db/d", IN, WEB, TCP, 5432), allow_in(0));
    assert_eq!(
        c.says(&m, "db/d", IN, WEB, UDP, 53),
        allow_in(1),
        "dns is a UDP port"
    );
    assert_eq!(
        c.says(&m, "db/d", IN, WEB, TCP, 53),
        "deny by default-action"
    );
    assert_eq!(
        c.says(&m, "db/d", IN, WEB, TCP, 5433),
        "deny by default-action"
    );
    assert_eq!(
        c.says(&m, "web/w", OUT, DB, TCP, 5432),
        "allow by ClusterNetworkPolicy out egress[0] (Accept)",
        "egress: pg of the destination db/d"
    );
    assert_eq!(
        c.says(&m, "web/w", OUT, DB, UDP, 5432),
        "deny by default-action"
    );
    assert_eq!(
        c.says(&m, "web/w", OUT, OTHER, TCP, 5432),
        "deny by default-action"
    );
}

#[test]
fn networks_peers_match_pod_addresses_too() {
    let mut c = with_segments(DefaultAction::Allow);
    let everything = json!([{"action": "Deny", "to": [{"networks": ["0.0.0.0/0"]}]}]);
    c.add_cnp("no-v4", admin("web", "egress", everything));
    let nested = json!([
        {"action": "Accept", "from": [{"networks": ["10.1.0.1/32"]}]},
        {"action": "Deny", "from": [{"networks": ["10.0.0.0/8"]}]},
    ]);
    c.add_segment_policy("nested", segment_admin("data", "ingress", nested));
    let m = c.compile();
    let no_v4 = "deny by ClusterNetworkPolicy no-v4 egress[0] (Deny)";
    assert_eq!(c.says(&m, "web/w", OUT, DB, TCP, 5432), no_v4);
    assert_eq!(c.says(&m, "web/w", OUT, EXTERNAL, TCP, 443), no_v4);
    assert_eq!(
        c.says(&m, "web/w", OUT, "2001:db8::1", TCP, 443),
        "allow by Segment front posture.egress (Accept)"
    );
    assert_eq!(
        c.says(&m, "db/d", IN, WEB, TCP, 5432),
        "allow by SegmentPolicy nested ingress[0] (Accept)"
    );
    assert_eq!(
        c.says(&m, "db/d", IN, OTHER, TCP, 5432),
        "deny by SegmentPolicy nested ingress[1] (Deny)"
    );
}

#[test]
fn a_segment_networks_member_is_never_a_pod_address() {
    let mut c = with_segments(DefaultAction::Allow);
    // Takes in db/d's 10.2.0.1, which stays out: pods are members by selector.
    c.add_segment(
        "outside",
        json!({"members": [{"networks": ["10.2.0.0/16"]}]}),
    );
    let rule = json!([{"action": "Deny", "to": [{"segments": ["outside"]}]}]);
    c.add_segment_policy("fence", segment_admin("front", "egress", rule));
    let m = c.compile();
    assert_eq!(
        c.says(&m, "web/w", OUT, "10.2.5.5", TCP, 443),
        "deny by SegmentPolicy fence egress[0] (Deny)"
    );
    assert_eq!(
        c.says(&m, "web/w", OUT, DB, TCP, 5432),
        "allow by Segment front posture.egress (Accept)"
    );
}

#[test]
fn segment_policy_icmp_and_ports() {
    let mut c = with_segments(DefaultAction::Deny);
    let protocols = json!([{"icmp": {}}, {"udp": {}}, {"tcp": {"destinationPort": {"range": {"start": 5000, "end": 5432}}}}]);
    let rule =
        json!([{"action": "Deny", "from": [{"segments": ["front"]}], "protocols": protocols}]);
    c.add_segment_policy("quiet", segment_admin("data", "ingress", rule));
    let m = c.compile();
    let quiet = "deny by SegmentPolicy quiet ingress[0] (Deny)";
    for (protocol, port) in [(ICMP, 0), (UDP, 9), (TCP, 5000), (TCP, 5432)] {
        assert_eq!(
            c.says(&m, "db/d", IN, WEB, protocol, port),
            quiet,
            "{protocol}/{port}"
        );
    }
    let posture = "allow by Segment data posture.ingress (Accept)";
    for (protocol, port) in [(58, 0), (TCP, 4999), (TCP, 5433)] {
        assert_eq!(
            c.says(&m, "db/d", IN, WEB, protocol, port),
            posture,
            "{protocol}/{port}"
        );
    }
}
