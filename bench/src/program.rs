//! The programs themselves, timed with BPF_PROG_TEST_RUN: no interface and
//! no traffic; the kernel runs one crafted 64-byte frame through one
//! program many times in a row on the calling CPU. Timed: an established
//! TCP segment at each hook, a new allowed connection's SYN at each hook,
//! and the established
//! segments of one connection run on both CPUs at once, so that its
//! conntrack entry's cache line moves between them on every packet (the
//! worst case for counters kept in the entry). An object of another build
//! (`--program-baseline`) runs interleaved with this build's, each loaded
//! afresh in every repetition.

use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Barrier;

use anyhow::{Context, Result, anyhow, ensure};
use netseg::datapath::{
    embedded_object,
    test_run::{Program, TestPrograms},
};
use netseg_bench::program_fixture::{PASS, ProgramFixture};
use serde::Serialize;

use crate::quiet::{self, Disturbance};
use crate::stats::{Shuffler, summarize};

pub struct ProgramPlan {
    /// An eBPF object of another build, timed beside this build's.
    pub baseline: Option<PathBuf>,
    /// The object timed as this build's instead of the embedded one.
    pub object: Option<PathBuf>,
    pub repeats: usize,
    /// Alternations of the objects within one measurement.
    pub rounds: usize,
    /// Runs of one frame per BPF_PROG_TEST_RUN call (one a round).
    pub runs: u32,
    /// New connections a round (one call each).
    pub syns: u16,
    pub disturbance_threshold: f64,
    pub attempts: usize,
    pub seed: u64,
}

struct Object {
    label: String,
    bytes: Vec<u8>,
}

impl Object {
    /// An object file, labelled by its name.
    fn read(path: &Path) -> Result<Self> {
        Ok(Self {
            label: path.file_name().map_or_else(
                || path.display().to_string(),
                |n| n.to_string_lossy().into(),
            ),
            bytes: fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        })
    }
}

/// What is timed.
#[derive(Clone, Copy, Debug)]
enum Case {
    EstablishedEgress,
    EstablishedIngress,
    NewConnection(Program),
    /// What a SYN takes more than an established packet of the same
    /// program, each one call of one run (so both find the maps as cold).
    NewOverEstablished(Program),
    /// Pod egress on CPU 0 while the same connection's pod ingress runs on CPU 1.
    TwoDirections {
        cpu: usize,
    },
    /// Pod egress of the same connection on both CPUs.
    OneDirection {
        cpu: usize,
    },
}

impl Case {
    fn label(self) -> String {
        match self {
            Case::EstablishedEgress => "established, pod egress".to_owned(),
            Case::EstablishedIngress => "established, pod ingress".to_owned(),
            Case::NewConnection(Program::PodEgress) => {
                "new connection (SYN), pod egress ¹".to_owned()
            }
            Case::NewConnection(Program::PodIngress) => {
                "new connection (SYN), pod ingress ¹".to_owned()
            }
            Case::NewOverEstablished(Program::PodEgress) => {
                "SYN − established packet, pod egress, both one run a call ²".to_owned()
            }
            Case::NewOverEstablished(Program::PodIngress) => {
                "SYN − established packet, pod ingress, both one run a call ²".to_owned()
            }
            Case::TwoDirections { cpu } => {
                format!("same connection, egress on CPU 0 ‖ ingress on CPU 1: CPU {cpu}")
            }
            Case::OneDirection { cpu } => {
                format!("same connection, egress on CPU 0 ‖ egress on CPU 1: CPU {cpu}")
            }
        }
    }
}

/// Nanoseconds per run of one frame.
#[derive(Clone, Copy, Debug, Serialize)]
struct Timing {
    /// The CPU time of the calling thread, divided by the runs: like the
    /// kernel's mean it leaves out the time the thread was preempted, and
    /// it has the fractions of a nanosecond the kernel's mean rounds off.
    ns: f64,
    /// The kernel's own mean, in whole nanoseconds.
    kernel_ns: f64,
}

/// One object's timings of one case in one repetition.
#[derive(Debug, Serialize)]
struct Row {
    repeat: usize,
    object: String,
    case: String,
    /// The median over rounds.
    ns: Option<f64>,
    kernel_ns: Option<f64>,
    /// Every round's, in order: the objects alternated round by round.
    rounds: Vec<f64>,
    error: Option<String>,
    attempts: usize,
    others: Disturbance,
}

