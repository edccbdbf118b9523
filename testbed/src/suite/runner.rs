//! Runs the cases of a group one after the other on one world, like the
//! upstream suite: apply a step's changes to the running daemon, wait until
//! it enforces them, probe, and after the case remove its policies and undo
//! its relabels. Every case runs even when an earlier one failed; the group
//! fails at the end with every failing case and its matrices.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::case::{Case, Check, Model, ProbeName, Step};
use super::world::{World, WorldConfig};
use crate::matrix::{Probe, ServerSet, probe_matrices};
use crate::reachability::Reachability;
use crate::topology::{Node, Pod};

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
    let mut node_rows: Vec<NodeRow> = Vec::new();
    for check in &step.checks {
        match check {
            Check::Pods { probe, reach } => matrices.push((*probe, reach.clone())),
            Check::Node { probe, expected } => node_rows.push(NodeRow::new(*probe, expected)),
        }
    }
    let pods = world.pod_refs();
    let (servers, node) = (&world.servers, &world.node);
    std::thread::scope(|scope| -> Result<()> {
        let from_node = scope.spawn(|| -> Result<()> {
            for row in &mut node_rows {
                row.probe_all(node, &pods, servers)?;
            }
            Ok(())
        });
        let mut cases: Vec<(Probe, &mut Reachability)> =
            matrices.iter_mut().map(|(p, r)| (*p, r)).collect();
        let pod_result = probe_matrices(&pods, servers, &mut cases);
        let node_result = from_node
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        pod_result.and(node_result)
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
    for row in &node_rows {
        if !row.is_correct() {
            failures.push(format!("step '{}', {row}", step.what));
        }
    }
    Ok(())
}

/// Probes from the node's own address to each pod.
struct NodeRow {
    probe: Probe,
    /// `(pod, expected, observed)`.
    cells: Vec<(String, bool, Option<bool>)>,
}

impl NodeRow {
    fn new(probe: Probe, expected: &[(String, bool)]) -> Self {
        Self {
            probe,
            cells: expected
                .iter()
                .map(|(pod, e)| (pod.clone(), *e, None))
                .collect(),
        }
    }

    fn is_correct(&self) -> bool {
        self.cells.iter().all(|(_, e, o)| *o == Some(*e))
    }

    /// Probes every cell in parallel, then the wrong ones again.
    fn probe_all(&mut self, node: &Node, pods: &[&Pod], servers: &ServerSet) -> Result<()> {
        for _ in 0..self.probe.attempts {
            let todo: Vec<usize> = (0..self.cells.len())
                .filter(|&i| self.cells[i].2 != Some(self.cells[i].1))
                .collect();
            if todo.is_empty() {
                break;
            }
            let results: Vec<Result<bool>> = std::thread::scope(|scope| {
                let handles: Vec<_> = todo
                    .iter()
                    .map(|&i| {
                        let name = &self.cells[i].0;
                        let pod = pods.iter().find(|p| p.full_name() == *name);
                        let probe = self.probe;
                        scope.spawn(move || -> Result<bool> {
                            let pod = pod.with_context(|| format!("no pod {name}"))?;
                            Ok(probe.deliver(node, pod, servers)?.delivered())
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join()
                            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                    })
                    .collect()
            });
            for (&i, result) in todo.iter().zip(results) {
                self.cells[i].2 = Some(result?);
            }
        }
        Ok(())
    }
}

impl std::fmt::Display for NodeRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let wrong = self.cells.iter().filter(|(_, e, o)| *o != Some(*e)).count();
        writeln!(
            f,
            "node -> pods, {}: correct {}, incorrect {wrong}",
            ProbeName(&self.probe),
            self.cells.len() - wrong
        )?;
        let width = self.cells.iter().map(|(p, ..)| p.len()).max().unwrap_or(3);
        let mut header = format!("{:9}", "");
        let mut expected = format!("{:9}", "expected");
        let mut observed = format!("{:9}", "observed");
        let mark = |allowed: bool| if allowed { "." } else { "X" };
        for (pod, e, o) in &self.cells {
            let seen = match o {
                None => "?".to_owned(),
                Some(o) if o == e => mark(*o).to_owned(),
                Some(o) => format!("{}*", mark(*o)),
            };
            let _ = write!(header, " {pod:width$}");
            let _ = write!(expected, " {:width$}", mark(*e));
            let _ = write!(observed, " {seen:width$}");
        }
        writeln!(
            f,
            "{}\n{}\n{}",
            header.trim_end(),
            expected.trim_end(),
            observed.trim_end()
        )
    }
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
