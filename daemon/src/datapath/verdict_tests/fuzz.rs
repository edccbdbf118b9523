//! Differential fuzzing: random and mutated frames run through the loaded
//! programs (BPF_PROG_TEST_RUN) and through the [model](super::model) of
//! the rules; the verdict, the reason (the per-reason counter that the
//! packet moved) and, when the packet was reported, the flow event's reason
//! and rule must agree. Every new connection is reported.
//!
//! Runs are sequences: the model keeps its own connections and fragments,
//! and the generator aims replies, ICMP errors and later fragments at them.
//! Each run of up to [`RUN_PACKETS`] packets starts from freshly loaded
//! programs with the verdict tests' policy, half the time widened (ICMP
//! from third parties, rules for any protocol and for any peer), and at a random point republishes it without
//! one of its rules (sometimes putting it back later), so revocation is
//! compared. A run is shorter than the shortest lifetime of remembered
//! state, so no entry expires under it.
//!
//! By default the test fuzzes for 20 s from a seed taken from the clock.
//! `NETSEG_FUZZ_SECONDS=600` fuzzes longer; `NETSEG_FUZZ_SEED=n` starts
//! from seed n (a failure prints the seed of the failing run, which
//! replays it first):
//!
//! ```text
//! NETSEG_FUZZ_SECONDS=600 cargo test -p netseg --lib verdict_tests::fuzz -- --nocapture
//! ```

mod generate;
mod rng;

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::time::{Duration, Instant, SystemTime};

use netseg_contract::{FlowEvent, POLICY_DENY_ALL, VERDICT_ALLOW, VERDICT_DENY, identity, reason};

use super::model::{Direction, Model, Rules, Verdict};
use super::packet::{ICMP, ICMPV6, TCP, UDP};
use super::{Bench, DROP, EGRESS_POLICY, INGRESS_POLICY, PASS, bench_sized, entry, policy};
use crate::datapath::{FlowEvents, Limits, state::SlotState};
use crate::flows::reason_name;
use generate::{Generated, generate};
use rng::Rng;

/// The rules the programs implement.
const RULES: Rules = Rules::ISSUE8;
/// Shares small enough that runs reach them.
const LIMITS: Limits = Limits {
    conntrack_per_endpoint: 16,
    fragments_per_endpoint: 6,
};
/// Packets of one run, from fresh programs.
const RUN_PACKETS: usize = 3000;
/// A run ends early after this long: well inside the shortest lifetime of
/// remembered state (5 s for a fragmented datagram, 10 s for a closing
/// connection), so that time never decides a verdict.
const RUN_TIME_LIMIT: Duration = Duration::from_secs(3);
const DEFAULT_SECONDS: u64 = 20;
/// After this many packets, every reason in [`EXERCISED`] has come up.
const COVERAGE_PACKETS: u64 = 20_000;
/// Every way a packet passes, and the denials that need state to reach.
const EXERCISED: [u8; 9] = [
    reason::NEW_ALLOWED,
    reason::ESTABLISHED,
    reason::RELATED,
    reason::LINK_CONTROL,
    reason::FRAGMENT,
    reason::REVOKED,
    reason::NO_CONNECTION,
    reason::ICMP_ERROR_MISDIRECTED,
    reason::CONNTRACK_FULL,
];
/// Packets shown before the disagreeing one.
const HISTORY: usize = 12;

struct Settings {
    seed: u64,
    duration: Duration,
}

impl Settings {
    fn from_env() -> Self {
        let number = |name: &str| {
            std::env::var(name).ok().map(|value| {
                value
                    .parse::<u64>()
                    .unwrap_or_else(|_| panic!("{name}={value}: not a number"))
            })
        };
        let seed = number("NETSEG_FUZZ_SEED").unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .expect("the clock is past 1970")
                .as_nanos() as u64
        });
        let seconds = number("NETSEG_FUZZ_SECONDS").unwrap_or(DEFAULT_SECONDS);
        Self {
            seed,
            duration: Duration::from_secs(seconds),
        }
    }
}