pub fn run(plan: &ProgramPlan, out: &Path) -> Result<String> {
    let mut objects = vec![match &plan.object {
        Some(path) => Object::read(path)?,
        None => Object {
            label: "this build".to_owned(),
            bytes: embedded_object()?.to_vec(),
        },
    }];
    if let Some(path) = &plan.baseline {
        objects.insert(0, Object::read(path)?);
    }
    let mut jsonl = File::create(out.join("program.jsonl"))?;
    let mut rows = Vec::new();
    let mut shuffler = Shuffler::new(plan.seed);
    for repeat in 0..plan.repeats {
        eprintln!(
            "netseg-bench: program repetition {}/{}",
            repeat + 1,
            plan.repeats
        );
        for row in measure_repetition(plan, repeat, &objects, &mut shuffler)? {
            writeln!(jsonl, "{}", serde_json::to_string(&row)?)?;
            rows.push(row);
        }
    }
    Ok(report(plan, &objects, &rows))
}

/// What one measurement times, on two connections opened beforehand.
#[derive(Clone, Copy)]
enum Measurement {
    Established(Program),
    NewConnections(Program),
    TwoDirections,
    OneDirection,
}

impl Measurement {
    const ALL: [Measurement; 6] = [
        Measurement::Established(Program::PodEgress),
        Measurement::Established(Program::PodIngress),
        Measurement::NewConnections(Program::PodEgress),
        Measurement::NewConnections(Program::PodIngress),
        Measurement::TwoDirections,
        Measurement::OneDirection,
    ];

    fn cases(self) -> Vec<Case> {
        match self {
            Measurement::Established(Program::PodEgress) => vec![Case::EstablishedEgress],
            Measurement::Established(Program::PodIngress) => vec![Case::EstablishedIngress],
            Measurement::NewConnections(program) => vec![
                Case::NewConnection(program),
                Case::NewOverEstablished(program),
            ],
            Measurement::TwoDirections => (0..2).map(|cpu| Case::TwoDirections { cpu }).collect(),
            Measurement::OneDirection => (0..2).map(|cpu| Case::OneDirection { cpu }).collect(),
        }
    }

    /// One timing per case: `alone` is a connection timed on one CPU,
    /// `shared` one timed on both.
    fn time(self, fixture: &mut ProgramFixture, plan: &ProgramPlan) -> Result<Vec<Timing>> {
        let runs = plan.runs;
        let (alone, shared) = fixture.connections;
        let out = |port| ProgramFixture::established(Program::PodEgress, port);
        let back = |port| ProgramFixture::established(Program::PodIngress, port);
        Ok(match self {
            Measurement::Established(program) => {
                let frame = ProgramFixture::established(program, alone);
                vec![alone_on_cpu0(fixture, program, &frame, runs)?]
            }
            Measurement::NewConnections(program) => {
                new_connections(fixture, program, alone, plan.syns)?.to_vec()
            }
            Measurement::TwoDirections => {
                let (out, back) = (out(shared), back(shared));
                let work = [
                    (Program::PodEgress, &out[..]),
                    (Program::PodIngress, &back[..]),
                ];
                together(fixture, work, runs)?.to_vec()
            }
            Measurement::OneDirection => {
                let out = out(shared);
                let work = [
                    (Program::PodEgress, &out[..]),
                    (Program::PodEgress, &out[..]),
                ];
                together(fixture, work, runs)?.to_vec()
            }
        })
    }
}

