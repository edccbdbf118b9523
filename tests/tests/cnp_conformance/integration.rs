//! Upstream's `CNPAdminTierIntegration` (#9: an Admin Pass hands over to a
//! NetworkPolicy, then, once it is deleted, to a Baseline policy) and
//! `CNPAdminTierPriorityField` (#10: lowering a Pass policy's priority below
//! a Deny one's lets a Baseline Accept decide), between gryffindor and
//! slytherin over TCP 80 and 8080.

use netseg_testbed::suite::{Case, Model};
use serde_json::{Value, json};

use super::houses::House::{Gryffindor, Slytherin};
use super::houses::{End, House, expect_pairs, house_label, tcp_probes};
use super::objects::{Action, Direction, Tier, cnp, house_pods, namespaces, rule};

/// A policy on gryffindor with one ingress rule from slytherin and one
/// egress rule to it, peers written as `peer(slytherin)`.
fn both_ways(
    name: &str,
    tier: Tier,
    priority: u32,
    (ingress, egress): (Action, Action),
    peer: fn(House) -> Value,
) -> Value {
    let word = |action| match action {
        Action::Accept => "allow",
        Action::Deny => "deny",
        Action::Pass => "pass",
    };
    cnp(
        name,
        tier,
        priority,
        peer(Gryffindor),
        vec![rule(
            Direction::Ingress,
            &format!("{}-all-ingress-from-slytherin", word(ingress)),
            ingress,
            vec![peer(Slytherin)],
            &[],
        )],
        vec![rule(
            Direction::Egress,
            &format!("{}-all-egress-to-slytherin", word(egress)),
            egress,
            vec![peer(Slytherin)],
            &[],
        )],
    )
}

fn house_namespaces(house: House) -> Value {
    namespaces(house_label(house))
}

/// `allow-gress-from-to-slytherin-to-gryffindor`: isolates every gryffindor
/// pod both ways and allows slytherin only.
fn network_policy() -> Value {
    let slytherin = json!([{ "namespaceSelector": house_label(Slytherin) }]);
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": "allow-gress-from-to-slytherin-to-gryffindor",
            "namespace": Gryffindor.namespace(),
        },
        "spec": {
            "podSelector": {},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{ "from": slytherin }],
            "egress": [{ "to": slytherin }],
        },
    })
}

/// Which connections gryffindor makes and takes, by the other end's house
/// (another gryffindor pod included); everything else stays allowed.
fn expect(case: Case, takes: impl Fn(House) -> bool, makes: impl Fn(House) -> bool) -> Case {
    let mut case = case;
    for probe in tcp_probes() {
        case = case.expect(probe, |r| {
            expect_pairs(r, |from: End, to: End| {
                (to.house != Gryffindor || takes(from.house))
                    && (from.house != Gryffindor || makes(to.house))
            });
        });
    }
    case
}

pub fn integration(m: &Model, name: &str) -> Case {
    let admin = |ingress, egress| {
        both_ways(
            "pass-example",
            Tier::Admin,
            10,
            (ingress, egress),
            house_namespaces,
        )
    };
    let baseline = both_ways(
        "default",
        Tier::Baseline,
        10,
        (Action::Deny, Action::Deny),
        house_namespaces,
    );
    let slytherin_only = |house| house == Slytherin;
    let nothing = |_| false;
    let not_slytherin = |house| house != Slytherin;
    let case = Case::new(m, name)
        .then("Should Deny traffic from slytherin to gryffindor respecting admin CNP")
        .policy(admin(Action::Deny, Action::Deny))
        .policy(network_policy())
        .policy(baseline);
    // The NetworkPolicy isolates gryffindor both ways: nothing else gets in
    // or out, another gryffindor pod included.
    let case = expect(case, nothing, nothing)
        .then("Should Deny traffic to slytherin from gryffindor respecting admin CNP");
    let case = expect(case, nothing, nothing)
        .then("Should support a 'pass-ingress' policy for admin CNP and respect the match for network policy")
        .policy(admin(Action::Pass, Action::Deny));
    let case = expect(case, slytherin_only, nothing)
        .then("Should support a 'pass-egress' policy for admin CNP and respect the match for network policy")
        .policy(admin(Action::Pass, Action::Pass));
    let case = expect(case, slytherin_only, slytherin_only)
        .then("Should support a 'pass-ingress' policy for admin CNP and respect the match for baseline cluster network policy")
        .delete_policy(&Gryffindor.namespace(), "allow-gress-from-to-slytherin-to-gryffindor");
    let case = expect(case, not_slytherin, not_slytherin)
        .then("Should support a 'pass-egress' policy for admin CNP and respect the match for baseline cluster network policy");
    expect(case, not_slytherin, not_slytherin)
}

pub fn priority_field(m: &Model, name: &str) -> Case {
    let pass = |priority| {
        both_ways(
            "old-priority-60-new-priority-40-example",
            Tier::Admin,
            priority,
            (Action::Pass, Action::Pass),
            house_pods,
        )
    };
    let not_slytherin = |house| house != Slytherin;
    let case = Case::new(m, name)
        .then("Should Deny traffic from slytherin to gryffindor respecting admin CNP")
        .policy(both_ways(
            "priority-50-example",
            Tier::Admin,
            50,
            (Action::Deny, Action::Deny),
            house_pods,
        ))
        .policy(pass(60))
        .policy(both_ways(
            "default",
            Tier::Baseline,
            10,
            (Action::Accept, Action::Accept),
            house_pods,
        ));
    let case = expect(case, not_slytherin, not_slytherin)
        .then("Should Deny traffic to slytherin from gryffindor respecting admin CNP");
    let case = expect(case, not_slytherin, not_slytherin)
        .then("Should respect admin CNP priority field; thus passing both ingress and egress traffic over to baseline CNP")
        .policy(pass(40));
    expect(case, |_| true, |_| true)
}
