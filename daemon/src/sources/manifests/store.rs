use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use netseg_policy::Snapshot;
use tracing::{debug, instrument};

use super::files::list_manifest_files;
use super::parse::{ParseError, ParsedDocument, parse_text, read_file};
use super::stamp::{self, Stamp};
use crate::sources::Problem;
use crate::sources::object::{Object, ObjectId};

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
#[derive(Debug, Default)]
pub struct ManifestStore {
    objects: BTreeMap<ObjectId, StoredObject>,
    /// Files whose every document was valid, by their text: an unchanged
    /// file is not parsed again (at cluster scale parsing dominates a
    /// reload), nor read again while its stamp says it did not change.
    clean_files: BTreeMap<PathBuf, CleanFile>,
}

#[derive(Clone, Debug)]
struct CleanFile {
    text: String,
    /// Its stamp when it was read, if it could be taken.
    read: Option<stamp::Read>,
    objects: Vec<(ObjectId, Object)>,
}

#[derive(Clone, Debug)]
struct StoredObject {
    object: Object,
    /// A file that stops parsing keeps what it last yielded: from a broken
    /// file we cannot tell what the user meant.
    file: PathBuf,
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

/// What a reload builds before it replaces the store's state.
#[derive(Default)]
struct NextState {
    objects: BTreeMap<ObjectId, StoredObject>,
    clean_files: BTreeMap<PathBuf, CleanFile>,
    /// The first file (by sorted path) to define each identity owns it.
    claimed: BTreeMap<ObjectId, PathBuf>,
    problems: Vec<Problem>,
    invalid: Snapshot,
    /// Something could not be listed or read.
    unreadable: bool,
}

impl NextState {
    fn claim(&mut self, id: &ObjectId, file: &Path) -> Result<(), PathBuf> {
        match self.claimed.get(id) {
            Some(first) => Err(first.clone()),
            None => {
                self.claimed.insert(id.clone(), file.to_path_buf());
                Ok(())
            }
        }
    }

    fn insert(&mut self, id: ObjectId, object: Object, file: &Path) {
        let file = file.to_path_buf();
        self.objects.insert(id, StoredObject { object, file });
    }

    fn duplicate(&mut self, file: &Path, id: &ObjectId, first: PathBuf) {
        let error = if first == file {
            StoreError::DuplicateInFile
        } else {
            StoreError::Duplicate { first }
        };
        self.problems
            .push(Problem::in_file(file, Some(id.to_string()), None, &error));
    }
}

enum Source {
    Parse,
    /// Under a directory entry that could not be read this time.
    KeepLast,
}

impl ManifestStore {
    /// Rereads `dir` and replaces the store's objects with what it holds now,
    /// keeping the last good version of anything that is malformed.
    #[instrument(skip(self), fields(dir = %dir.display()))]
    pub fn reload(&mut self, dir: &Path) -> Reload {
        let mut next = NextState::default();
        for (file, source) in self.sources(dir, &mut next) {
            match source {
                Source::KeepLast => self.keep_file(&file, &mut next),
                Source::Parse => match self.documents(&file, &mut next) {
                    Ok(documents) => self.apply_documents(&file, documents, &mut next),
                    // Deleted since it was listed: its objects go, as they would a moment later.
                    Err(ParseError::Read { source })
                        if source.kind() == io::ErrorKind::NotFound => {}
                    Err(error) => {
                        next.unreadable |= matches!(error, ParseError::Read { .. });
                        let held = self.objects_from(&file).count();
                        let problem = Problem::in_file(&file, None, None, &error);
                        next.problems.push(with_kept_note(problem, held));
                        self.keep_file(&file, &mut next);
                    }
                },
            }
        }
        let changed = !same_objects(&self.objects, &next.objects);
        debug!(
            manifests.objects = next.objects.len(),
            manifests.problems = next.problems.len(),
            manifests.changed = changed,
            "reloaded manifests"
        );
        self.objects = next.objects;
        self.clean_files = next.clean_files;
        Reload {
            problems: next.problems,
            changed,
            complete: !next.unreadable,
            invalid: next.invalid,
        }
    }

    /// The objects to enforce, in a stable order.
    pub fn snapshot(&self) -> Snapshot {
        let mut snapshot = Snapshot::default();
        for stored in self.objects.values() {
            stored.object.add_to(&mut snapshot);
        }
        snapshot
    }

    /// The files to read, sorted, plus the files last read from under any
    /// entry that could not be listed this time, so those keep their objects.
    fn sources(&self, dir: &Path, next: &mut NextState) -> BTreeMap<PathBuf, Source> {
        let listing = list_manifest_files(dir);
        next.unreadable |= !listing.unreadable.is_empty();
        let mut sources: BTreeMap<_, _> = listing
            .files
            .into_iter()
            .map(|file| (file, Source::Parse))
            .collect();
        for (path, source) in listing.unreadable {
            let mut held = 0;
            for stored in self
                .objects
                .values()
                .filter(|stored| stored.file.starts_with(&path))
            {
                held += 1;
                sources
                    .entry(stored.file.clone())
                    .or_insert(Source::KeepLast);
            }
            let problem = Problem::in_file(&path, None, None, &StoreError::Unreadable { source });
            next.problems.push(with_kept_note(problem, held));
        }
        sources
    }

