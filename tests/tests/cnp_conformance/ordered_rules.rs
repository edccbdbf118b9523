//! The shape behind most upstream tests (`standard-{ingress,egress}-{tcp,udp,
//! sctp}-rules.yaml`, `standard-gress-rules-combined.yaml`, both tiers, and
//! the named-port tests built on them): per direction, one house Accepted,
//! Denied and (Admin) Passed whole, in that order; slytherin Denied then
//! (Admin) Passed at some ports; a third house Accepted at some ports and
//! Denied the rest. The subtests swap rules the way upstream patches them,
//! cumulatively, and after each swap every pair of pods is probed: the
//! pairs upstream pokes and all the others, which must stay as they were.

use netseg_testbed::Probe;
use netseg_testbed::suite::{Case, Model};
use serde_json::Value;

use super::houses::{End, House, expect_pairs, namespace_named};
use super::objects::{Action, Direction, PortMatch, Tier, cnp, namespaces, rule};

/// The rules of one direction.
#[derive(Debug, Clone)]
pub struct Rules {
    pub direction: Direction,
    /// Accepted, Denied, then (Admin) Passed as a whole.
    pub whole: House,
    /// Denied, then (Admin) Passed, at `port_house_ports`: always slytherin.
    pub port_house: House,
    pub port_house_ports: Vec<PortMatch>,
    /// Accepted at `accept_ports`, Denied everything else.
    pub accept_house: House,
    pub accept_ports: Vec<PortMatch>,
}

/// One of upstream's ordered-rules manifests.
#[derive(Debug, Clone)]
pub struct OrderedRules {
    pub policy: &'static str,
    pub tier: Tier,
    pub priority: u32,
    pub subject: House,
    pub rules: Vec<Rules>,
    /// Probed after every subtest.
    pub probes: Vec<Probe>,
    /// How upstream's subtest names say what is probed: `for TCP protocol`.
    pub what: &'static str,
}

/// What upstream expects after a subtest.
#[derive(Debug, Clone, Copy)]
struct Verdicts {
    /// The whole house's first rule: Accept, or Pass with nothing below.
    whole_allowed: bool,
    /// Slytherin at the listed ports: Deny denies, Pass allows.
    at_ports_allowed: bool,
}

/// A subtest: upstream's name, the rules it swaps first, what it expects.
struct Subtest {
    action: &'static str,
    at_ports: bool,
    swap: Option<(usize, usize)>,
    verdicts: Verdicts,
}

const AS_APPLIED: Verdicts = Verdicts {
    whole_allowed: true,
    at_ports_allowed: false,
};

/// Admin: six subtests; Baseline has no Pass rules and stops after four.
const SUBTESTS: [Subtest; 6] = [
    Subtest {
        action: "allow",
        at_ports: false,
        swap: None,
        verdicts: AS_APPLIED,
    },
    Subtest {
        action: "allow",
        at_ports: true,
        swap: None,
        verdicts: AS_APPLIED,
    },
    // Deny the whole house now comes first.
    Subtest {
        action: "deny",
        at_ports: false,
        swap: Some((0, 1)),
        verdicts: Verdicts {
            whole_allowed: false,
            at_ports_allowed: false,
        },
    },
    Subtest {
        action: "deny",
        at_ports: true,
        swap: None,
        verdicts: Verdicts {
            whole_allowed: false,
            at_ports_allowed: false,
        },
    },
    // Pass the whole house comes first: no NetworkPolicy, no Baseline.
    Subtest {
        action: "pass",
        at_ports: false,
        swap: Some((0, 2)),
        verdicts: AS_APPLIED,
    },
    // Pass slytherin at the ports comes before Deny it there.
    Subtest {
        action: "pass",
        at_ports: true,
        swap: Some((3, 4)),
        verdicts: Verdicts {
            whole_allowed: true,
            at_ports_allowed: true,
        },
    },
];

impl OrderedRules {
    /// The upstream test: every subtest in order, on one policy.
    pub fn case(&self, m: &Model, name: &str) -> Case {
        let mut policy = self.canonical();
        let mut case = Case::new(m, name);
        let count = match self.tier {
            Tier::Admin => 6,
            Tier::Baseline => 4,
        };
        for (i, sub) in SUBTESTS.iter().take(count).enumerate() {
            case = case.then(&self.subtest_name(sub));
            if i == 0 || sub.swap.is_some() {
                if let Some((a, b)) = sub.swap {
                    policy.iter_mut().for_each(|list| list.swap(a, b));
                }
                case = case.policy(self.object(&policy));
            }
            case = self.expect(case, sub.verdicts);
        }
        case
    }

    /// Upstream's named-port test on this manifest: the Accept-at-ports
    /// rule of every direction now names `port` instead of numbers.
    pub fn named_port_case(&self, m: &Model, name: &str, port: &'static str) -> Case {
        let mut named = self.clone();
        named.rules.iter_mut().for_each(|r| {
            r.accept_ports = vec![PortMatch::Named(port)];
        });
        let sub = format!(
            "Should support an 'allow-{}' policy for named port",
            self.direction_word()
        );
        let case = Case::new(m, name)
            .then("the manifest as upstream applies it")
            .policy(self.object(&self.canonical()))
            .then(&sub)
            .policy(named.object(&named.canonical()));
        named.expect(case, AS_APPLIED)
    }

