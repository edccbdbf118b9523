//! The precedence of the bands, one case each: Admin, NetworkPolicy,
//! Baseline, Segment posture and the default, with Pass, ties and audit.
//! Every verdict is read from the compiled maps and checked against the
//! reference evaluator (see `common::Cluster::verdict`).

mod common;

use common::tiered::{DB, OTHER, WEB, zones};
use common::{TCP, UDP};
use netseg_policy::{Band, DefaultAction, Direction};
use serde_json::{Value, json};

const IN: Direction = Direction::Ingress;
const OUT: Direction = Direction::Egress;

fn zone(name: &str) -> Value {
    json!({"matchLabels": {"zone": name}})
}

/// A cluster policy spec on the pods of namespace `subject`.
fn spec(tier: &str, priority: i32, subject: &str, rules: Value) -> Value {
    let mut spec =
        json!({"tier": tier, "priority": priority, "subject": {"namespaces": zone(subject)}});
    for (field, list) in rules.as_object().into_iter().flatten() {
        spec[field] = list.clone();
    }
    spec
}

/// One rule with `action` for the pods of namespace `peer`.
fn from(action: &str, peer: &str) -> Value {
    json!({"action": action, "from": [{"namespaces": zone(peer)}]})
}

/// A NetworkPolicy on every pod of its namespace that isolates ingress.
fn isolate_ingress(rules: Value) -> Value {
    json!({"podSelector": {}, "policyTypes": ["Ingress"], "ingress": rules})
}

#[test]
fn admin_accept_beats_networkpolicy_isolation() {
    let mut c = zones(DefaultAction::Allow);
    c.add("db", "z-deny", isolate_ingress(json!([])));
    c.add("db", "a-deny", isolate_ingress(json!([])));
    let web_pg = json!({"action": "Accept", "from": [{"namespaces": zone("web")}],
        "protocols": [{"tcp": {"destinationPort": {"number": 5432}}}]});
    c.add_cnp(
        "web-pg",
        spec("Admin", 10, "db", json!({"ingress": [web_pg]})),
    );
    let m = c.compile();
    assert_eq!(
        c.says(&m, "db/d", IN, WEB, TCP, 5432),
        "allow by ClusterNetworkPolicy web-pg ingress[0] (Accept)"
    );
    assert_eq!(
        c.says(&m, "db/d", IN, WEB, TCP, 80),
        "deny by NetworkPolicy isolation in db (a-deny, z-deny)"
    );
}

#[test]
fn admin_deny_beats_networkpolicy_allow() {
    let mut c = zones(DefaultAction::Deny);
    c.add("db", "all", isolate_ingress(json!([{}])));
    c.add_cnp(
        "no-web",
        spec("Admin", 10, "db", json!({"ingress": [from("Deny", "web")]})),
    );
    let m = c.compile();
    assert_eq!(
        c.says(&m, "db/d", IN, WEB, TCP, 5432),
        "deny by ClusterNetworkPolicy no-web ingress[0] (Deny)"
    );
    assert_eq!(
        c.says(&m, "db/d", IN, OTHER, TCP, 5432),
        "allow by NetworkPolicy db/all ingress[0] (Accept)"
    );
}

#[test]
fn admin_pass_hands_over_to_networkpolicy() {
    let mut c = zones(DefaultAction::Allow);
    let pg = json!([{"ports": [{"port": 5432}]}]);
    c.add("db", "pg", isolate_ingress(pg));
    c.add_cnp(
        "hand-over",
        spec("Admin", 1, "db", json!({"ingress": [from("Pass", "web")]})),
    );
    // Later in the band, so the Pass skips it.
    c.add_cnp(
        "deny-all",
        spec("Admin", 2, "db", json!({"ingress": [from("Deny", "web")]})),
    );
    let m = c.compile();
    let pass = "after Pass by ClusterNetworkPolicy hand-over ingress[0] (Pass)";
    assert_eq!(
        c.says(&m, "db/d", IN, WEB, TCP, 5432),
        format!("allow by NetworkPolicy db/pg ingress[0] (Accept), {pass}")
    );
    assert_eq!(
        c.says(&m, "db/d", IN, WEB, TCP, 80),
        format!("deny by NetworkPolicy isolation in db (pg), {pass}")
    );
    assert_eq!(
        c.says(&m, "db/d", IN, OTHER, TCP, 80),
        "deny by NetworkPolicy isolation in db (pg)"
    );
}

