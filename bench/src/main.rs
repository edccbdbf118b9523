//! `netseg-bench`: the benchmark of netseg, run by `scripts/bench`.
//!
//! Everything runs inside network namespaces this process creates (the
//! testbed's isolated node and pod namespaces); no rule, program, route or
//! sysctl of the machine's own namespace is touched.

mod bed;
mod connrate;
mod control;
mod datapath;
mod flows;
mod measures;
mod netseg;
mod program;
mod quiet;
mod receiver;
mod report;
mod scan;
mod stats;
mod variants;

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;

use crate::datapath::DatapathPlan;
use crate::measures::Durations;
use crate::receiver::Receiver;
use crate::variants::Variant;

#[derive(Parser, Debug)]
#[command(about = "Benchmarks netseg against iptables and nftables in isolated namespaces")]
struct Args {
    /// The netseg binary (a release build), for every section but
    /// `program` and `scan`, which time this benchmark's own build of it.
    #[arg(long, env = "NETSEG_BIN")]
    netseg: Option<PathBuf>,
    /// Where results (JSON lines, markdown) go.
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
    /// Which parts run (`kube`, the API server source at scale, only when named).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "program,scan,datapath,control,flows"
    )]
    sections: Vec<String>,
    /// Repetitions of the datapath matrix.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Numbers of non-matching rules per policy.
    #[arg(long, value_delimiter = ',', default_value = "0,100,1000,10000,50000")]
    sizes: Vec<usize>,
    /// Variants (default: all).
    #[arg(long, value_delimiter = ',')]
    variants: Vec<String>,
    /// N at which netseg also runs with flow events off (`--flow-events none`).
    #[arg(long, value_delimiter = ',', default_value = "0,1000")]
    no_flow_events_sizes: Vec<usize>,
    /// What the server pod does with the 64-byte stream, each measured in
    /// turn: `stack` lets its stack receive every packet (socket lookup,
    /// ICMP unreachable), `drop` drops the stream at its eth0 ingress with a
    /// constant-cost program, so the ratio shows enforcement cost alone.
    #[arg(long, value_delimiter = ',', default_value = "stack,drop")]
    receivers: Vec<String>,
    /// Seconds per measure (iperf3, trafgen, sockperf; connections use 2/3).
    #[arg(long, default_value_t = 2)]
    seconds: u64,
    /// Share of a core other processes may use during a measurement.
    #[arg(long, default_value_t = 0.10)]
    disturbance: f64,
    /// Attempts per measurement when disturbed.
    #[arg(long, default_value_t = 3)]
    attempts: usize,
    /// Policy changes for the implementation-delay measurement.
    #[arg(long, default_value_t = 100)]
    changes: usize,
    /// Scale of the memory measurement: pods, namespaces, policies.
    #[arg(long, value_delimiter = ',', default_value = "10000,500,2000")]
    scale: Vec<usize>,
    /// Pods the fake API server serves in the `kube` section, one run per number.
    #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
    kube_pods: Vec<usize>,
    /// Namespaces the pods of the `kube` section are spread over.
    #[arg(long, default_value_t = 5000)]
    kube_namespaces: usize,
    /// Repetitions of the `kube` section (a fresh fake and daemon each).
    #[arg(long, default_value_t = 3)]
    kube_repeats: usize,
    /// Label changes, and status-only changes, per `kube` run.
    #[arg(long, default_value_t = 20)]
    kube_changes: usize,
    /// An eBPF object of another build (e.g. the commit before a datapath
    /// change), timed in the `program` section interleaved with this build's.
    #[arg(long)]
    program_baseline: Option<PathBuf>,
    /// An eBPF object timed in the `program` section in place of this
    /// build's (e.g. one just built from a working tree with
    /// `cargo build -p netseg-ebpf-object`), so a datapath change is timed
    /// without rebuilding the benchmark.
    #[arg(long)]
    program_object: Option<PathBuf>,
    /// Repetitions of the `program` section (each loads the objects afresh).
    #[arg(long, default_value_t = 7)]
    program_repeats: usize,
    /// Rounds of a `program` measurement, alternating the objects.
    #[arg(long, default_value_t = 40)]
    program_rounds: usize,
    /// Runs of one frame per BPF_PROG_TEST_RUN call (one a round).
    #[arg(long, default_value_t = 200_000)]
    program_runs: u32,
    /// New connections timed a round, one call each.
    #[arg(long, default_value_t = 16)]
    program_syns: u16,
    /// Entries in the conntrack table for the `scan` section, one measurement each.
    #[arg(long, value_delimiter = ',', default_value = "10000,100000,262144")]
    scan_sizes: Vec<usize>,
    /// Repetitions of the `scan` section at each size.
    #[arg(long, default_value_t = 5)]
    scan_repeats: usize,
    /// Unix time after which no datapath repetition should end: fewer
    /// repetitions rather than a missed deadline.
    #[arg(long)]
    stop_by: Option<u64>,
    /// Shuffle seed (default: the clock).
    #[arg(long)]
    seed: Option<u64>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    netseg_testbed::require_root();
    fs::create_dir_all(&args.out)?;
    let out = fs::canonicalize(&args.out)?;
    let removed = netseg_testbed::cleanup_stale_namespaces()?;
    if !removed.is_empty() {
        eprintln!("netseg-bench: removed stale namespaces {removed:?}");
    }
    let section = |name: &str| args.sections.iter().any(|s| s == name);
    let netseg = if ["control", "kube", "flows", "datapath"]
        .into_iter()
        .any(section)
    {
        let Some(netseg) = &args.netseg else {
            bail!("--netseg is needed by sections control, kube, flows and datapath");
        };
        if !netseg.is_file() {
            bail!("--netseg {} is not a file", netseg.display());
        }
        Some(fs::canonicalize(netseg)?)
    } else {
        None
    };
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_secs())
    });
    eprintln!("netseg-bench: shuffle seed {seed}");
    if section("program") {
        let plan = program::ProgramPlan {
            baseline: args.program_baseline.clone(),
            object: args.program_object.clone(),
            repeats: args.program_repeats,
            rounds: args.program_rounds,
            runs: args.program_runs,
            syns: args.program_syns,
            disturbance_threshold: args.disturbance,
            attempts: args.attempts,
            seed,
        };
        let md = program::run(&plan, &out)?;
        fs::write(out.join("program.md"), &md)?;
        println!("{md}");
    }
    if section("scan") {
        let plan = scan::ScanPlan {
            sizes: args.scan_sizes.clone(),
            repeats: args.scan_repeats,
            disturbance_threshold: args.disturbance,
            attempts: args.attempts,
        };
        let md = scan::run(&plan)?;
        fs::write(out.join("scan.md"), &md)?;
        println!("{md}");
    }
    // Checked before anything runs; None when no section needs it.
    let Some(netseg) = netseg else {
        return Ok(());
    };
    if section("control") {
        let [pods, namespaces, policies] = args.scale[..] else {
            bail!("--scale wants pods,namespaces,policies");
        };
        let md = control::run(
            &netseg,
            &out,
            args.changes,
            control::Scale {
                pods,
                namespaces,
                policies,
            },
        )?;
        fs::write(out.join("control.md"), &md)?;
        println!("{md}");
    }
    if section("kube") {
        let scales: Vec<control::KubeScale> = args
            .kube_pods
            .iter()
            .map(|&pods| control::KubeScale {
                pods,
                namespaces: args.kube_namespaces,
            })
            .collect();
        let work = out.join("work-kube");
        fs::create_dir_all(&work)?;
        let md = control::run_kube(
            &netseg,
            &work,
            &scales,
            args.kube_repeats,
            args.kube_changes,
        )?;
        fs::write(out.join("kube.md"), &md)?;
        println!("{md}");
    }
    if section("flows") {
        let md = flows::run(&netseg, &out)?;
        fs::write(out.join("flows.md"), &md)?;
        println!("{md}");
    }
    if section("datapath") {
        let plan = plan(&args, seed)?;
        let _ = fs::remove_file(out.join("datapath.jsonl"));
        let results = datapath::run(&plan, &netseg, &out)?;
        let repeats = results.iter().map(|r| r.repeat + 1).max().unwrap_or(0);
        let md = format!(
            "Repetitions: {repeats} of {} requested; {} configurations measured.\n{}\n\n#### Targets\n{}\n\n#### Disturbance\n\n{}\n",
            plan.repeats,
            results.len(),
            report::datapath_tables(&results),
            report::targets(&results),
            report::disturbance(&results, plan.disturbance_threshold)
        );
        fs::write(out.join("datapath.md"), &md)?;
        println!("{md}");
    }
    Ok(())
}

