//! The policy half of the daemon: what the source holds, compiled, and
//! published through a [`MapWriter`] (the kernel maps, or memory in tests),
//! with the decisions that rest only on those: whether to recompile, what
//! went wrong, and whether the daemon may take over from a previous one.
//! It does no I/O of its own, so it is driven in tests without root.

mod stages;
#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::sync::Arc;

use netseg_policy::{CompileOptions, Compiled, Compiler, Snapshot};
use tracing::{error, info, warn};

use crate::cni::CniRegistry;
use crate::datapath::MapEntries;
use crate::datapath::publish::{MapWriter, Published, Publisher};
use crate::datapath::state::SlotState;
use crate::sources::{Refused, Update};

pub use stages::ChangeStages;
use stages::ChangeTimer;

/// A compiled policy and what it was compiled from: the source's objects
/// with the CNI plugin's pods overlaid.
struct Compilation {
    compiled: Arc<Compiled>,
    from: Snapshot,
}

pub struct Enforcer<W: MapWriter> {
    options: CompileOptions,
    compiler: Compiler,
    /// The last compilation; `None` when an input changed since.
    compiled: Option<Compilation>,
    /// How many compilations ran (a relist that changed nothing runs none).
    pub compilations: u64,
    /// The objects in force, as of the source's last update.
    snapshot: Snapshot,
    /// What the source refused at its last update.
    invalid: Snapshot,
    refused: Vec<Refused>,
    publisher: Publisher<W>,
    /// What the source must do to be synced, for messages.
    sync_awaited: &'static str,
    /// Whether the source has read everything once: before that, the
    /// pinned programs of a previous daemon keep enforcing.
    source_synced: bool,
    source_problems: Vec<String>,
    /// The warnings of `netseg check` about objects in force whose
    /// enforcement departs from what they say (rules that fail closed,
    /// unknown subject Segments); every warning is logged.
    policy_warnings: Vec<String>,
    /// Whether `policy_warnings` are those of the objects in force.
    warnings_checked: bool,
    publish_problem: Option<String>,
    /// The change of the objects in force that no publication has
    /// carried yet, timed from when the source first saw it.
    unpublished: Option<ChangeTimer>,
    /// How full a slot is with what was last published, or what a failed
    /// publication could not write.
    tables: [MapEntries; 4],
}

impl<W: MapWriter> Enforcer<W> {
    pub fn new(writer: W, options: CompileOptions, sync_awaited: &'static str) -> Self {
        Self {
            options,
            compiler: Compiler::new(),
            compiled: None,
            compilations: 0,
            snapshot: Snapshot::default(),
            invalid: Snapshot::default(),
            refused: Vec::new(),
            publisher: Publisher::new(writer),
            sync_awaited,
            source_synced: false,
            source_problems: Vec::new(),
            policy_warnings: Vec::new(),
            warnings_checked: true,
            publish_problem: None,
            unpublished: None,
            tables: SlotState::default().entries(),
        }
    }

    /// Takes in what the source holds; `snapshot` is asked for only when
    /// the objects in force changed. A change is timed from when the
    /// source saw it, unless it came before the source was synced: the
    /// first whole read is the daemon starting, not a policy change.
    pub fn take_update(&mut self, update: Update, snapshot: impl FnOnce() -> Snapshot) {
        self.source_problems = update.problems.iter().map(ToString::to_string).collect();
        for problem in &update.problems {
            warn!(%problem, "source problem; the last good version stays enforced");
        }
        if update.changed {
            if let Some(seen_at) = update.seen_at.filter(|_| self.source_synced) {
                let timer = self
                    .unpublished
                    .get_or_insert_with(|| ChangeTimer::new(seen_at));
                timer.taken(update.taken_at.unwrap_or(seen_at));
            }
            self.compiled = None;
            self.snapshot = snapshot();
            self.warnings_checked = false;
            if let Some(timer) = &mut self.unpublished {
                timer.snapshot_taken();
            }
        }
        self.invalid = update.invalid;
        self.refused = update.refused;
        self.source_synced |= update.synced;
    }

    /// The node's own addresses (node peers, probes).
    pub fn set_node_addresses(&mut self, addresses: &[IpAddr]) {
        if self.options.node_addresses != addresses {
            self.options.node_addresses = addresses.to_vec();
            self.compiled = None;
        }
    }

    pub fn node_addresses(&self) -> &[IpAddr] {
        &self.options.node_addresses
    }

    /// Something outside the source changed what is compiled (the CNI
    /// plugin reported or lost a pod).
    pub fn recompile(&mut self) {
        self.compiled = None;
    }