#[test]
fn admin_pass_without_networkpolicy_goes_to_baseline() {
    let mut c = zones(DefaultAction::Allow);
    c.add_cnp(
        "hand-over",
        spec("Admin", 1, "db", json!({"ingress": [from("Pass", "web")]})),
    );
    c.add_cnp(
        "floor",
        spec(
            "Baseline",
            1,
            "db",
            json!({"ingress": [from("Deny", "web")]}),
        ),
    );
    let m = c.compile();
    let verdict = c
        .verdict(&m, "db/d", IN, common::ip(WEB), TCP, 80)
        .expect("an endpoint");
    assert!(!verdict.allow);
    let decider = verdict.rule().expect("a rule decides");
    assert_eq!(
        (decider.band, decider.name.as_str()),
        (Band::Baseline, "floor")
    );
    let passes: Vec<(Band, &str)> = verdict
        .passed_by
        .iter()
        .map(|p| (p.band, p.name.as_str()))
        .collect();
    assert_eq!(passes, [(Band::Admin, "hand-over")]);
}

#[test]
fn baseline_pass_goes_to_posture_then_default() {
    let mut c = zones(DefaultAction::Deny);
    c.add_cnp(
        "skip",
        spec(
            "Baseline",
            1,
            "web",
            json!({"ingress": [from("Pass", "other")]}),
        ),
    );
    c.add_cnp(
        "skip-db",
        spec(
            "Baseline",
            1,
            "db",
            json!({"ingress": [from("Pass", "other")]}),
        ),
    );
    c.add_cnp(
        "never",
        spec(
            "Baseline",
            2,
            "db",
            json!({"ingress": [from("Deny", "other")]}),
        ),
    );
    c.add_segment(
        "data",
        json!({"members": [{"namespaces": zone("db")}], "posture": {"ingress": "Accept"}}),
    );
    let m = c.compile();
    assert_eq!(
        c.says(&m, "db/d", IN, OTHER, TCP, 80),
        "allow by Segment data posture.ingress (Accept), after Pass by ClusterNetworkPolicy skip-db ingress[0] (Pass)"
    );
    assert_eq!(
        c.says(&m, "web/w", IN, OTHER, TCP, 80),
        "deny by default-action, after Pass by ClusterNetworkPolicy skip ingress[0] (Pass)"
    );
    assert_eq!(
        c.says(&m, "web/w", IN, DB, TCP, 80),
        "deny by default-action"
    );
    assert_eq!(
        c.says(&m, "db/d", OUT, OTHER, TCP, 80),
        "deny by Segment data posture.egress (Deny)",
        "a posture left unset denies"
    );
}

#[test]
fn networkpolicy_isolation_is_per_direction() {
    let mut c = zones(DefaultAction::Allow);
    c.add("db", "closed", isolate_ingress(json!([])));
    let rules = json!({
        "ingress": [from("Accept", "web")],
        "egress": [{"action": "Deny", "to": [{"namespaces": {}}]}],
    });
    c.add_cnp("floor", spec("Baseline", 1, "db", rules));
    let m = c.compile();
    assert_eq!(
        c.says(&m, "db/d", OUT, WEB, TCP, 80),
        "deny by ClusterNetworkPolicy floor egress[0] (Deny)",
        "an ingress-only NetworkPolicy leaves egress to Baseline"
    );
    assert_eq!(
        c.says(&m, "db/d", IN, WEB, TCP, 80),
        "deny by NetworkPolicy isolation in db (closed)",
        "isolation decides before Baseline"
    );
}

#[test]
fn equal_priority_cluster_network_policy_before_segment_policy_then_name() {
    let mut c = zones(DefaultAction::Deny);
    c.add_segment("data", json!({"members": [{"namespaces": zone("db")}]}));
    c.add_segment("front", json!({"members": [{"namespaces": zone("web")}]}));
    let web_80 = json!({"action": "Deny", "from": [{"namespaces": zone("web")}],
        "protocols": [{"tcp": {"destinationPort": {"number": 80}}}]});
    c.add_cnp(
        "b-accept",
        spec(
            "Admin",
            5,
            "db",
            json!({"ingress": [from("Accept", "web")]}),
        ),
    );
    c.add_cnp(
        "c-deny-80",
        spec("Admin", 5, "db", json!({"ingress": [web_80]})),
    );
    let segment_rule = json!({"action": "Deny", "from": [{"segments": ["front"]}]});
    c.add_segment_policy(
        "a-first-by-name",
        json!({"tier": "Admin", "priority": 5, "subject": {"segments": ["data"]}, "ingress": [segment_rule]}),
    );
    let m = c.compile();
    assert_eq!(
        c.says(&m, "db/d", IN, WEB, TCP, 80),
        "allow by ClusterNetworkPolicy b-accept ingress[0] (Accept)",
        "b-accept before c-deny-80 (name), both before the SegmentPolicy (kind)"
    );
    c.snapshot.cluster_network_policies.remove(0);
    let m = c.compile();
    assert_eq!(
        c.says(&m, "db/d", IN, WEB, TCP, 80),
        "deny by ClusterNetworkPolicy c-deny-80 ingress[0] (Deny)"
    );
    assert_eq!(
        c.says(&m, "db/d", IN, WEB, TCP, 5432),
        "deny by SegmentPolicy a-first-by-name ingress[0] (Deny)"
    );
}

