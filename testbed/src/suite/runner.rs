//! Runs the cases of a group one after the other on one world, like the
//! upstream suite: apply a step's changes to the running daemon, wait until
//! it enforces them, probe, and after the case remove its policies and undo
//! its relabels. Every case runs even when an earlier one failed; the group
//! fails at the end with every failing case and its matrices.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::case::{Case, Check, Model, ProbeName, Step};
use super::rows::ProbedRow;
use super::world::{World, WorldConfig};
use crate::matrix::{Probe, probe_matrices};
use crate::reachability::Reachability;

/// How many lines of the daemon log a failing group prints.
const LOG_TAIL: usize = 40;

struct Outcome {
    name: String,
    failures: Vec<String>,
    elapsed: Duration,
}

/// Builds the group's world, runs every case of `cases` on it, tears it
/// down, and fails listing every failing case.
pub fn run_group(config: WorldConfig, cases: impl FnOnce(&Model) -> Vec<Case>) -> Result<()> {
    let group = config.tag;
    let started = Instant::now();
    let mut world = World::start(config).with_context(|| format!("building the {group} world"))?;
    eprintln!("{group}: world ready in {:.1?}", started.elapsed());
    let cases = cases(&world.model());
    let mut outcomes = Vec::with_capacity(cases.len());
    for case in &cases {
        let outcome = if world.daemon_alive() {
            run_case(&mut world, case)
        } else {
            Outcome {
                name: case.name.clone(),
                failures: vec!["not run: the daemon is gone".into()],
                elapsed: Duration::ZERO,
            }
        };
        let verdict = if outcome.failures.is_empty() {
            "ok"
        } else {
            "FAILED"
        };
        eprintln!(
            "{group}: {verdict:6} {} ({:.1?})",
            outcome.name, outcome.elapsed
        );
        outcomes.push(outcome);
    }
    let failed = outcomes.iter().any(|o| !o.failures.is_empty());
    let log = if failed {
        world.daemon_log_tail(LOG_TAIL)
    } else {
        String::new()
    };
    drop(world);
    report(group, &outcomes, started.elapsed(), &log)
}

fn run_case(world: &mut World, case: &Case) -> Outcome {
    let started = Instant::now();
    let mut failures = Vec::new();
    for step in &case.steps {
        if let Err(error) = run_step(world, step, &mut failures) {
            failures.push(format!("step '{}': {error:#}", step.what));
            break;
        }
    }
    if let Err(error) = world.reset() {
        failures.push(format!("cleaning up after the case: {error:#}"));
    }
    Outcome {
        name: case.name.clone(),
        failures,
        elapsed: started.elapsed(),
    }
}

fn run_step(world: &mut World, step: &Step, failures: &mut Vec<String>) -> Result<()> {
    world.apply(&step.changes, &step.expected_problems)?;
    let mut matrices: Vec<(Probe, Reachability)> = Vec::new();
    let mut rows: Vec<ProbedRow> = Vec::new();
    for check in &step.checks {
        match check {
            Check::Pods { probe, reach } => matrices.push((*probe, reach.clone())),
            other => rows.extend(ProbedRow::of(other)),
        }
    }
    let pods = world.pod_refs();
    let (servers, node) = (&world.servers, &world.node);
    std::thread::scope(|scope| -> Result<()> {
        let node_rows = scope.spawn(|| -> Result<()> {
            for row in &mut rows {
                row.probe_all(node, &pods, servers)?;
            }
            Ok(())
        });
        let mut cases: Vec<(Probe, &mut Reachability)> =
            matrices.iter_mut().map(|(p, r)| (*p, r)).collect();
        let pod_result = probe_matrices(&pods, servers, &mut cases);
        let row_result = node_rows
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        pod_result.and(row_result)
    })?;
    for (probe, reach) in &matrices {
        if !reach.is_correct() {
            failures.push(format!(
                "step '{}', {}:\n{reach}",
                step.what,
                ProbeName(probe)
            ));
        }
    }
    for row in &rows {
        if !row.is_correct() {
            failures.push(format!("step '{}', {row}", step.what));
        }
    }
    Ok(())
}

fn report(group: &str, outcomes: &[Outcome], elapsed: Duration, log: &str) -> Result<()> {
    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| !o.failures.is_empty()).collect();
    let mut text = format!(
        "{group}: {} of {} cases passed in {elapsed:.1?}\n",
        outcomes.len() - failed.len(),
        outcomes.len()
    );
    for outcome in outcomes {
        let verdict = if outcome.failures.is_empty() {
            "ok"
        } else {
            "FAILED"
        };
        let _ = writeln!(text, "  {verdict:6} {}", outcome.name);
    }
    if failed.is_empty() {
        eprintln!("{text}");
        return Ok(());
    }
    for outcome in failed {
        let _ = write!(
            text,
            "\n=== FAILED: {} ===\n{}\n",
            outcome.name,
            outcome.failures.join("\n")
        );
    }
    let _ = write!(
        text,
        "\n--- the last {LOG_TAIL} lines of the daemon log ---\n{log}"
    );
    bail!(text)
}
