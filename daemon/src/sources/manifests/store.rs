use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};

use netseg_policy::Snapshot;
use tracing::{debug, instrument};

use super::file_state::{Entry, FileState, Reading, read_again, with_kept_note, with_note};
use super::files::list_manifest_files;
use super::index::Index;
use crate::sources::Problem;
use crate::sources::object::ObjectId;

#[derive(Debug, thiserror::Error)]
enum StoreError {
    #[error("also defined in {}, which wins; ignored", first.display())]
    Duplicate { first: PathBuf },
    #[error("defined twice in this file; the first definition wins")]
    DuplicateInFile,
    #[error("cannot read")]
    Unreadable {
        #[source]
        source: io::Error,
    },
}

/// The objects of a manifests directory, each at its last version that
/// parsed and validated.
///
/// A reload redoes only what the files read again touch: a file whose
/// stamp holds keeps its objects and its claims on their identities, and
/// duplicates and problems are worked out again only for the identities
/// the changed files name (at cluster scale, rebuilding all of it on every
/// change cost more than the rest of the delay).
#[derive(Debug, Default)]
pub struct ManifestStore {
    files: BTreeMap<PathBuf, FileState>,
    index: Index,
}

/// The outcome of [`ManifestStore::reload`].
#[derive(Debug, Default)]
pub struct Reload {
    /// In file order; objects with problems keep their last good version.
    pub problems: Vec<Problem>,
    /// Whether [`ManifestStore::snapshot`] differs from before the reload.
    pub changed: bool,
    /// Whether every entry of the directory could be listed and every file
    /// read: a reload that could not is no picture of the directory (objects
    /// it could not read keep their last version, if they had one).
    pub complete: bool,
    /// The objects this reload refused because they failed validation, as
    /// written (not enforced; their status conditions say why).
    pub invalid: Snapshot,
}

/// The files a reload replaces, and what it found while listing.
#[derive(Default)]
struct Changes {
    /// `None` for a file gone.
    files: BTreeMap<PathBuf, Option<FileState>>,
    /// Directory entries that could not be listed, each with what it kept.
    unlisted: Vec<Problem>,
    unreadable: bool,
}

impl ManifestStore {
    /// Rereads `dir` and replaces the store's objects with what it holds now,
    /// keeping the last good version of anything that is malformed.
    #[instrument(skip(self), fields(dir = %dir.display()))]
    pub fn reload(&mut self, dir: &Path) -> Reload {
        let changes = self.changes(dir);
        let mut touched = BTreeSet::new();
        let mut judged: BTreeSet<PathBuf> = BTreeSet::new();
        for (file, state) in changes.files {
            if let Some(before) = self.files.remove(&file) {
                self.index.withdraw(&file, &before.entries, &mut touched);
            }
            if let Some(state) = state {
                self.index.claim(&file, &state.entries, &mut touched);
                self.files.insert(file.clone(), state);
                judged.insert(file);
            }
        }
        let mut changed = false;
        for id in &touched {
            changed |= self.settle(id);
            judged.extend(self.index.claims(id).map(|claim| claim.file.clone()));
        }
        for file in &judged {
            if let Some(state) = self.files.get_mut(file) {
                judge(file, state, &self.index);
            }
        }
        let reload = self.outcome(changes.unlisted, changed, !changes.unreadable);
        debug!(
            manifests.files = self.files.len(),
            manifests.files_judged = judged.len(),
            manifests.problems = reload.problems.len(),
            manifests.changed = changed,
            "reloaded manifests"
        );
        reload
    }

    /// The objects to enforce, in a stable order.
    pub fn snapshot(&self) -> Snapshot {
        let mut snapshot = Snapshot::default();
        for object in self.index.objects() {
            object.add_to(&mut snapshot);
        }
        snapshot
    }

