//! The datapath benchmark: every (variant, N) configuration on a freshly
//! built harness, shuffled within each repetition.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use anyhow::Result;
use serde::Serialize;

use crate::bed::Bed;
use crate::measures::{self, Durations};
use crate::quiet::{self, Disturbance, Measured};
use crate::receiver::Receiver;
use crate::stats::Shuffler;
use crate::variants::{self, Enforcement, Variant};

#[derive(Debug, Clone)]
pub struct DatapathPlan {
    pub repeats: usize,
    pub sizes: Vec<usize>,
    pub variants: Vec<Variant>,
    /// N at which the /dev/null flow-log variant of netseg runs.
    pub no_flow_events_sizes: Vec<usize>,
    /// What the server does with the 64-byte stream: each named receiver
    /// is measured in turn on every configuration.
    pub receivers: Vec<Receiver>,
    pub durations: Durations,
    /// A measurement during which others used more than this share of a
    /// core is repeated (up to `attempts` times; the least disturbed is kept).
    pub disturbance_threshold: f64,
    pub attempts: usize,
    pub seed: u64,
    /// No repetition starts that would, at the pace of the previous one,
    /// end after this time.
    pub stop_by: Option<SystemTime>,
}

/// One measured value and how disturbed its window was.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub value: Option<f64>,
    pub error: Option<String>,
    pub attempts: usize,
    pub others: Disturbance,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConfigResult {
    pub repeat: usize,
    pub variant: Variant,
    pub variant_name: &'static str,
    pub n: usize,
    pub setup_ms: Option<f64>,
    pub error: Option<String>,
    pub tcp_gbps: Option<Sample>,
    /// 64-byte packets with the server's stack receiving them.
    pub pps_receiver_stack: Option<Sample>,
    /// 64-byte packets dropped at the server's eth0 ingress.
    pub pps_receiver_drop: Option<Sample>,
    pub udp_p50_us: Option<Sample>,
    pub udp_p99_us: Option<Sample>,
    pub conn_per_s: Option<Sample>,
}

/// The configurations of one repetition: no enforcement once (it does not
/// depend on N), every other variant at every N.
fn configurations(plan: &DatapathPlan) -> Vec<(Variant, usize)> {
    let mut configs = Vec::new();
    for &variant in &plan.variants {
        match variant {
            Variant::None => configs.push((variant, 0)),
            Variant::NetsegNoFlowEvents => {
                configs.extend(plan.no_flow_events_sizes.iter().map(|&n| (variant, n)))
            }
            _ => configs.extend(plan.sizes.iter().map(|&n| (variant, n))),
        }
    }
    configs
}

pub fn run(plan: &DatapathPlan, netseg: &Path, out: &Path) -> Result<Vec<ConfigResult>> {
    let results_path = out.join("datapath.jsonl");
    let mut results = Vec::new();
    let mut shuffler = Shuffler::new(plan.seed);
    for repeat in 0..plan.repeats {
        let started = Instant::now();
        let mut configs = configurations(plan);
        shuffler.shuffle(&mut configs);
        for (i, &(variant, n)) in configs.iter().enumerate() {
            eprintln!(
                "netseg-bench: repetition {}/{} configuration {}/{}: {} N={n}",
                repeat + 1,
                plan.repeats,
                i + 1,
                configs.len(),
                variant.name()
            );
            let config_started = Instant::now();
            let result = run_config(plan, repeat, variant, n, netseg, out);
            eprintln!(
                "netseg-bench:   {} ({:.0} s)",
                one_line(&result),
                config_started.elapsed().as_secs_f64()
            );
            let mut file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&results_path)?;
            writeln!(file, "{}", serde_json::to_string(&result)?)?;
            results.push(result);
        }
        if let Some(stop_by) = plan.stop_by
            && repeat + 1 < plan.repeats
            && SystemTime::now() + started.elapsed() > stop_by
        {
            eprintln!(
                "netseg-bench: stopping after {} of {} repetitions: another would end after --stop-by",
                repeat + 1,
                plan.repeats
            );
            break;
        }
    }
    Ok(results)
}