#[test]
fn the_programs_judge_random_packets_as_the_model_does() {
    let settings = Settings::from_env();
    let start = Instant::now();
    let deadline = start + settings.duration;
    let mut totals = Totals::default();
    let mut seed = settings.seed;
    while Instant::now() < deadline {
        fuzz_run(seed, deadline, &mut totals);
        seed = seed.wrapping_add(1);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let reasons: Vec<String> = totals
        .reasons
        .iter()
        .map(|(code, count)| format!("{} {count}", reason_name(*code)))
        .collect();
    eprintln!(
        "fuzzed {} packets in {} runs from seed {} in {elapsed:.1} s ({:.0} packets/s), \
         {} refused by the kernel; by reason: {}",
        totals.packets,
        totals.runs,
        settings.seed,
        totals.packets as f64 / elapsed,
        totals.refused,
        reasons.join(", "),
    );
    assert!(totals.packets > 0, "no packet was fuzzed");
    // A generator that lost its aim would still agree with the model.
    if totals.packets >= COVERAGE_PACKETS {
        for code in EXERCISED {
            assert!(
                totals.reasons.contains_key(&code),
                "{} packets and none judged {}",
                totals.packets,
                reason_name(code)
            );
        }
    }
}

#[derive(Default)]
struct Totals {
    runs: u64,
    packets: u64,
    refused: u64,
    reasons: BTreeMap<u8, u64>,
}

/// What the program did with one packet.
#[derive(Clone, Copy, Debug)]
struct Observed {
    verdict: u32,
    /// The one reason counter the packet moved, if exactly one moved.
    reason: Option<u8>,
    /// The flow events it reported: none, or one (its verdict, reason and
    /// rule).
    events: usize,
    event: Option<FlowEvent>,
}

fn fuzz_run(seed: u64, deadline: Instant, totals: &mut Totals) {
    let mut rng = Rng::new(seed);
    let mut bench = bench_sized(FlowEvents::All, 1024, LIMITS);
    let mut model = Model::new(RULES, LIMITS, policy());
    let mut history = VecDeque::with_capacity(HISTORY);
    let initial = if rng.percent(50) {
        bench.republish(&mut model, widened_policy());
        push(&mut history, "-- published the widened policy".into());
        widened_policy()
    } else {
        policy()
    };
    let revoke_at = rng.below(RUN_PACKETS);
    let restore_at = revoke_at + rng.below(RUN_PACKETS);
    let (revoked, what) = revoked_policy(&mut rng, &initial);
    let run_start = Instant::now();
    let mut counters = bench.reason_counters();
    for index in 0..RUN_PACKETS {
        if run_start.elapsed() > RUN_TIME_LIMIT || Instant::now() > deadline {
            break;
        }
        if index == revoke_at {
            bench.republish(&mut model, revoked.clone());
            push(&mut history, format!("-- republished {what}"));
        }
        if index == restore_at {
            bench.republish(&mut model, initial.clone());
            push(&mut history, "-- republished the whole policy".into());
        }
        let packet = generate(&mut rng, &model);
        let ingress = packet.direction == Direction::Ingress;
        // The kernel runs no program on a frame shorter than the IP header
        // its ethertype announces; such frames are skipped.
        let Ok(verdict) = bench.datapath.try_run_program(ingress, &packet.frame) else {
            totals.refused += 1;
            continue;
        };
        let after = bench.reason_counters();
        let events = bench.flow_events();
        let observed = Observed {
            verdict,
            reason: moved_reason(&counters, &after),
            events: events.len(),
            event: events.first().copied(),
        };
        counters = after;
        let expected = model.judge(packet.direction, &packet.frame);
        if !agree(expected, observed) {
            panic!(
                "{}",
                disagreement(seed, index, &packet, expected, observed, &history)
            );
        }
        push(&mut history, summary(&packet, expected));
        totals.packets += 1;
        *totals.reasons.entry(expected.reason).or_default() += 1;
    }
    totals.runs += 1;
}

impl Bench {
    /// Every per-reason counter, summed over CPUs.
    fn reason_counters(&self) -> Vec<u64> {
        (0..reason::COUNTER_EVENTS_LOST)
            .map(|code| self.counter(code))
            .collect()
    }

    fn republish(&mut self, model: &mut Model, state: SlotState) {
        self.publisher.publish(&state).expect("publish");
        model.publish(state);
    }
}

/// The fixed policy, and ingress ICMP from identity 17 (a third party to
/// the endpoint's connections) and ICMPv6 from anyone; egress any protocol
/// to identity 17 and, more specific, UDP 53 to it; TCP 8000-8007 to anyone
/// (beside the rules for identity 16).
fn widened_policy() -> SlotState {
    let mut widened = policy();
    let rules = [
        (entry(INGRESS_POLICY, 17, Some(ICMP), None), 105),
        (
            entry(INGRESS_POLICY, identity::ANY, Some(ICMPV6), None),
            106,
        ),
        (entry(EGRESS_POLICY, 17, None, None), 107),
        (entry(EGRESS_POLICY, 17, Some(UDP), Some((53, 16))), 109),
        (
            entry(EGRESS_POLICY, identity::ANY, Some(TCP), Some((8000, 13))),
            108,
        ),
    ];
    widened
        .policy
        .extend(rules.map(|(key, rule)| (key, super::allow(rule))));
    widened
}

/// `policy` without one of its rules, with ingress denied, or without the
/// endpoint; and which.
fn revoked_policy(rng: &mut Rng, policy: &SlotState) -> (SlotState, String) {
    let mut revoked = policy.clone();
    if rng.percent(10) {
        revoked.endpoints.clear();
        return (revoked, "without the endpoint".into());
    }
    if rng.percent(20) {
        revoked
            .endpoints
            .values_mut()
            .for_each(|endpoint| endpoint.ingress_policy = POLICY_DENY_ALL);
        return (revoked, "with ingress denied".into());
    }
    let keys: Vec<_> = revoked.policy.keys().copied().collect();
    let removed = rng.pick(&keys);
    revoked.policy.remove(&removed);
    (revoked, format!("without {removed:?}"))
}

fn moved_reason(before: &[u64], after: &[u64]) -> Option<u8> {
    let mut moved = (0..after.len()).filter(|&code| after[code] != before[code]);
    match (moved.next(), moved.next()) {
        (Some(code), None) => Some(code as u8),
        _ => None,
    }
}

fn agree(expected: Verdict, observed: Observed) -> bool {
    let verdict = if expected.allow { PASS } else { DROP };
    let event_verdict = if expected.allow {
        VERDICT_ALLOW
    } else {
        VERDICT_DENY
    };
    let event_agrees = match observed.event {
        // Denials are sampled; a new connection is always reported.
        None => expected.reason != reason::NEW_ALLOWED,
        Some(event) => {
            observed.events == 1
                && event.verdict == event_verdict
                && event.reason == expected.reason
                && event.rule == expected.rule
        }
    };
    observed.verdict == verdict && observed.reason == Some(expected.reason) && event_agrees
}

fn push(history: &mut VecDeque<String>, line: String) {
    if history.len() == HISTORY {
        history.pop_front();
    }
    history.push_back(line);
}

fn verdict_name(allow: bool) -> &'static str {
    if allow { "PASS" } else { "DROP" }
}

