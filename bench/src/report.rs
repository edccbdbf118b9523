//! Markdown tables of the datapath results: ratios to the no-enforcement
//! run of the same repetition, median and range over repetitions.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use crate::datapath::{ConfigResult, Sample};
use crate::stats::summarize;
use crate::variants::Variant;

type Metric = fn(&ConfigResult) -> Option<&Sample>;

const TCP: Metric = |r| r.tcp_gbps.as_ref();
const PPS_STACK: Metric = |r| r.pps_receiver_stack.as_ref();
const PPS_DROP: Metric = |r| r.pps_receiver_drop.as_ref();
const CONNECTIONS: Metric = |r| r.conn_per_s.as_ref();

const METRICS: [(&str, &str, Metric); 6] = [
    ("TCP throughput, single stream", "Gbit/s", TCP),
    (
        "64-byte packets forwarded, drop receiver (dropped at the server's eth0 ingress)",
        "pps",
        PPS_DROP,
    ),
    (
        "64-byte packets forwarded, stack receiver (the server's stack receives each)",
        "pps",
        PPS_STACK,
    ),
    ("UDP request-response latency p50", "µs", |r| {
        r.udp_p50_us.as_ref()
    }),
    ("UDP request-response latency p99", "µs", |r| {
        r.udp_p99_us.as_ref()
    }),
    ("New TCP connections", "conn/s", CONNECTIONS),
];

fn value(r: &ConfigResult, metric: Metric) -> Option<f64> {
    metric(r).and_then(|s| s.value)
}

/// Baseline (no enforcement) value per repetition.
fn baselines(results: &[ConfigResult], metric: Metric) -> BTreeMap<usize, f64> {
    results
        .iter()
        .filter(|r| r.variant == Variant::None)
        .filter_map(|r| Some((r.repeat, value(r, metric)?)))
        .collect()
}

/// Ratios of `variant` at `n` to the baseline of the same repetition.
pub fn ratios(results: &[ConfigResult], metric: Metric, variant: Variant, n: usize) -> Vec<f64> {
    let base = baselines(results, metric);
    results
        .iter()
        .filter(|r| r.variant == variant && r.n == n)
        .filter_map(|r| Some(value(r, metric)? / base.get(&r.repeat)?))
        .collect()
}

/// Ratios between two variants at `n`, paired by repetition.
pub fn paired(
    results: &[ConfigResult],
    metric: Metric,
    a: Variant,
    b: Variant,
    n: usize,
) -> Vec<f64> {
    let of = |v: Variant| -> BTreeMap<usize, f64> {
        results
            .iter()
            .filter(|r| r.variant == v && r.n == n)
            .filter_map(|r| Some((r.repeat, value(r, metric)?)))
            .collect()
    };
    let (a, b) = (of(a), of(b));
    a.iter()
        .filter_map(|(rep, va)| Some(va / b.get(rep)?))
        .collect()
}

fn human(v: f64) -> String {
    match v.abs() {
        x if x >= 1e6 => format!("{:.2}M", v / 1e6),
        x if x >= 1e4 => format!("{:.1}k", v / 1e3),
        x if x >= 100.0 => format!("{v:.0}"),
        x if x >= 10.0 => format!("{v:.1}"),
        _ => format!("{v:.2}"),
    }
}

fn range(values: &[f64], unit: &str) -> String {
    match summarize(values) {
        Some(s) if s.count > 1 => format!(
            "{}{unit} ({}–{})",
            human(s.median),
            human(s.min),
            human(s.max)
        ),
        Some(s) => format!("{}{unit}", human(s.median)),
        None => "–".to_owned(),
    }
}

pub fn datapath_tables(results: &[ConfigResult]) -> String {
    let variants: BTreeSet<Variant> = results.iter().map(|r| r.variant).collect();
    let sizes: BTreeSet<usize> = results
        .iter()
        .filter(|r| r.variant != Variant::None)
        .map(|r| r.n)
        .collect();
    let mut md = String::new();
    // A receiver left out of `--receivers` has no table; a measure that
    // failed has one (its errors are listed under Disturbance).
    let taken = |metric: Metric| results.iter().any(|r| metric(r).is_some());
    for (title, unit, metric) in METRICS.into_iter().filter(|m| taken(m.2)) {
        let base: Vec<f64> = baselines(results, metric).into_values().collect();
        let _ = writeln!(
            md,
            "\n#### {title}\n\nNo enforcement: {} {unit} (median, min–max over repetitions). \
             Cells: ratio to no enforcement in the same repetition, median (min–max); \
             below it the median {unit}.\n",
            range(&base, "")
        );
        let header: Vec<String> = sizes.iter().map(|n| format!("N = {n}")).collect();
        let _ = writeln!(md, "| variant | {} |", header.join(" | "));
        let _ = writeln!(md, "|---|{}", "---|".repeat(sizes.len()));
        for &variant in variants.iter().filter(|v| **v != Variant::None) {
            let cells: Vec<String> = sizes
                .iter()
                .map(|&n| {
                    let rs = ratios(results, metric, variant, n);
                    let abs: Vec<f64> = results
                        .iter()
                        .filter(|r| r.variant == variant && r.n == n)
                        .filter_map(|r| value(r, metric))
                        .collect();
                    if abs.is_empty() {
                        return "–".to_owned();
                    }
                    format!("{}<br>{}", range(&rs, "x"), range(&abs, ""))
                })
                .collect();
            let _ = writeln!(md, "| {} | {} |", variant.name(), cells.join(" | "));
        }
    }
    md.push_str(&setup_table(results, &variants, &sizes));
    md
}

