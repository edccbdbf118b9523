//! Checks between the node and every pod, one probe per pod: from the
//! node's own address to each pod, or from each pod to a host-network pod,
//! whose address is the node's and whose servers run in its namespace.

use std::fmt;

use anyhow::{Context, Result};

use super::case::{Check, ProbeName, Row};
use crate::matrix::{Probe, ServerSet};
use crate::probes::Delivery;
use crate::reachability::{as_expected, observed_mark};
use crate::topology::{Node, Pod};

/// Which way a row's probes go.
enum Ends {
    FromNode,
    /// To the host-network pod of this `namespace/name`.
    ToHostNetwork(String),
}

/// A row being probed: `(pod, expected allowed, observed)` per pod.
pub(super) struct ProbedRow {
    probe: Probe,
    ends: Ends,
    silent_denials: bool,
    cells: Vec<(String, bool, Option<Delivery>)>,
}

impl ProbedRow {
    /// The row of a [`Check::Node`] or [`Check::HostNetwork`].
    pub(super) fn of(check: &Check) -> Option<Self> {
        let (probe, ends, row) = match check {
            Check::Pods { .. } => return None,
            Check::Node { probe, row } => (probe, Ends::FromNode, row),
            Check::HostNetwork { probe, pod, row } => {
                (probe, Ends::ToHostNetwork(pod.clone()), row)
            }
        };
        let Row {
            expected,
            silent_denials,
        } = row;
        Some(Self {
            probe: *probe,
            ends,
            silent_denials: *silent_denials,
            cells: expected
                .iter()
                .map(|(p, e)| (p.clone(), *e, None))
                .collect(),
        })
    }

    pub(super) fn is_correct(&self) -> bool {
        (0..self.cells.len()).all(|i| self.cell_correct(i))
    }

    fn cell_correct(&self, i: usize) -> bool {
        let (_, expected, observed) = &self.cells[i];
        as_expected(*expected, *observed, self.silent_denials)
    }

    /// Probes every cell in parallel, then the wrong ones again.
    pub(super) fn probe_all(
        &mut self,
        node: &Node,
        pods: &[&Pod],
        servers: &ServerSet,
    ) -> Result<()> {
        for _ in 0..self.probe.attempts {
            let todo: Vec<usize> = (0..self.cells.len())
                .filter(|&i| !self.cell_correct(i))
                .collect();
            if todo.is_empty() {
                break;
            }
            let this = &*self;
            let results: Vec<Result<Delivery>> = std::thread::scope(|scope| {
                let handles: Vec<_> = todo
                    .iter()
                    .map(|&i| {
                        let name = &this.cells[i].0;
                        let pod = pods.iter().find(|p| p.full_name() == *name);
                        scope.spawn(move || -> Result<Delivery> {
                            let pod = pod.with_context(|| format!("no pod {name}"))?;
                            this.deliver(node, pod, servers)
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

    fn deliver(&self, node: &Node, pod: &Pod, servers: &ServerSet) -> Result<Delivery> {
        match &self.ends {
            Ends::FromNode => self.probe.deliver(node, pod, servers),
            Ends::ToHostNetwork(target) => {
                let addr = node.ip(self.probe.family);
                self.probe.deliver_at(pod, addr, target, servers)
            }
        }
    }
}

impl fmt::Display for ProbedRow {
    /// A summary line, then one line per pod: expected and observed, a
    /// wrong observation marked `*`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let wrong = (0..self.cells.len())
            .filter(|&i| !self.cell_correct(i))
            .count();
        match &self.ends {
            Ends::FromNode => write!(f, "node -> pods")?,
            Ends::ToHostNetwork(target) => write!(f, "pods -> {target} (host network)")?,
        }
        write!(
            f,
            ", {}: correct {}, incorrect {wrong}",
            ProbeName(&self.probe),
            self.cells.len() - wrong
        )?;
        if self.silent_denials {
            f.write_str(" (a denial must be a silent drop)")?;
        }
        let width = self.cells.iter().map(|(p, ..)| p.len()).max().unwrap_or(0);
        for (i, (pod, expected, observed)) in self.cells.iter().enumerate() {
            let expected = if *expected { "." } else { "X" };
            let observed = observed_mark(*observed, !self.cell_correct(i));
            write!(
                f,
                "\n  {pod:width$}  expected {expected}  observed {observed}"
            )?;
        }
        writeln!(f)
    }
}
