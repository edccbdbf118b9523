//! Policies at equal priority (npa#385 and npa#396, merged after the
//! snapshot CNP.md reads; ported from their descriptions): every one of them
//! is enforced, whether they select different subjects or share one with
//! disjoint peers, in both tiers. And netseg's own tie-break, which upstream
//! leaves open: at equal tier and priority the policy whose name sorts first
//! decides (netseg orders a band by priority, then kind, then name).

use netseg_testbed::suite::{Case, Model};
use serde_json::json;

use super::houses::House::{self, Gryffindor, Hufflepuff, Ravenclaw, Slytherin};
use super::houses::{End, expect_pairs, namespace_named, tcp};
use super::objects::{Action, Direction, PortMatch, Tier, cnp, namespaces, rule};

pub fn cases(m: &Model) -> Vec<Case> {
    vec![
        different_subjects(m),
        same_subject(
            m,
            Tier::Admin,
            "npa#396 CNPAdminTierSamePrioritySameSubject",
        ),
        same_subject(
            m,
            Tier::Baseline,
            "npa#396 CNPBaselineTierSamePrioritySameSubject",
        ),
        baseline_different_subjects_same_peer(m),
        tie_broken_by_name(m),
    ]
}

fn house(house: House) -> serde_json::Value {
    namespaces(namespace_named(house))
}

fn ingress(name: &str, action: Action, from: House, ports: &[PortMatch]) -> serde_json::Value {
    rule(Direction::Ingress, name, action, vec![house(from)], ports)
}

/// Admin, priority 15: gryffindor takes only ravenclaw, hufflepuff only
/// slytherin; each denies everything else, its own house included.
fn different_subjects(m: &Model) -> Case {
    let policy = |name, subject, accepted: House| {
        let deny_all_else = rule(
            Direction::Ingress,
            "deny-all-else",
            Action::Deny,
            vec![namespaces(json!({ "matchLabels": {} }))],
            &[],
        );
        let accept = ingress(
            &format!("allow-from-{}", accepted.name()),
            Action::Accept,
            accepted,
            &[],
        );
        cnp(
            name,
            Tier::Admin,
            15,
            house(subject),
            vec![accept, deny_all_else],
            vec![],
        )
    };
    Case::new(m, "npa#385 CNPAdminTierSamePriority")
        .then("Should allow traffic matching, and deny traffic not matching, same priority disjoint policies")
        .policy(policy("same-priority-1", Gryffindor, Ravenclaw))
        .policy(policy("same-priority-2", Hufflepuff, Slytherin))
        .expect(tcp(80), |r| {
            expect_pairs(r, |from, to| match to.house {
                Gryffindor => from.house == Ravenclaw,
                Hufflepuff => from.house == Slytherin,
                _ => true,
            });
        })
}

/// Two policies on gryffindor at one priority: one denies slytherin, the
/// other hufflepuff; ravenclaw is the control that neither over-applies.
fn same_subject(m: &Model, tier: Tier, name: &str) -> Case {
    let policy = |name, denied: House| {
        let deny = ingress(
            &format!("deny-from-{}", denied.name()),
            Action::Deny,
            denied,
            &[],
        );
        cnp(name, tier, 50, house(Gryffindor), vec![deny], vec![])
    };
    Case::new(m, name)
        .then("both Deny rules of same priority policies on one subject are enforced")
        .policy(policy("same-subject-deny-slytherin", Slytherin))
        .policy(policy("same-subject-deny-hufflepuff", Hufflepuff))
        .expect(tcp(80), |r| {
            expect_pairs(r, |from, to| {
                to.house != Gryffindor || !matches!(from.house, Slytherin | Hufflepuff)
            });
        })
}

/// Two Baseline policies at one priority on different subjects deny the
/// same peer at different ports: a rule applied to the other subject shows.
fn baseline_different_subjects_same_peer(m: &Model) -> Case {
    let policy = |name, subject, port| {
        let deny = ingress(
            &format!("deny-from-slytherin-at-port-{port}"),
            Action::Deny,
            Slytherin,
            &[PortMatch::tcp(port)],
        );
        cnp(name, Tier::Baseline, 20, house(subject), vec![deny], vec![])
    };
    let denied_at = |port: u16| {
        move |from: End, to: End| {
            let subject_port = match to.house {
                Gryffindor => Some(80),
                Hufflepuff => Some(8080),
                _ => None,
            };
            from.house != Slytherin || subject_port != Some(port)
        }
    };
    Case::new(m, "npa#396 CNPBaselineTierSamePriority")
        .then("same priority Baseline policies on different subjects each deny only their own port")
        .policy(policy("baseline-same-priority-1", Gryffindor, 80))
        .policy(policy("baseline-same-priority-2", Hufflepuff, 8080))
        .expect(tcp(80), |r| expect_pairs(r, denied_at(80)))
        .expect(tcp(8080), |r| expect_pairs(r, denied_at(8080)))
}

/// netseg: at equal tier and priority, the policy whose name sorts first
/// decides a connection both match.
fn tie_broken_by_name(m: &Model) -> Case {
    let policy = |name, action| {
        let rule = ingress("slytherin", action, Slytherin, &[]);
        cnp(name, Tier::Admin, 30, house(Gryffindor), vec![rule], vec![])
    };
    let slytherin_to_gryffindor = |allowed: bool| {
        move |from: End, to: End| allowed || (from.house, to.house) != (Slytherin, Gryffindor)
    };
    Case::new(
        m,
        "netseg tie-break: equal priority, the name sorting first decides",
    )
    .then("tie-a accepts slytherin, tie-b denies it")
    .policy(policy("tie-a", Action::Accept))
    .policy(policy("tie-b", Action::Deny))
    .expect(tcp(80), |r| expect_pairs(r, slytherin_to_gryffindor(true)))
    .then("tie-a denies slytherin, tie-b accepts it")
    .policy(policy("tie-a", Action::Deny))
    .policy(policy("tie-b", Action::Accept))
    .expect(tcp(80), |r| expect_pairs(r, slytherin_to_gryffindor(false)))
}
