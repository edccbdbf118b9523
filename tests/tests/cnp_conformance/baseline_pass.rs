//! Pass inside the Baseline tier, which no upstream test exercises: it
//! skips the rest of the tier (a later rule of the same policy and a later
//! Baseline policy) and hands the connection to the next band: a Segment
//! posture if the pod is a member of one, else the node's default action.
//!
//! Gryffindor's Baseline policy passes slytherin in and ravenclaw out,
//! accepts hufflepuff both ways, and denies ravenclaw in and slytherin out
//! (the controls that show it is enforced). Under `--default-action deny`
//! an Admin policy lets the other houses talk to gryffindor, so that only
//! gryffindor's side decides.

use netseg_testbed::suite::{Case, Model};
use serde_json::{Value, json};

use super::houses::House::{self, Gryffindor, Hufflepuff, Ravenclaw, Slytherin};
use super::houses::{End, expect_pairs, namespace_named, tcp};
use super::objects::{Action, Direction, Tier, cnp, namespaces, rule, segment};

const ALLOW: [&str; 2] = ["--default-action", "allow"];
const DENY: [&str; 2] = ["--default-action", "deny"];

fn to(direction: Direction, action: Action, house: House) -> Value {
    let verb = match action {
        Action::Accept => "allow",
        Action::Deny => "deny",
        Action::Pass => "pass",
    };
    let name = format!("{verb}-{}-{}", direction.peers_field(), house.name());
    rule(
        direction,
        &name,
        action,
        vec![namespaces(namespace_named(house))],
        &[],
    )
}

fn policies() -> [Value; 3] {
    use Action::{Accept, Deny, Pass};
    use Direction::{Egress, Ingress};
    let gryffindor = || namespaces(namespace_named(Gryffindor));
    let passing = cnp(
        "baseline-pass",
        Tier::Baseline,
        10,
        gryffindor(),
        vec![
            to(Ingress, Pass, Slytherin),
            to(Ingress, Deny, Slytherin),
            to(Ingress, Accept, Hufflepuff),
            to(Ingress, Deny, Ravenclaw),
        ],
        vec![
            to(Egress, Pass, Ravenclaw),
            to(Egress, Deny, Ravenclaw),
            to(Egress, Accept, Hufflepuff),
            to(Egress, Deny, Slytherin),
        ],
    );
    let after_pass = cnp(
        "baseline-after-pass",
        Tier::Baseline,
        20,
        gryffindor(),
        vec![to(Ingress, Deny, Slytherin)],
        vec![to(Egress, Deny, Ravenclaw)],
    );
    let others = json!({ "matchExpressions": [{
        "key": "conformance-house",
        "operator": "In",
        "values": ["slytherin", "hufflepuff", "ravenclaw"],
    }]});
    let open_the_others = cnp(
        "other-houses-talk-to-gryffindor",
        Tier::Admin,
        30,
        namespaces(others),
        vec![to(Ingress, Accept, Gryffindor)],
        vec![to(Egress, Accept, Gryffindor)],
    );
    [passing, after_pass, open_the_others]
}

/// What gryffindor's side decides, given what a passed connection gets.
fn gryffindor_side(from: End, to: End, passed: bool) -> Option<bool> {
    match (from.house, to.house) {
        (Slytherin, Gryffindor) | (Gryffindor, Ravenclaw) => Some(passed),
        (Hufflepuff, Gryffindor) | (Gryffindor, Hufflepuff) => Some(true),
        (Ravenclaw, Gryffindor) | (Gryffindor, Slytherin) => Some(false),
        _ => None,
    }
}

/// Expects every pair: gryffindor's side as `gryffindor_side` says, a
/// connection within gryffindor as `within`, the rest `elsewhere`.
fn expect(case: Case, passed: bool, within: bool, elsewhere: bool) -> Case {
    case.expect(tcp(80), |r| {
        expect_pairs(r, |from, to| {
            if (from.house, to.house) == (Gryffindor, Gryffindor) {
                within
            } else {
                gryffindor_side(from, to, passed).unwrap_or(elsewhere)
            }
        });
    })
}

pub fn case(m: &Model) -> Case {
    let posture = |action| segment("gryffindor-zone", Gryffindor, action, action);
    let [passing, after_pass, open_the_others] = policies();
    let case = Case::new(m, "Pass in the Baseline tier goes to the next band")
        .then("default allow: Pass skips the rest of the tier and allows")
        .policy(passing)
        .policy(after_pass)
        .policy(open_the_others);
    let case = expect(case, true, true, true)
        .then("default deny: Pass leaves the connection to the default")
        .restart_daemon(&DENY);
    let case = expect(case, false, false, false)
        .then("default allow, gryffindor in a Segment with posture Deny: Pass gets the posture")
        .restart_daemon(&ALLOW)
        .policy(posture(Action::Deny));
    let case = expect(case, false, false, true)
        .then("default deny, gryffindor in a Segment with posture Accept: Pass gets the posture")
        .restart_daemon(&DENY)
        .policy(posture(Action::Accept));
    expect(case, true, true, false)
}