fn plan(args: &Args, seed: u64) -> Result<DatapathPlan> {
    let variants = if args.variants.is_empty() {
        Variant::ALL.to_vec()
    } else {
        let mut chosen: Vec<Variant> = args
            .variants
            .iter()
            .map(|name| Variant::parse(name).with_context(|| format!("unknown variant {name}")))
            .collect::<Result<_>>()?;
        // Ratios need the baseline of every repetition.
        if !chosen.contains(&Variant::None) {
            chosen.push(Variant::None);
        }
        chosen
    };
    let mut receivers = Vec::new();
    for name in &args.receivers {
        let receiver = Receiver::parse(name)
            .with_context(|| format!("unknown receiver {name} (stack or drop)"))?;
        if !receivers.contains(&receiver) {
            receivers.push(receiver);
        }
    }
    let seconds = Duration::from_secs(args.seconds);
    Ok(DatapathPlan {
        repeats: args.repeats,
        sizes: args.sizes.clone(),
        variants,
        no_flow_events_sizes: args.no_flow_events_sizes.clone(),
        receivers,
        durations: Durations {
            tcp: seconds,
            packets: seconds,
            latency: seconds,
            connections: seconds * 2 / 3,
        },
        disturbance_threshold: args.disturbance,
        attempts: args.attempts,
        seed,
        stop_by: args
            .stop_by
            .map(|secs| std::time::UNIX_EPOCH + Duration::from_secs(secs)),
    })
}