fn setup_table(
    results: &[ConfigResult],
    variants: &BTreeSet<Variant>,
    sizes: &BTreeSet<usize>,
) -> String {
    let mut md = String::from(
        "\n#### Time to program the policy (ms; netseg: daemon start to the first status with both endpoints)\n\n",
    );
    let header: Vec<String> = sizes.iter().map(|n| format!("N = {n}")).collect();
    let _ = writeln!(md, "| variant | {} |", header.join(" | "));
    let _ = writeln!(md, "|---|{}", "---|".repeat(sizes.len()));
    for &variant in variants.iter().filter(|v| **v != Variant::None) {
        let cells: Vec<String> = sizes
            .iter()
            .map(|&n| {
                let v: Vec<f64> = results
                    .iter()
                    .filter(|r| r.variant == variant && r.n == n)
                    .filter_map(|r| r.setup_ms)
                    .collect();
                range(&v, "")
            })
            .collect();
        let _ = writeln!(md, "| {} | {} |", variant.name(), cells.join(" | "));
    }
    md
}

/// The issues' targets (issue 12's, and issue 4's stack-receiver packet
/// rate), checked against the medians.
pub fn targets(results: &[ConfigResult]) -> String {
    let sizes = |variant: Variant| -> BTreeSet<usize> {
        results
            .iter()
            .filter(|r| r.variant == variant)
            .map(|r| r.n)
            .collect()
    };
    let measured = |metric: Metric| results.iter().any(|r| value(r, metric).is_some());
    let receivers: Vec<(&str, Metric)> = [("drop", PPS_DROP), ("stack", PPS_STACK)]
        .into_iter()
        .filter(|(_, metric)| measured(*metric))
        .collect();
    let mut md = String::from("\n| target | measured (median, min–max) | met |\n|---|---|---|\n");
    let mut row = |what: String, values: Vec<f64>, goal: f64| {
        let met = match summarize(&values) {
            Some(s) if s.median >= goal => "yes",
            Some(_) => "**no**",
            None => "not measured",
        };
        let _ = writeln!(md, "| {what} | {} | {met} |", range(&values, "x"));
    };
    let netseg = |metric: Metric, n: usize| ratios(results, metric, Variant::Netseg, n);
    for n in sizes(Variant::Netseg) {
        if measured(PPS_DROP) {
            row(
                format!("netseg 64-byte pps, drop receiver, ≥ 0.97x no enforcement, N = {n}"),
                netseg(PPS_DROP, n),
                0.97,
            );
        }
        if measured(PPS_STACK) {
            row(
                format!("netseg 64-byte pps, stack receiver, ≥ 0.90x no enforcement, N = {n}"),
                netseg(PPS_STACK, n),
                0.90,
            );
        }
        row(
            format!("netseg new TCP connections ≥ 0.95x no enforcement, N = {n}"),
            netseg(CONNECTIONS, n),
            0.95,
        );
        row(
            format!("netseg TCP ≥ 0.95x no enforcement, N = {n}"),
            netseg(TCP, n),
            0.95,
        );
    }
    let linear = [
        Variant::IptablesLegacy,
        Variant::IptablesNft,
        Variant::IptablesLegacyEst,
        Variant::IptablesNftEst,
    ];
    for other in linear.into_iter().filter(|v| !sizes(*v).is_empty()) {
        for &(receiver, metric) in &receivers {
            row(
                format!(
                    "netseg pps, {receiver} receiver, ≥ 5x {} at N = 1000",
                    other.name()
                ),
                paired(results, metric, Variant::Netseg, other, 1000),
                5.0,
            );
        }
    }
    for n in sizes(Variant::NetsegNoFlowEvents) {
        let metrics = receivers
            .iter()
            .map(|&(receiver, metric)| (format!("pps, {receiver} receiver"), metric))
            .chain([("conn/s".to_owned(), CONNECTIONS)]);
        for (what, metric) in metrics {
            row(
                format!("flow events on ≥ 0.95x flow events off, {what}, N = {n}"),
                paired(
                    results,
                    metric,
                    Variant::Netseg,
                    Variant::NetsegNoFlowEvents,
                    n,
                ),
                0.95,
            );
        }
    }
    md
}

/// How many measurements were retried or stayed disturbed.
pub fn disturbance(results: &[ConfigResult], threshold: f64) -> String {
    let samples: Vec<&Sample> = results
        .iter()
        .flat_map(|r| {
            [
                &r.tcp_gbps,
                &r.pps_receiver_stack,
                &r.pps_receiver_drop,
                &r.udp_p50_us,
                &r.conn_per_s,
            ]
        })
        .flatten()
        .collect();
    let retried = samples.iter().filter(|s| s.attempts > 1).count();
    let disturbed: Vec<&&Sample> = samples
        .iter()
        .filter(|s| s.others.other_cores >= threshold)
        .collect();
    let worst = samples
        .iter()
        .map(|s| s.others.other_cores)
        .fold(0.0, f64::max);
    let errors: Vec<String> = results
        .iter()
        .filter_map(|r| {
            Some(format!(
                "{} N={}: {}",
                r.variant_name,
                r.n,
                r.error.as_ref()?
            ))
        })
        .chain(samples.iter().filter_map(|s| s.error.clone()))
        .collect();
    format!(
        "{} measurements; {retried} repeated because other processes used ≥ {:.0}% of a core; \
         {} still above that after the last attempt (kept: the least disturbed); worst {:.0}% of a core. \
         Errors: {}.",
        samples.len(),
        threshold * 100.0,
        disturbed.len(),
        worst * 100.0,
        if errors.is_empty() {
            "none".to_owned()
        } else {
            errors.join("; ")
        }
    )
}
