//! npa#386 (merged after the snapshot CNP.md reads): a ClusterNetworkPolicy
//! with rules in one direction only never changes the other direction.
//! Upstream probes the positive control and two pairs of the other
//! direction; here every pair is probed, slytherin included: with only an
//! egress Deny to slytherin, slytherin still reaches gryffindor (the reply
//! goes back as part of an allowed connection), and the other way round.

use netseg_testbed::suite::{Case, Model};

use super::houses::House::{Gryffindor, Slytherin};
use super::houses::{expect_pairs, namespace_named, tcp, udp};
use super::objects::{Action, Direction, Tier, cnp, namespaces, rule};

pub fn cases(m: &Model) -> Vec<Case> {
    let mut cases = Vec::new();
    for (tier, prefix, short) in [
        (Tier::Admin, "admin", "CNPAdminTier"),
        (Tier::Baseline, "baseline", "CNPBaselineTier"),
    ] {
        cases.push(one_direction(m, tier, Direction::Ingress, prefix, short));
        cases.push(one_direction(m, tier, Direction::Egress, prefix, short));
    }
    cases
}

/// Gryffindor denies slytherin in `direction` only.
fn one_direction(m: &Model, tier: Tier, direction: Direction, prefix: &str, short: &str) -> Case {
    let (rules_name, unaffected) = match direction {
        Direction::Ingress => ("IngressRulesEgressUnaffected", "egress"),
        Direction::Egress => ("EgressRulesIngressUnaffected", "ingress"),
    };
    let deny = rule(
        direction,
        &format!("deny-{}-slytherin", direction.peers_field()),
        Action::Deny,
        vec![namespaces(namespace_named(Slytherin))],
        &[],
    );
    let (ingress, egress) = match direction {
        Direction::Ingress => (vec![deny], vec![]),
        Direction::Egress => (vec![], vec![deny]),
    };
    let policy = cnp(
        &format!("{prefix}-{}-isolation", direction.field()),
        tier,
        20,
        namespaces(namespace_named(Gryffindor)),
        ingress,
        egress,
    );
    let denied = |from, to| match direction {
        Direction::Ingress => (from, to) == (Slytherin, Gryffindor),
        Direction::Egress => (from, to) == (Gryffindor, Slytherin),
    };
    Case::new(m, format!("npa#386 {short}{rules_name}"))
        .then(&format!(
            "the {} rule is enforced and {unaffected} is unaffected, slytherin included",
            direction.field()
        ))
        .policy(policy)
        .expect_each(&[tcp(80), udp(53)], |r| {
            expect_pairs(r, |from, to| !denied(from.house, to.house));
        })
}