fn summary(packet: &Generated, verdict: Verdict) -> String {
    format!(
        "{:?} {} {} {}: {}",
        packet.direction,
        packet.shape,
        verdict_name(verdict.allow),
        reason_name(verdict.reason),
        hex(&packet.frame),
    )
}

fn disagreement(
    seed: u64,
    index: usize,
    packet: &Generated,
    expected: Verdict,
    observed: Observed,
    history: &VecDeque<String>,
) -> String {
    let mut report = format!(
        "the program and the model disagree on packet {index} of the run with \
         NETSEG_FUZZ_SEED={seed}\n  {:?} {} ({} bytes): {}\n  model:   {} {} (rule {})\n  \
         program: {} {}; {} flow event(s){}\nthe packets before it, oldest first:\n",
        packet.direction,
        packet.shape,
        packet.frame.len(),
        hex(&packet.frame),
        verdict_name(expected.allow),
        reason_name(expected.reason),
        expected.rule,
        match observed.verdict {
            PASS => "PASS".to_string(),
            DROP => "DROP".to_string(),
            other => format!("returned {other}"),
        },
        observed
            .reason
            .map_or("(no single reason counted)", reason_name),
        observed.events,
        observed.event.map_or(String::new(), |event| format!(
            ", the first: verdict {} {} rule {}",
            event.verdict,
            reason_name(event.reason),
            event.rule
        )),
    );
    for line in history {
        writeln!(report, "  {line}").expect("write to a String");
    }
    report
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