    fn subtest_name(&self, sub: &Subtest) -> String {
        let article = if sub.at_ports { "a" } else { "an" };
        let tail = if sub.at_ports {
            let plural = if self.rules.len() > 1 { "s" } else { "" };
            format!(" at the specified port{plural}")
        } else {
            "; ensure rule ordering is respected".to_owned()
        };
        format!(
            "Should support {article} '{}-{}' policy {}{tail}",
            sub.action,
            self.direction_word(),
            self.what
        )
    }

    fn direction_word(&self) -> &'static str {
        match self.rules.as_slice() {
            [only] => only.direction.field(),
            _ => "gress",
        }
    }

    /// Every direction's rules in manifest order.
    fn canonical(&self) -> Vec<Vec<Value>> {
        self.rules.iter().map(|r| r.canonical(self.tier)).collect()
    }

    fn object(&self, lists: &[Vec<Value>]) -> Value {
        let of = |direction| {
            self.rules
                .iter()
                .zip(lists)
                .find(|(r, _)| r.direction == direction)
                .map(|(_, list)| list.clone())
                .unwrap_or_default()
        };
        cnp(
            self.policy,
            self.tier,
            self.priority,
            namespaces(namespace_named(self.subject)),
            of(Direction::Ingress),
            of(Direction::Egress),
        )
    }

    fn expect(&self, case: Case, verdicts: Verdicts) -> Case {
        let mut case = case;
        for probe in &self.probes {
            case = case.expect(*probe, |r| {
                expect_pairs(r, |from, to| self.allows(verdicts, probe, from, to));
            });
        }
        case
    }

    /// Egress is decided at the source, ingress at the destination; a
    /// direction without rules, or a pod outside the subject, is not
    /// touched. Replies of an allowed connection pass whatever the rules.
    fn allows(&self, verdicts: Verdicts, probe: &Probe, from: End, to: End) -> bool {
        self.rules.iter().all(|r| {
            let (subject, peer) = match r.direction {
                Direction::Egress => (from, to),
                Direction::Ingress => (to, from),
            };
            subject.house != self.subject || r.allows(verdicts, probe, peer.house)
        })
    }
}

impl Rules {
    fn canonical(&self, tier: Tier) -> Vec<Value> {
        let d = self.direction;
        let word = d.peers_field();
        let whole = self.whole.name();
        let peer = |house: House| vec![namespaces(namespace_named(house))];
        let at = |ports: &[PortMatch]| {
            let labels: Vec<String> = ports.iter().map(|p| p.label()).collect();
            let plural = if labels.len() > 1 { "ports" } else { "port" };
            format!("{plural}-{}", labels.join("-"))
        };
        let (port_house, accept_house) = (self.port_house, self.accept_house);
        let mut rules = vec![
            rule(
                d,
                &format!("allow-{word}-{whole}-everything"),
                Action::Accept,
                peer(self.whole),
                &[],
            ),
            rule(
                d,
                &format!("deny-{word}-{whole}-everything"),
                Action::Deny,
                peer(self.whole),
                &[],
            ),
            rule(
                d,
                &format!("pass-{word}-{whole}-everything"),
                Action::Pass,
                peer(self.whole),
                &[],
            ),
            rule(
                d,
                &format!(
                    "deny-{word}-{}-at-{}",
                    port_house.name(),
                    at(&self.port_house_ports)
                ),
                Action::Deny,
                peer(port_house),
                &self.port_house_ports,
            ),
            rule(
                d,
                &format!(
                    "pass-{word}-{}-at-{}",
                    port_house.name(),
                    at(&self.port_house_ports)
                ),
                Action::Pass,
                peer(port_house),
                &self.port_house_ports,
            ),
            rule(
                d,
                &format!(
                    "allow-{word}-{}-at-{}",
                    accept_house.name(),
                    at(&self.accept_ports)
                ),
                Action::Accept,
                peer(accept_house),
                &self.accept_ports,
            ),
            rule(
                d,
                &format!("deny-{word}-{}-everything-else", accept_house.name()),
                Action::Deny,
                peer(accept_house),
                &[],
            ),
        ];
        if tier == Tier::Baseline {
            // Upstream's Baseline manifests have no Pass rules.
            rules.remove(4);
            rules.remove(2);
        }
        rules
    }

    fn allows(&self, verdicts: Verdicts, probe: &Probe, peer: House) -> bool {
        let listed = |ports: &[PortMatch]| ports.iter().any(|p| p.matches(probe));
        if peer == self.whole {
            verdicts.whole_allowed
        } else if peer == self.port_house {
            verdicts.at_ports_allowed || !listed(&self.port_house_ports)
        } else if peer == self.accept_house {
            listed(&self.accept_ports)
        } else {
            true
        }
    }
}