#[test]
fn a_second_policy_of_a_name_is_ignored_whatever_its_tier() {
    let mut c = zones(DefaultAction::Allow);
    c.add_cnp(
        "twice",
        spec(
            "Baseline",
            1,
            "db",
            json!({"ingress": [from("Accept", "web")]}),
        ),
    );
    c.add_cnp(
        "twice",
        spec("Admin", 1, "db", json!({"ingress": [from("Deny", "web")]})),
    );
    let m = c.compile();
    assert_eq!(
        c.says(&m, "db/d", IN, WEB, TCP, 80),
        "allow by ClusterNetworkPolicy twice ingress[0] (Accept)"
    );
    assert_eq!(m.verdicts.values().filter(|v| !v.allow).count(), 0);
}

#[test]
fn posture_of_several_segments() {
    let mut c = zones(DefaultAction::Allow);
    let member = json!([{"pods": {"podSelector": {"matchLabels": {"app": "db"}}}}]);
    let posture = |ingress: &str| json!({"members": member, "posture": {"ingress": ingress, "egress": "Accept"}});
    c.add_segment("c-closed", posture("Deny"));
    c.add_segment("a-open", posture("Accept"));
    c.add_segment("b-closed", posture("Deny"));
    c.add_segment(
        "web-open",
        json!({"members": [{"namespaces": zone("web")}], "posture": {"ingress": "Accept"}}),
    );
    let m = c.compile();
    assert_eq!(
        c.says(&m, "db/d", IN, WEB, TCP, 80),
        "deny by Segment b-closed posture.ingress (Deny)",
        "any Deny wins, named by the first denying Segment"
    );
    assert_eq!(
        c.says(&m, "db/d", OUT, WEB, TCP, 80),
        "allow by Segment a-open posture.egress (Accept)",
        "all accept: the first Segment by name"
    );
    assert_eq!(
        c.says(&m, "web/w", IN, DB, UDP, 53),
        "allow by Segment web-open posture.ingress (Accept)"
    );
    assert_eq!(
        c.says(&m, "other/o", IN, DB, UDP, 53),
        "allow by default-action"
    );
}

#[test]
fn audit_would_deny_and_would_allow() {
    let mut c = zones(DefaultAction::Allow);
    c.add_segment("data", json!({"members": [{"namespaces": zone("db")}], "posture": {"ingress": "Accept", "egress": "Deny"}}));
    c.add_segment("front", json!({"members": [{"namespaces": zone("web")}]}));
    let audit = |tier: &str, rules: Value| {
        let mut spec = json!({"tier": tier, "priority": 1, "mode": "Audit", "subject": {"segments": ["data"]}});
        for (field, list) in rules.as_object().into_iter().flatten() {
            spec[field] = list.clone();
        }
        spec
    };
    let deny_front = json!({"action": "Deny", "from": [{"segments": ["front"]}]});
    let accept_front = json!({"action": "Accept", "to": [{"segments": ["front"]}]});
    c.add_segment_policy("tighten", audit("Admin", json!({"ingress": [deny_front]})));
    c.add_segment_policy(
        "loosen",
        audit("Baseline", json!({"egress": [accept_front]})),
    );
    let m = c.compile();
    assert_eq!(
        c.says(&m, "db/d", IN, WEB, TCP, 5432),
        "allow by Segment data posture.ingress (Accept); audit would deny by SegmentPolicy tighten ingress[0] (Deny)"
    );
    assert_eq!(
        c.says(&m, "db/d", OUT, WEB, TCP, 80),
        "deny by Segment data posture.egress (Deny); audit would allow by SegmentPolicy loosen egress[0] (Accept)"
    );
    assert_eq!(
        c.says(&m, "db/d", IN, OTHER, TCP, 5432),
        "allow by Segment data posture.ingress (Accept)",
        "no audit rule matches: no audit difference"
    );
    c.snapshot.segment_policies.clear();
    let unaudited = c.compile();
    assert_eq!(
        c.says(&unaudited, "db/d", IN, WEB, TCP, 5432),
        "allow by Segment data posture.ingress (Accept)"
    );
}
