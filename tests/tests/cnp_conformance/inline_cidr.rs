//! Upstream's `CNP{Admin,Baseline}TierEgressInlineCIDRPeers` (#8, #18):
//! gryffindor may egress to slytherin's pods and nothing else
//! (`0.0.0.0/0` and `::/0` are denied, pod addresses included); slytherin's
//! namespace is relabelled out of the Accept rule and back; then a rule
//! accepting two pod addresses is inserted first.

use netseg_testbed::suite::{Case, Model};
use netseg_testbed::{Family, Probe};
use serde_json::Value;

use super::houses::{End, House, expect_pairs, namespace_named, sctp, tcp, udp};
use super::objects::{Action, Direction, Tier, cnp, house_pods, namespaces, networks, rule};

use House::{Gryffindor, Hufflepuff, Ravenclaw, Slytherin};

/// Upstream probes TCP 80, UDP 53 and SCTP 9003 over the pods' primary
/// (IPv4) addresses; TCP 80 over IPv6 is ours: `::/0` covers it, and the
/// inserted rule names IPv4 addresses only.
fn probes() -> Vec<Probe> {
    vec![tcp(80), udp(53), sctp(9003), tcp(80).v6()]
}

pub fn case(m: &Model, name: &str, tier: Tier) -> Case {
    let (policy, priority, subject) = match tier {
        Tier::Admin => ("inline-cidr-as-peers-example", 85, house_pods(Gryffindor)),
        Tier::Baseline => ("default", 10, namespaces(namespace_named(Gryffindor))),
    };
    let to_slytherin = rule(
        Direction::Egress,
        "allow-egress-to-slytherin",
        Action::Accept,
        vec![house_pods(Slytherin)],
        &[],
    );
    let to_internet = rule(
        Direction::Egress,
        "deny-egress-to-internet",
        Action::Deny,
        vec![networks(&["0.0.0.0/0".into(), "::/0".into()])],
        &[],
    );
    let to_two_pods = rule(
        Direction::Egress,
        "allow-egress-to-specific-podIPs",
        Action::Accept,
        vec![networks(&[
            m.host_cidr(&Ravenclaw.pod(0), Family::V4),
            m.host_cidr(&Hufflepuff.pod(0), Family::V4),
        ])],
        &[],
    );
    let object = |egress: Vec<Value>| cnp(policy, tier, priority, subject.clone(), vec![], egress);
    let subtest = "Should support a 'deny-egress' rule policy for egress-cidr-peer";
    let relabelled = [("conformance-house", "denied-namespace-label")];
    let restored = [("conformance-house", "slytherin")];
    let case = Case::new(m, name)
        .then(subtest)
        .policy(object(vec![to_slytherin.clone(), to_internet.clone()]));
    let case = expect(case, |_, to| to.house == Slytherin)
        .then(&format!("{subtest} (slytherin's namespace relabelled)"))
        .label_namespace(&Slytherin.namespace(), &relabelled);
    let case = expect(case, |_, _| false)
        .then(&format!("{subtest} (slytherin's label restored)"))
        .label_namespace(&Slytherin.namespace(), &restored);
    let case = expect(case, |_, to| to.house == Slytherin)
        .then("Should support an 'allow-egress' rule policy for egress-cidr-peer")
        .policy(object(vec![to_two_pods, to_slytherin, to_internet]));
    expect(case, |probe, to| {
        let listed = matches!(to.house, Ravenclaw | Hufflepuff) && to.index == 0;
        to.house == Slytherin || (listed && probe.family == Family::V4)
    })
}

/// Gryffindor egresses only where `allowed` says; everything else is
/// untouched.
fn expect(case: Case, allowed: impl Fn(&Probe, End) -> bool) -> Case {
    let mut case = case;
    for probe in probes() {
        case = case.expect(probe, |r| {
            expect_pairs(r, |from, to| {
                from.house != Gryffindor || allowed(&probe, to)
            });
        });
    }
    case
}