    /// The documents of `file`, reusing those of an unchanged clean file:
    /// not read again while its stamp holds, not parsed again while its
    /// text is the same.
    fn documents(
        &self,
        file: &Path,
        next: &mut NextState,
    ) -> Result<Vec<ParsedDocument>, ParseError> {
        let known = self.clean_files.get(file);
        let unchanged = |clean: &CleanFile| {
            clean
                .read
                .zip(Stamp::of(file).ok())
                .is_some_and(|(read, now)| read.still_holds(now))
        };
        let clean = match known {
            Some(clean) if unchanged(clean) => clean.clone(),
            _ => {
                let read = stamp::Read::starting(file);
                let text = read_file(file)?;
                match known {
                    Some(clean) if clean.text == text => CleanFile {
                        read,
                        ..clean.clone()
                    },
                    _ => {
                        let documents = parse_text(file, &text)?;
                        let Some(objects) = clean_objects(&documents) else {
                            return Ok(documents);
                        };
                        CleanFile {
                            text,
                            read,
                            objects,
                        }
                    }
                }
            }
        };
        let documents = clean
            .objects
            .iter()
            .map(|(id, object)| ParsedDocument::Valid {
                id: id.clone(),
                object: object.clone(),
            })
            .collect();
        next.clean_files.insert(file.to_path_buf(), clean);
        Ok(documents)
    }

    fn objects_from<'a>(
        &'a self,
        file: &'a Path,
    ) -> impl Iterator<Item = (&'a ObjectId, &'a Object)> + 'a {
        self.objects
            .iter()
            .filter(move |(_, stored)| stored.file == file)
            .map(|(id, stored)| (id, &stored.object))
    }

    /// The stored version of `id` if it equals `object`: an edited file's
    /// unchanged objects keep their identity, so the compiler reuses what it
    /// derived from them.
    fn previous_if_equal(&self, id: &ObjectId, object: Object) -> Object {
        match self.objects.get(id) {
            Some(stored) if stored.object == object => stored.object.clone(),
            _ => object,
        }
    }

    fn keep_file(&self, file: &Path, next: &mut NextState) {
        for (id, object) in self.objects_from(file) {
            if next.claim(id, file).is_ok() {
                next.insert(id.clone(), object.clone(), file);
            }
        }
    }

    fn apply_documents(&self, file: &Path, documents: Vec<ParsedDocument>, next: &mut NextState) {
        for document in documents {
            match document {
                ParsedDocument::Valid { id, object } => match next.claim(&id, file) {
                    Ok(()) => {
                        let object = self.previous_if_equal(&id, object);
                        next.insert(id, object, file);
                    }
                    Err(first) => next.duplicate(file, &id, first),
                },
                ParsedDocument::Rejected {
                    id: Some(id),
                    label,
                    errors,
                    invalid,
                } => {
                    let claim = next.claim(&id, file);
                    let last_good = claim.as_ref().ok().and_then(|()| self.objects.get(&id));
                    for error in &errors {
                        let problem =
                            Problem::in_file(file, Some(label.clone()), error.field(), error);
                        next.problems.push(match last_good {
                            Some(_) => with_note(problem, "its last good version stays enforced"),
                            None => problem,
                        });
                    }
                    if let (Ok(()), Some(object)) = (&claim, &invalid) {
                        object.add_to(&mut next.invalid);
                    }
                    match (claim, last_good) {
                        (Err(first), _) => next.duplicate(file, &id, first),
                        (Ok(()), Some(stored)) => next.insert(id, stored.object.clone(), file),
                        (Ok(()), None) => {}
                    }
                }
                ParsedDocument::Rejected {
                    id: None,
                    label,
                    errors,
                    ..
                } => {
                    for error in &errors {
                        let problem =
                            Problem::in_file(file, Some(label.clone()), error.field(), error);
                        next.problems.push(problem);
                    }
                }
            }
        }
    }
}

/// The objects of `documents` if every one of them is valid.
fn clean_objects(documents: &[ParsedDocument]) -> Option<Vec<(ObjectId, Object)>> {
    documents
        .iter()
        .map(|document| match document {
            ParsedDocument::Valid { id, object } => Some((id.clone(), object.clone())),
            ParsedDocument::Rejected { .. } => None,
        })
        .collect()
}

fn with_note(mut problem: Problem, note: &str) -> Problem {
    problem.message = format!("{}; {note}", problem.message);
    problem
}

fn with_kept_note(problem: Problem, held: usize) -> Problem {
    match held {
        0 => problem,
        1 => with_note(problem, "the object last read from it stays enforced"),
        n => with_note(
            problem,
            &format!("the {n} objects last read from it stay enforced"),
        ),
    }
}

fn same_objects(
    a: &BTreeMap<ObjectId, StoredObject>,
    b: &BTreeMap<ObjectId, StoredObject>,
) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|((id_a, a), (id_b, b))| id_a == id_b && a.object == b.object)
}
