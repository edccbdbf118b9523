//! A peer netseg does not implement (`domainNames`, experimental) fails
//! closed as the API asks: an Accept rule whose only peer it is matches
//! nothing, a Deny or Pass rule becomes "Deny all" (every peer, every
//! protocol, whatever its `protocols` say). The daemon keeps enforcing the
//! rest of the policy and reports the policy as a problem.

use netseg_testbed::suite::{Case, Model};
use serde_json::Value;

use super::houses::House::Gryffindor;
use super::houses::{expect_pairs, namespace_named, tcp, udp};
use super::objects::{Action, Direction, PortMatch, Tier, cnp, domain_names, namespaces};
use super::objects::{networks, rule};

const POLICY: &str = "fail-closed";
/// How the daemon's problems name the policy (`<Kind> <name>: ...`).
const POLICY_LABEL: &str = "ClusterNetworkPolicy fail-closed";

fn policy(egress: Vec<Value>) -> Value {
    let subject = namespaces(namespace_named(Gryffindor));
    cnp(POLICY, Tier::Admin, 40, subject, vec![], egress)
}

fn to_domain(action: Action, ports: &[PortMatch]) -> Value {
    rule(
        Direction::Egress,
        "to-example-com",
        action,
        vec![domain_names(&["example.com", "*.example.com"])],
        ports,
    )
}

/// Gryffindor egresses nowhere; its ingress, and every other pair, stay
/// allowed.
fn expect_gryffindor_egress_denied(case: Case) -> Case {
    case.expect_each(&[tcp(80), tcp(8080), udp(53)], |r| {
        expect_pairs(r, |from, _| from.house != Gryffindor);
    })
}

pub fn case(m: &Model) -> Case {
    let deny_everywhere = rule(
        Direction::Egress,
        "deny-everywhere",
        Action::Deny,
        vec![networks(&["0.0.0.0/0".into(), "::/0".into()])],
        &[],
    );
    let case = Case::new(
        m,
        "fail closed: a domainNames peer netseg does not implement",
    )
    .then("an Accept rule whose only peer is domainNames matches nothing")
    .policy(policy(vec![
        to_domain(Action::Accept, &[]),
        deny_everywhere,
    ]))
    .expect_problem(POLICY_LABEL);
    let case = expect_gryffindor_egress_denied(case)
        .then("a Deny rule whose only peer is domainNames denies everything, all protocols")
        .policy(policy(vec![to_domain(
            Action::Deny,
            &[PortMatch::tcp(443)],
        )]))
        .expect_problem(POLICY_LABEL);
    let case = expect_gryffindor_egress_denied(case)
        .then("a Pass rule whose only peer is domainNames denies everything too")
        .policy(policy(vec![to_domain(Action::Pass, &[])]))
        .expect_problem(POLICY_LABEL);
    expect_gryffindor_egress_denied(case)
}