    /// The compiled policy, compiled now if an input changed; the pods the
    /// CNI plugin reported are overlaid on the source's.
    pub fn compiled(&mut self, cni: &mut CniRegistry) -> Arc<Compiled> {
        let compiled = self.compiled.get_or_insert_with(|| {
            if let Some(timer) = &mut self.unpublished {
                timer.compile_starts();
            }
            let snapshot = cni.overlay(self.snapshot.clone(), &self.options.node_name);
            self.compilations += 1;
            let compiled = Arc::new(self.compiler.compile(&snapshot, &self.options));
            if let Some(timer) = &mut self.unpublished {
                timer.compiled();
            }
            Compilation {
                compiled,
                from: snapshot,
            }
        });
        compiled.compiled.clone()
    }

    /// Writes `desired` into the inactive slot and activates it; a failure
    /// leaves the last good revision enforced and is reported.
    ///
    /// Returns the policy implementation delay, stage by stage, when this
    /// publication carries a change of the source: from when the source
    /// first saw it. A change that compiles to what is already published
    /// ends here without one; a failed publication keeps it waiting.
    pub fn publish(&mut self, desired: &SlotState) -> Option<ChangeStages> {
        let active = self.publisher.revision();
        let mut implemented = None;
        if let Some(timer) = &mut self.unpublished {
            timer.publish_starts();
        }
        let published = self.publisher.publish(desired);
        let unchanged = matches!(&published, Ok(done) if done.revision == active);
        if !unchanged {
            self.tables = desired.entries();
        }
        self.publish_problem = match published {
            Ok(published) => {
                implemented = self
                    .unpublished
                    .take()
                    .filter(|_| published.revision != active)
                    .map(|timer| timer.published(&published));
                if published.upserts + published.removals > 0 {
                    log_published(&published, implemented.as_ref());
                }
                None
            }
            Err(error) => {
                if let Some(timer) = &mut self.unpublished {
                    timer.failed();
                }
                let error = format!("{:#}", anyhow::Error::from(error));
                error!(
                    error,
                    "publishing the policy; the last good policy stays enforced"
                );
                Some(error)
            }
        };
        implemented
    }

    /// Checks the objects in force for policy warnings if they changed
    /// since the last check; whether the warnings changed. Kept off the
    /// path of a change (with tiered policies or Segments it walks every
    /// pod): call it once the publication is reported.
    pub fn check_warnings(&mut self) -> bool {
        if self.warnings_checked {
            return false;
        }
        self.warnings_checked = true;
        let before = std::mem::take(&mut self.policy_warnings);
        // What the compiler last saw, so that the check parses nothing new.
        let snapshot = self.compiled.as_ref().map_or(&self.snapshot, |c| &c.from);
        let warnings = self.compiler.warnings(snapshot);
        for warning in &warnings {
            warn!(%warning, "policy warning");
        }
        self.policy_warnings = warnings
            .iter()
            .filter(|warning| warning.enforced_otherwise)
            .map(ToString::to_string)
            .collect();
        self.policy_warnings != before
    }

    /// How full the published tables' slots are: the active one, or the
    /// one the last publication failed to write (then it may be over 1).
    pub fn tables(&self) -> &[MapEntries; 4] {
        &self.tables
    }

    /// What this daemon waits for before it enforces a complete policy of
    /// its own: until then, the pinned programs of a previous daemon keep
    /// enforcing the previous policy, which an unread source or a failed
    /// publication would otherwise replace with nothing (every pinned pod
    /// denied, its connections cut), and the daemon is not ready.
    pub fn waits_for(&self) -> Option<&'static str> {
        if !self.source_synced {
            Some(self.sync_awaited)
        } else if self.publish_problem.is_some() || self.publisher.revision() == 0 {
            Some("a successful publication")
        } else {
            None
        }
    }

    pub fn revision(&self) -> u32 {
        self.publisher.revision()
    }

    pub fn synced(&self) -> bool {
        self.source_synced
    }

    /// Problems of the source, warnings about what is enforced otherwise
    /// than written, and the last publication's failure: one line each.
    pub fn problems(&self) -> impl Iterator<Item = &String> {
        self.source_problems
            .iter()
            .chain(&self.policy_warnings)
            .chain(&self.publish_problem)
    }

    pub fn publish_problem(&self) -> Option<&str> {
        self.publish_problem.as_deref()
    }

    /// The objects in force, and those refused (as written, and why).
    pub fn objects(&self) -> (&Snapshot, &Snapshot, &[Refused]) {
        (&self.snapshot, &self.invalid, &self.refused)
    }

    #[cfg(test)]
    pub fn writer(&self) -> &W {
        self.publisher.writer()
    }

    #[cfg(test)]
    pub fn writer_mut(&mut self) -> &mut W {
        self.publisher.writer_mut()
    }
}

fn log_published(published: &Published, change: Option<&ChangeStages>) {
    let (revision, upserts, removals) = (published.revision, published.upserts, published.removals);
    match change {
        Some(stages) => info!(
            revision,
            upserts,
            removals,
            delay_ms = stages.total.as_secs_f64() * 1e3,
            %stages,
            "published"
        ),
        None => info!(revision, upserts, removals, "published"),
    }
}
