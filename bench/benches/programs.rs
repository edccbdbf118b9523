//! The programs' cost per packet in BPF_PROG_TEST_RUN, per commit, so that
//! a regression shows (issue 12): for each program (pod egress, pod
//! ingress), a 64-byte segment of an established TCP connection (target
//! ≤ 100 ns) and the SYN of a new allowed connection (target ≤ 250 ns),
//! with this build's embedded object and the policy of
//! `netseg_bench::program_fixture`. Each iteration is one run of the
//! program; the time criterion gets is the kernel's (`BPF_PROG_TEST_RUN`
//! with `repeat` = the iterations for an established segment, one call of
//! one run per new connection), which leaves out the system call and any
//! time the thread was preempted. The kernel reports a whole-ns mean per
//! call, so an established segment's time is up to 1 ns low.
//!
//! A new connection's SYN needs a 5-tuple the conntrack table has not seen:
//! each takes the next port, and the programs are loaded afresh (outside
//! the timed calls) before the endpoint's conntrack limit or the flow-event
//! ring (nobody reads it here) could fill.
//!
//! Needs root (it loads the programs):
//!
//! ```sh
//! cargo bench -p netseg-bench --bench programs -- --save-baseline main   # on main
//! cargo bench -p netseg-bench --bench programs -- --baseline main        # on the change
//! ```
//!
//! After criterion's report (with its change against the baseline), a
//! table of the targets: per program and case the median over criterion's
//! samples of the time per run, and whether it meets the target.

use std::time::Duration;

use criterion::Criterion;
use netseg::datapath::embedded_object;
use netseg::datapath::test_run::Program;
use netseg_bench::program_fixture::{PASS, ProgramFixture};

const ESTABLISHED_TARGET_NS: f64 = 100.0;
const NEW_CONNECTION_TARGET_NS: f64 = 250.0;
/// Runs a BPF_PROG_TEST_RUN call at most (its `repeat` is a u32).
const MOST_RUNS_A_CALL: u64 = 1 << 24;

#[derive(Clone, Copy)]
enum Case {
    Established,
    NewConnection,
}

impl Case {
    fn id(self) -> &'static str {
        match self {
            Case::Established => "established",
            Case::NewConnection => "new-connection",
        }
    }

    fn target_ns(self) -> f64 {
        match self {
            Case::Established => ESTABLISHED_TARGET_NS,
            Case::NewConnection => NEW_CONNECTION_TARGET_NS,
        }
    }

    /// Samples, warm-up and measurement time (set here, they override
    /// criterion's command line): a new connection is one system call a
    /// run, so it gets fewer runs.
    fn sampling(self) -> (usize, Duration, Duration) {
        match self {
            Case::Established => (50, Duration::from_secs(1), Duration::from_secs(3)),
            Case::NewConnection => (20, Duration::from_millis(500), Duration::from_secs(2)),
        }
    }
}

fn program_id(program: Program) -> &'static str {
    match program {
        Program::PodEgress => "pod-egress",
        Program::PodIngress => "pod-ingress",
    }
}

/// What one iteration of `case` costs `program`, the kernel's time of
/// `iters` iterations.
fn timed(object: &[u8], program: Program, case: Case) -> impl FnMut(u64) -> Duration {
    let load = || {
        ProgramFixture::load(object)
            .unwrap_or_else(|e| panic!("loading the programs: {e:#} (root is needed)"))
    };
    let mut loaded: Option<ProgramFixture> = None;
    move |iters| {
        let fixture = loaded.get_or_insert_with(load);
        match case {
            Case::Established => {
                let frame = ProgramFixture::established(program, fixture.connections.0);
                let mut total = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let runs = left.min(MOST_RUNS_A_CALL);
                    let outcome = fixture
                        .programs
                        .run(program, &frame, runs as u32)
                        .unwrap_or_else(|e| panic!("{program:?} on an established segment: {e}"));
                    assert_eq!(
                        outcome.verdict, PASS,
                        "{program:?} dropped an established segment"
                    );
                    total += outcome.mean * runs as u32;
                    left -= runs;
                }
                total
            }
            Case::NewConnection => (0..iters)
                .map(|_| {
                    if fixture.connections_left() == 0 {
                        *fixture = load();
                    }
                    fixture
                        .open(program)
                        .unwrap_or_else(|e| panic!("a new connection: {e:#}"))
                })
                .sum(),
        }
    }
}

/// Benchmarks `case` of `program`; the time per run of each of
/// criterion's samples, in ns.
fn bench(criterion: &mut Criterion, object: &[u8], program: Program, case: Case) -> Vec<f64> {
    let (samples, warm_up, measurement) = case.sampling();
    let mut group = criterion.benchmark_group(program_id(program));
    group
        .sample_size(samples)
        .warm_up_time(warm_up)
        .measurement_time(measurement);
    let mut per_run = Vec::new();
    let mut timed = timed(object, program, case);
    group.bench_function(case.id(), |b| {
        b.iter_custom(|iters| {
            let total = timed(iters);
            per_run.push(total.as_nanos() as f64 / iters as f64);
            total
        })
    });
    group.finish();
    // The warm-up calls come first; criterion's samples are the last calls.
    let first_sample = per_run.len().saturating_sub(samples);
    per_run.split_off(first_sample)
}

fn median(values: &mut [f64]) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    match values.len() {
        0 => None,
        n if n % 2 == 0 => Some((values[mid - 1] + values[mid]) / 2.0),
        _ => Some(values[mid]),
    }
}

fn main() {
    netseg_testbed::require_root();
    let object = embedded_object()
        .unwrap_or_else(|e| panic!("this build's eBPF object: {e}"))
        .to_vec();
    let mut criterion = Criterion::default().configure_from_args();
    let mut targets = String::from(
        "\nTargets (issue 12), ns per run, median of criterion's samples:\n\n\
         | program | case | ns | target | met |\n|---|---|---|---|---|\n",
    );
    for program in [Program::PodEgress, Program::PodIngress] {
        for case in [Case::Established, Case::NewConnection] {
            let mut samples = bench(&mut criterion, &object, program, case);
            let (ns, met) = match median(&mut samples) {
                Some(ns) if ns <= case.target_ns() => (format!("{ns:.1}"), "pass"),
                Some(ns) => (format!("{ns:.1}"), "FAIL"),
                None => ("–".to_owned(), "not run"),
            };
            targets.push_str(&format!(
                "| {} | {} | {ns} | ≤ {} | {met} |\n",
                program_id(program),
                case.id(),
                case.target_ns()
            ));
        }
    }
    criterion.final_summary();
    println!("{targets}");
}