fn one_line(r: &ConfigResult) -> String {
    let v = |s: &Option<Sample>| {
        s.as_ref()
            .and_then(|s| s.value)
            .map_or("-".to_owned(), |v| format!("{v:.3}"))
    };
    match &r.error {
        Some(e) => format!("error: {e}"),
        None => format!(
            "setup {:.0} ms, tcp {} Gbit/s, {}/{} pps (stack/drop receiver), udp p50/p99 {}/{} us, {} conn/s",
            r.setup_ms.unwrap_or(f64::NAN),
            v(&r.tcp_gbps),
            v(&r.pps_receiver_stack),
            v(&r.pps_receiver_drop),
            v(&r.udp_p50_us),
            v(&r.udp_p99_us),
            v(&r.conn_per_s)
        ),
    }
}

fn run_config(
    plan: &DatapathPlan,
    repeat: usize,
    variant: Variant,
    n: usize,
    netseg: &Path,
    out: &Path,
) -> ConfigResult {
    let mut result = ConfigResult {
        repeat,
        variant,
        variant_name: variant.name(),
        n,
        setup_ms: None,
        error: None,
        tcp_gbps: None,
        pps_receiver_stack: None,
        pps_receiver_drop: None,
        udp_p50_us: None,
        udp_p99_us: None,
        conn_per_s: None,
    };
    if let Err(e) = measure_config(plan, variant, n, netseg, out, &mut result) {
        result.error = Some(format!("{e:#}"));
    }
    result
}

fn measure_config(
    plan: &DatapathPlan,
    variant: Variant,
    n: usize,
    netseg: &Path,
    out: &Path,
    result: &mut ConfigResult,
) -> Result<()> {
    let mut bed = Bed::new(&format!("bench-{}", variant.name()))?;
    let work: PathBuf = out.join("work");
    std::fs::create_dir_all(&work)?;
    let (enforcement, setup) = variants::enforce(&bed, variant, n, netseg, &work)?;
    result.setup_ms = Some(setup.as_secs_f64() * 1e3);
    bed.start_servers()?;
    let d = plan.durations;
    result.tcp_gbps = Some(measure(plan, || measures::tcp_throughput(&bed, d.tcp)).into());
    for &receiver in &plan.receivers {
        let pps = measure(plan, || measures::packet_rate(&bed, receiver, d.packets)).into();
        match receiver {
            Receiver::Stack => result.pps_receiver_stack = Some(pps),
            Receiver::Drop => result.pps_receiver_drop = Some(pps),
        }
    }
    let latency = measure(plan, || measures::udp_latency(&bed, d.latency));
    result.udp_p50_us = Some(latency.map_value(|(p50, _)| p50));
    result.udp_p99_us = Some(latency.map_value(|(_, p99)| p99));
    result.conn_per_s =
        Some(measure(plan, || measures::connection_rate(&bed, d.connections)).into());
    if let Enforcement::Netseg { daemon, .. } = &enforcement
        && let Some(status) = daemon.status()
        && !status.problems.is_empty()
    {
        result.error = Some(format!("netseg problems: {:?}", status.problems));
    }
    drop(enforcement);
    Ok(())
}

impl<T: Copy> Measured<T> {
    fn map_value(&self, f: impl Fn(T) -> f64) -> Sample {
        Sample {
            value: self.value.as_ref().ok().map(|v| f(*v)),
            error: self.value.as_ref().err().cloned(),
            attempts: self.attempts,
            others: self.others.clone(),
        }
    }
}

impl From<Measured<f64>> for Sample {
    fn from(m: Measured<f64>) -> Self {
        m.map_value(|v| v)
    }
}

fn measure<T>(plan: &DatapathPlan, f: impl FnMut() -> Result<T>) -> Measured<T> {
    quiet::measure(plan.disturbance_threshold, plan.attempts, f)
}