/// Every case on a fresh load of every object. A measurement alternates
/// the objects round by round (in shuffled order), so that the host's
/// slower and faster moments fall on both alike.
fn measure_repetition(
    plan: &ProgramPlan,
    repeat: usize,
    objects: &[Object],
    shuffler: &mut Shuffler,
) -> Result<Vec<Row>> {
    let mut fixtures = objects
        .iter()
        .map(|object| {
            ProgramFixture::load(&object.bytes).with_context(|| format!("loading {}", object.label))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut rows = Vec::new();
    for measurement in Measurement::ALL {
        // By object, by round: one timing per case.
        let measured = quiet::measure(plan.disturbance_threshold, plan.attempts, || {
            let mut rounds: Vec<Vec<Vec<Timing>>> = vec![Vec::new(); objects.len()];
            for _ in 0..plan.rounds {
                let mut order: Vec<usize> = (0..objects.len()).collect();
                shuffler.shuffle(&mut order);
                for index in order {
                    rounds[index].push(measurement.time(&mut fixtures[index], plan)?);
                }
            }
            Ok(rounds)
        });
        for (index, object) in objects.iter().enumerate() {
            for (i, case) in measurement.cases().into_iter().enumerate() {
                let of_case = |f: fn(&Timing) -> f64| -> Vec<f64> {
                    measured.value.as_ref().map_or_else(
                        |_| Vec::new(),
                        |rounds| rounds[index].iter().map(|timings| f(&timings[i])).collect(),
                    )
                };
                let median = |values: &[f64]| summarize(values).map(|s| s.median);
                let rounds = of_case(|t| t.ns);
                rows.push(Row {
                    repeat,
                    object: object.label.clone(),
                    case: case.label(),
                    ns: median(&rounds),
                    kernel_ns: median(&of_case(|t| t.kernel_ns)),
                    rounds,
                    error: measured.value.as_ref().err().cloned(),
                    attempts: measured.attempts,
                    others: measured.others.clone(),
                });
            }
        }
    }
    Ok(rows)
}

/// `program` on `frame`, `runs` times in one call, on CPU 0.
fn alone_on_cpu0(
    fixture: &ProgramFixture,
    program: Program,
    frame: &[u8],
    runs: u32,
) -> Result<Timing> {
    let [timing] = on_cpus([(program, frame)], |(program, frame)| {
        timed(&fixture.programs, program, frame, runs)
    })?;
    Ok(timing)
}

/// `work[i]` on CPU i, both at once.
fn together(
    fixture: &ProgramFixture,
    work: [(Program, &[u8]); 2],
    runs: u32,
) -> Result<[Timing; 2]> {
    on_cpus(work, |(program, frame)| {
        timed(&fixture.programs, program, frame, runs)
    })
}

/// The median of `syns` new allowed connections through `program`, one
/// call of one run each (the kernel's time, clock reads included), and the
/// median of what each took more than a packet of the established
/// connection on pod port `established` timed the same way right before
/// it. One run a call finds the maps cold, which a loop of runs does not:
/// the difference leaves out what both pay for that.
fn new_connections(
    fixture: &mut ProgramFixture,
    program: Program,
    established: u16,
    syns: u16,
) -> Result<[Timing; 2]> {
    let packet = ProgramFixture::established(program, established);
    let [(syn, over)] = on_cpus([fixture], |fixture| {
        let mut syn_ns = Vec::with_capacity(usize::from(syns));
        let mut over_ns = Vec::with_capacity(usize::from(syns));
        for _ in 0..syns {
            let once = fixture.programs.run(program, &packet, 1)?;
            ensure!(
                once.verdict == PASS,
                "an established packet returned {}",
                once.verdict
            );
            let syn = fixture.open(program)?.as_nanos() as f64;
            syn_ns.push(syn);
            over_ns.push(syn - once.mean.as_nanos() as f64);
        }
        let median = |times: &[f64]| {
            summarize(times)
                .map(|s| s.median)
                .ok_or_else(|| anyhow!("no SYN was timed"))
        };
        Ok((median(&syn_ns)?, median(&over_ns)?))
    })?;
    Ok([syn, over].map(|ns| Timing { ns, kernel_ns: ns }))
}

/// Runs `program` on `frame` `runs` times in one call.
fn timed(programs: &TestPrograms, program: Program, frame: &[u8], runs: u32) -> Result<Timing> {
    let started = quiet::thread_cpu_ns();
    let outcome = programs.run(program, frame, runs)?;
    let used = quiet::thread_cpu_ns() - started;
    ensure!(
        outcome.verdict == PASS,
        "{program:?} returned {} on an established segment",
        outcome.verdict
    );
    Ok(Timing {
        ns: used as f64 / f64::from(runs),
        kernel_ns: outcome.mean.as_nanos() as f64,
    })
}

/// Runs `work[i]` on a thread pinned to CPU i, all starting together.
fn on_cpus<W: Send, T: Send, const N: usize>(
    work: [W; N],
    f: impl Fn(W) -> Result<T> + Sync,
) -> Result<[T; N]> {
    let start = Barrier::new(N);
    let results: Vec<Result<T>> = std::thread::scope(|scope| {
        let handles: Vec<_> = work
            .into_iter()
            .enumerate()
            .map(|(cpu, work)| {
                let (start, f) = (&start, &f);
                scope.spawn(move || {
                    let pinned = pin_to_cpu(cpu);
                    start.wait();
                    pinned?;
                    f(work)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow!("a timing thread panicked")))
            })
            .collect()
    });
    let values = results.into_iter().collect::<Result<Vec<T>>>()?;
    values.try_into().map_err(|_| anyhow!("one result per CPU"))
}

fn pin_to_cpu(cpu: usize) -> Result<()> {
    // SAFETY: a zeroed cpu_set_t is an empty set; CPU_SET and
    // sched_setaffinity (0: the calling thread) only read and write it.
    let result = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set)
    };
    ensure!(
        result == 0,
        "pinning a thread to CPU {cpu}: {}",
        std::io::Error::last_os_error()
    );
    Ok(())
}

