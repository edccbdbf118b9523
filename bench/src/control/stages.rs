//! Where the policy implementation delay goes: the daemon's own account of
//! each change (its status file's `last_change`) next to the delay the
//! benchmark saw from outside.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::Timed;
use crate::stats::percentile;

/// One row a stage (in the order the daemon runs them), then the daemon's
/// total and the end-to-end delay, p50 and p99 of each measure.
pub fn table(measures: &[(&str, &[Timed])]) -> String {
    let mut md = String::from(
        "Policy implementation delay by stage (the daemon's status file, `last_change`), ms:\n\n| stage |",
    );
    for (what, _) in measures {
        let _ = write!(md, " {what} p50 | p99 |");
    }
    md.push_str("\n|---|");
    md.push_str(&"---|---|".repeat(measures.len()));
    md.push('\n');
    let mut order: Vec<String> = Vec::new();
    let mut by_stage: Vec<BTreeMap<String, Vec<f64>>> = Vec::new();
    let mut totals: Vec<Vec<f64>> = Vec::new();
    for (_, timed) in measures {
        let mut stages: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        let mut total = Vec::new();
        for change in timed.iter().filter_map(|timed| timed.daemon.as_ref()) {
            total.push(change.total_ms);
            for stage in &change.stages {
                if !order.contains(&stage.stage) {
                    order.push(stage.stage.clone());
                }
                stages
                    .entry(stage.stage.clone())
                    .or_default()
                    .push(stage.ms);
            }
        }
        by_stage.push(stages);
        totals.push(total);
    }
    let cells = |values: Option<&Vec<f64>>| match values.filter(|v| !v.is_empty()) {
        Some(values) => format!(
            " {:.2} | {:.2} |",
            percentile(values, 50.0),
            percentile(values, 99.0)
        ),
        None => " – | – |".to_owned(),
    };
    for stage in &order {
        let _ = write!(md, "| {stage} |");
        for stages in &by_stage {
            md.push_str(&cells(stages.get(stage)));
        }
        md.push('\n');
    }
    md.push_str("| **total (daemon)** |");
    for total in &totals {
        md.push_str(&cells(Some(total)));
    }
    md.push_str("\n| **end to end (status file seen)** |");
    for (_, timed) in measures {
        let seen: Vec<f64> = timed.iter().filter_map(|timed| timed.end_to_end).collect();
        md.push_str(&cells(Some(&seen)));
    }
    md.push('\n');
    for (what, timed) in measures {
        let accounted = timed.iter().filter(|timed| timed.daemon.is_some()).count();
        if accounted < timed.len() {
            let _ = writeln!(
                md,
                "\n{what}: {} of {} changes without the daemon's account (not seen, or merged with the next).",
                timed.len() - accounted,
                timed.len()
            );
        }
    }
    md
}
