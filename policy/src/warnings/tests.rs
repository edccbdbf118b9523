use serde_json::{Value, json};

use super::{Warning, warnings};
use crate::Snapshot;
use crate::fixtures::{cnp, segment, segment_policy, shop, zones};
use crate::types::PolicyKind;

fn lines(snapshot: &Snapshot) -> Vec<String> {
    warnings(snapshot).iter().map(Warning::to_string).collect()
}

fn admin_cnp(priority: i32, subject: Value, rules: Value) -> Value {
    let mut spec = json!({"tier": "Admin", "priority": priority, "subject": subject});
    if let (Some(spec), Some(rules)) = (spec.as_object_mut(), rules.as_object()) {
        spec.extend(rules.clone());
    }
    spec
}

#[test]
fn rules_that_fail_closed_say_what_they_become() {
    let mut snapshot = shop();
    snapshot.cluster_network_policies = vec![cnp(
        "egress-guard",
        admin_cnp(
            10,
            json!({"namespaces": {}}),
            json!({"egress": [
                {"action": "Deny", "to": [{"domainNames": ["example.com"]}]},
                {"action": "Accept", "to": [{"futurePeer": {}}]},
                {"action": "Pass", "to": [{"namespaces": {}}], "protocols": [{}]},
            ]}),
        ),
    )];
    assert_eq!(
        lines(&snapshot),
        [
            "ClusterNetworkPolicy egress-guard: spec.egress[0].to[0]: domainNames peers are not \
             implemented: the rule fails closed: this Deny rule denies all egress traffic of the \
             policy's subjects",
            "ClusterNetworkPolicy egress-guard: spec.egress[1].to[0]: sets no peer field netseg \
             knows: the rule fails closed: this Accept rule matches nothing",
            "ClusterNetworkPolicy egress-guard: spec.egress[2].protocols[0]: sets no protocol field \
             netseg knows: the rule fails closed: this Pass rule becomes Deny and denies all egress \
             traffic of the policy's subjects",
        ]
    );
}

#[test]
fn unknown_segment_names_are_reported_in_peers_and_subjects() {
    let mut snapshot = shop();
    snapshot.segments = zones();
    snapshot.segment_policies = vec![
        segment_policy(
            "to-data",
            json!({"tier": "Admin", "priority": 5, "subject": {"segments": ["data", "billing"]},
                   "ingress": [{"action": "Accept", "from": [{"segments": ["front", "partners"]}]}]}),
        ),
        segment_policy(
            "ghost",
            json!({"tier": "Baseline", "priority": 5, "mode": "Audit",
                   "subject": {"segments": ["nowhere"]},
                   "egress": [{"action": "Deny", "to": [{"segments": ["elsewhere"]}]}]}),
        ),
    ];
    assert_eq!(
        lines(&snapshot),
        [
            "SegmentPolicy ghost: spec.egress[0].to[0].segments[0]: Segment \"elsewhere\" does not \
             exist or is invalid: the rule fails closed: this Deny rule denies all egress traffic \
             of the policy's subjects (mode Audit: in the audit verdict only)",
            "SegmentPolicy ghost: spec.subject.segments[0]: Segment \"nowhere\" does not exist or is \
             invalid: the policy applies to no pod",
            "SegmentPolicy to-data: spec.ingress[0].from[0].segments[1]: Segment \"partners\" does \
             not exist or is invalid: the rule fails closed: this Accept rule matches nothing",
            "SegmentPolicy to-data: spec.subject.segments[1]: Segment \"billing\" does not exist or \
             is invalid: the policy selects no pods through it",
        ]
    );
}

/// A CNP denying shop -> data ingress and a SegmentPolicy accepting front
/// -> data ingress, both Admin at `priority`; the SegmentPolicy's rule
/// takes `protocols` when given.
fn deny_and_accept(priority_cnp: i32, accept_protocols: Option<Value>) -> Snapshot {
    let mut snapshot = shop();
    snapshot.segments = zones();
    snapshot.cluster_network_policies = vec![cnp(
        "deny-shop-to-data",
        admin_cnp(
            priority_cnp,
            json!({"namespaces": {"matchLabels": {"zone": "data"}}}),
            json!({"ingress": [{"action": "Deny",
                                "from": [{"namespaces": {"matchLabels": {"zone": "shop"}}}],
                                "protocols": [{"tcp": {"destinationPort": {"number": 5432}}}]}]}),
        ),
    )];
    let mut rule =
        json!({"name": "front-in", "action": "Accept", "from": [{"segments": ["front"]}]});
    if let Some(protocols) = accept_protocols {
        rule["protocols"] = protocols;
    }
    snapshot.segment_policies = vec![segment_policy(
        "front-to-data",
        json!({"tier": "Admin", "priority": 10, "subject": {"segments": ["data"]}, "ingress": [rule]}),
    )];
    snapshot
}