fn report(plan: &ProgramPlan, objects: &[Object], rows: &[Row]) -> String {
    let row = |object: &str, case: &str, repeat: usize| {
        rows.iter()
            .find(|r| r.object == object && r.case == case && r.repeat == repeat)
    };
    let cell = |values: &[f64]| match summarize(values) {
        Some(s) => format!("{:.1} [{:.1}–{:.1}]", s.median, s.min, s.max),
        None => "–".to_owned(),
    };
    let mut md = format!(
        "#### The programs, BPF_PROG_TEST_RUN (ns per 64-byte frame; median [min–max] over {} repetitions of the median over {} rounds; {} runs a call)\n\n",
        plan.repeats, plan.rounds, plan.runs
    );
    let mut header = "| case |".to_owned();
    let mut rule = "|---|".to_owned();
    for object in objects {
        let _ = write!(header, " {} |", object.label);
        rule.push_str("---|");
    }
    if let [before, after] = objects {
        let _ = write!(
            header,
            " {} − {} (paired by round) |",
            after.label, before.label
        );
        rule.push_str("---|");
    }
    let _ = writeln!(md, "{header}\n{rule}");
    let cases = [
        Case::EstablishedEgress,
        Case::EstablishedIngress,
        Case::NewConnection(Program::PodEgress),
        Case::NewConnection(Program::PodIngress),
        Case::NewOverEstablished(Program::PodEgress),
        Case::NewOverEstablished(Program::PodIngress),
        Case::TwoDirections { cpu: 0 },
        Case::TwoDirections { cpu: 1 },
        Case::OneDirection { cpu: 0 },
        Case::OneDirection { cpu: 1 },
    ];
    for case in cases {
        let label = case.label();
        let mut line = format!("| {label} |");
        for object in objects {
            let medians: Vec<f64> = (0..plan.repeats)
                .filter_map(|repeat| row(&object.label, &label, repeat)?.ns)
                .collect();
            let _ = write!(line, " {} |", cell(&medians));
        }
        if let [before, after] = objects {
            // Each repetition's median of the differences within its rounds.
            let differences: Vec<f64> = (0..plan.repeats)
                .filter_map(|repeat| {
                    let before = row(&before.label, &label, repeat)?;
                    let after = row(&after.label, &label, repeat)?;
                    let paired: Vec<f64> = after
                        .rounds
                        .iter()
                        .zip(&before.rounds)
                        .map(|(a, b)| a - b)
                        .collect();
                    summarize(&paired).map(|s| s.median)
                })
                .collect();
            let _ = write!(line, " {} |", cell(&differences));
        }
        md.push_str(&line);
        md.push('\n');
    }
    let errors: Vec<&Row> = rows.iter().filter(|r| r.error.is_some()).collect();
    let gap = rows
        .iter()
        .filter(|r| !r.case.contains("SYN"))
        .filter_map(|r| Some((r.ns? - r.kernel_ns?).abs()))
        .fold(0.0, f64::max);
    let disturbed = rows
        .iter()
        .filter(|r| r.others.other_cores >= plan.disturbance_threshold)
        .count();
    let most = rows
        .iter()
        .map(|r| r.others.other_cores)
        .fold(0.0, f64::max);
    let _ = writeln!(
        md,
        "\n¹ One call of one run per SYN (a repeated SYN would find its own entry): per round the median of {} SYNs, as the kernel timed each (whole ns, its clock reads included).\n\
         ² Per SYN, the kernel's time of it less that of an established packet of the same program timed right before it, also one run a call (one run a call finds the maps cold, which a loop does not); the median per round. Added to the established row, it estimates a SYN's cost with the maps as warm as a loop has them.\n\
         Times are the CPU time of the calling thread divided by the runs; the kernel's own mean (whole ns) was at most {gap:.1} ns away. Others used at most {:.0} % of a core during a measurement; {disturbed} of {} rows stayed above {:.0} % after {} attempts. {} errors{}.",
        plan.syns,
        most * 100.0,
        rows.len(),
        plan.disturbance_threshold * 100.0,
        plan.attempts,
        errors.len(),
        errors
            .first()
            .and_then(|r| r.error.as_deref())
            .map_or(String::new(), |e| format!(" (first: {e})")),
    );
    md
}