    /// The files of `dir` that changed since the last reload, each with its
    /// new state (or gone); the files last read from under an entry that
    /// could not be listed this time keep the objects they owned.
    fn changes(&mut self, dir: &Path) -> Changes {
        let listing = list_manifest_files(dir);
        let mut changes = Changes {
            unreadable: !listing.unreadable.is_empty(),
            ..Changes::default()
        };
        let listed: BTreeSet<PathBuf> = listing.files.into_iter().collect();
        for (path, source) in listing.unreadable {
            let mut held = 0;
            for (file, state) in self.files.range(path.clone()..) {
                if !file.starts_with(&path) {
                    break;
                }
                let kept = FileState::kept(file, Some(state), &self.index, None);
                held += kept.entries.len();
                if !kept.entries.is_empty() && !listed.contains(file) {
                    changes.files.insert(file.clone(), Some(kept));
                }
            }
            let problem = Problem::in_file(&path, None, None, &StoreError::Unreadable { source });
            changes.unlisted.push(with_kept_note(problem, held));
        }
        for file in self.files.keys() {
            if !listed.contains(file) && !changes.files.contains_key(file) {
                changes.files.insert(file.clone(), None);
            }
        }
        for file in listed {
            let known = self.files.get_mut(&file);
            match read_again(&file, known.as_deref(), &self.index) {
                Reading::Settled => {}
                Reading::SameText(read) => known.into_iter().for_each(|state| state.restamp(read)),
                Reading::Changed(state) => {
                    changes.files.insert(file, Some(state));
                }
                Reading::Unreadable(state) => {
                    changes.unreadable = true;
                    changes.files.insert(file, Some(state));
                }
                Reading::Gone => {
                    changes.files.insert(file, None);
                }
            }
        }
        changes
    }

    /// Puts in force what the owner of `id` says of it now; whether that
    /// changed the objects in force.
    fn settle(&mut self, id: &ObjectId) -> bool {
        let before = self.index.object(id);
        let now = self.index.owner(id).and_then(|owner| {
            match self.files.get(&owner.file)?.entries.get(owner.position)? {
                // An edited file's unchanged objects keep their identity,
                // so the compiler reuses what it derived from them.
                Entry::Valid { object, .. } => match before {
                    Some(before) if before == object => Some(before.clone()),
                    _ => Some(object.clone()),
                },
                Entry::Kept { object, .. } => Some(object.clone()),
                // Its last good version, from whichever file, stays.
                Entry::Rejected { .. } => before.cloned(),
            }
        });
        self.index.enforce(id, now)
    }

    fn outcome(&self, unlisted: Vec<Problem>, changed: bool, complete: bool) -> Reload {
        let mut problems = unlisted;
        let mut invalid = Snapshot::default();
        for state in self.files.values() {
            problems.extend(state.failure.iter().chain(&state.problems).cloned());
            state
                .invalid
                .iter()
                .for_each(|object| object.add_to(&mut invalid));
        }
        Reload {
            problems,
            changed,
            complete,
            invalid,
        }
    }
}

/// What `file` says of itself now that every claim is filed: duplicates
/// named after the file that wins, and its refused objects.
fn judge(file: &Path, state: &mut FileState, index: &Index) {
    state.problems.clear();
    state.invalid.clear();
    for (position, entry) in state.entries.iter().enumerate() {
        let claim = entry.id().and_then(|id| Some((id, index.owner(id)?)));
        let owns = claim.is_some_and(|(_, owner)| owner.is(file, position));
        if let Entry::Rejected {
            id,
            problems,
            invalid,
        } = entry
        {
            let last_good = owns && id.as_ref().is_some_and(|id| index.object(id).is_some());
            state
                .problems
                .extend(problems.iter().map(|problem| match last_good {
                    true => with_note(problem.clone(), "its last good version stays enforced"),
                    false => problem.clone(),
                }));
            if let (true, Some(object)) = (owns, invalid) {
                state.invalid.push(object.clone());
            }
        }
        // What a broken file kept gives way silently.
        let reports_duplicate = !owns && !matches!(entry, Entry::Kept { .. });
        if let (Some((id, owner)), true) = (claim, reports_duplicate) {
            state.problems.push(duplicate(file, id, &owner.file));
        }
    }
}

fn duplicate(file: &Path, id: &ObjectId, first: &Path) -> Problem {
    let error = match first == file {
        true => StoreError::DuplicateInFile,
        false => StoreError::Duplicate {
            first: first.to_path_buf(),
        },
    };
    Problem::in_file(file, Some(id.to_string()), None, &error)
}