#[test]
fn conflicting_rules_at_equal_priority_name_both_and_the_order_applied() {
    let found = warnings(&deny_and_accept(10, None));
    assert_eq!(found.len(), 1, "{found:?}");
    let warning = &found[0];
    assert_eq!(
        (warning.kind, warning.name.as_str(), warning.field.as_str()),
        (
            PolicyKind::SegmentPolicy,
            "front-to-data",
            "spec.ingress[0]"
        )
    );
    assert_eq!(
        warning.message,
        "this Accept rule may match the same traffic as ClusterNetworkPolicy deny-shop-to-data \
         ingress[0] (Deny), at the same tier Admin and priority 10: equal priorities have no order \
         in the API; netseg applies ClusterNetworkPolicy deny-shop-to-data first (order: tier, \
         priority, ClusterNetworkPolicy before SegmentPolicy, name, rule index), so this rule \
         decides only traffic that one does not match; give the policies different priorities to \
         state the order"
    );
}

#[test]
fn rules_that_cannot_meet_do_not_conflict() {
    assert_eq!(
        lines(&deny_and_accept(11, None)),
        Vec::<String>::new(),
        "different priorities have an order"
    );
    let https = json!([{"tcp": {"destinationPort": {"number": 443}}}]);
    assert_eq!(
        lines(&deny_and_accept(10, Some(https))),
        Vec::<String>::new(),
        "disjoint ports"
    );
    let udp = json!([{"udp": {}}]);
    assert_eq!(lines(&deny_and_accept(10, Some(udp))), Vec::<String>::new());
    let around = json!([{"tcp": {"destinationPort": {"range": {"start": 5000, "end": 6000}}}}]);
    assert_eq!(lines(&deny_and_accept(10, Some(around))).len(), 1);
}

#[test]
fn policies_with_disjoint_subjects_or_peers_do_not_conflict() {
    let mut snapshot = deny_and_accept(10, None);
    snapshot.segment_policies = vec![segment_policy(
        "front-from-data",
        json!({"tier": "Admin", "priority": 10, "subject": {"segments": ["front"]},
               "ingress": [{"action": "Accept", "from": [{"segments": ["data"]}]}]}),
    )];
    assert_eq!(lines(&snapshot), Vec::<String>::new(), "different subjects");
    snapshot.segment_policies = vec![segment_policy(
        "partners-to-data",
        json!({"tier": "Admin", "priority": 10, "subject": {"segments": ["data"]},
               "ingress": [{"action": "Accept", "from": [{"networks": ["198.51.100.0/24"]}]}]}),
    )];
    assert_eq!(lines(&snapshot), Vec::<String>::new(), "different peers");
    snapshot.segment_policies = vec![segment_policy(
        "web-net-to-data",
        json!({"tier": "Admin", "priority": 10, "subject": {"segments": ["data"]},
               "ingress": [{"action": "Pass", "from": [{"networks": ["10.0.0.0/30"]}]}]}),
    )];
    assert_eq!(
        lines(&snapshot).len(),
        1,
        "a CIDR holding a shop pod's address meets the shop namespaces peer"
    );
}

#[test]
fn a_segment_cidr_covering_pod_addresses_is_reported() {
    let mut snapshot = shop();
    snapshot.segments = vec![segment(
        "outside",
        json!({"members": [
            {"networks": ["203.0.113.0/24", "10.0.0.0/24"]},
            {"networks": ["10.0.0.0/8"]},
        ]}),
    )];
    assert_eq!(
        lines(&snapshot),
        [
            "Segment outside: spec.members[0].networks[1]: 10.0.0.0/24 covers the addresses of 2 \
             pod(s): shop/web (10.0.0.1), shop/api (10.0.0.2); they are not members through it \
             (networks members are non-pod addresses; pods join a Segment by selector only)",
            "Segment outside: spec.members[1].networks[0]: 10.0.0.0/8 covers the addresses of 3 \
             pod(s): shop/web (10.0.0.1), shop/api (10.0.0.2), data/db (10.0.1.1); they are not \
             members through it (networks members are non-pod addresses; pods join a Segment by \
             selector only)",
        ]
    );
}

/// The shortcut of `warnings` without tiered policies or Segments (pods
/// and NetworkPolicies alone); with a Segment the check runs
/// (`a_segment_cidr_covering_pod_addresses_is_reported`).
#[test]
fn pods_alone_warn_of_nothing() {
    let snapshot = shop();
    assert!(!snapshot.pods.is_empty() && snapshot.segments.is_empty());
    assert_eq!(lines(&snapshot), Vec::<String>::new());
}

/// A compiler's check parses only what it has not compiled, and finds
/// what a check from scratch finds, before and after a change.
#[test]
fn a_compilers_check_finds_what_a_fresh_check_finds() {
    let mut snapshot = shop();
    snapshot.segments = vec![segment(
        "outside",
        json!({"members": [{"networks": ["10.0.0.0/24"]}]}),
    )];
    let mut compiler = crate::Compiler::new();
    compiler.compile(&snapshot, &crate::CompileOptions::default());
    assert_eq!(compiler.warnings(&snapshot), warnings(&snapshot));
    assert_eq!(compiler.warnings(&snapshot).len(), 1);
    snapshot.segments = vec![segment(
        "outside",
        json!({"members": [{"networks": ["10.0.0.0/8"]}]}),
    )];
    let fresh = warnings(&snapshot);
    assert_eq!(compiler.warnings(&snapshot), fresh);
    assert!(fresh[0].to_string().contains("3 pod(s)"), "{fresh:?}");
}
