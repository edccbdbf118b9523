//! What the store keeps of each manifest file between reloads, and how a
//! reload reads a file again: not at all while its stamp holds, without
//! parsing while its text is the same.

use std::io;
use std::path::Path;

use super::index::Index;
use super::parse::{ParseError, ParsedDocument, parse_text, read_file};
use super::stamp::{self, Stamp};
use crate::sources::Problem;
use crate::sources::object::{Object, ObjectId};

#[derive(Debug)]
pub(super) struct FileState {
    /// Set when every document was valid: what spares the next reading.
    pub(super) clean: Option<CleanText>,
    /// Its documents in order; for a file that could not be read or parsed,
    /// the objects it owned before.
    pub(super) entries: Vec<Entry>,
    /// Why the file as a whole could not be read or parsed.
    pub(super) failure: Option<Problem>,
    /// What the store reports of it, in document order, as of the last
    /// reload that read it or touched an identity it names.
    pub(super) problems: Vec<Problem>,
    /// Its refused objects that own their identity, as written.
    pub(super) invalid: Vec<Object>,
}

#[derive(Debug)]
pub(super) struct CleanText {
    text: String,
    /// Its stamp when it was read, if it could be taken.
    read: Option<stamp::Read>,
}

#[derive(Debug)]
pub(super) enum Entry {
    Valid {
        id: ObjectId,
        object: Object,
    },
    /// What the file owned before it could not be read or parsed: from a
    /// broken file we cannot tell what the user meant.
    Kept {
        id: ObjectId,
        object: Object,
    },
    /// `id` is known when the document names its object, so its last good
    /// version can stay enforced.
    Rejected {
        id: Option<ObjectId>,
        problems: Vec<Problem>,
        invalid: Option<Object>,
    },
}

impl Entry {
    pub(super) fn id(&self) -> Option<&ObjectId> {
        match self {
            Self::Valid { id, .. } | Self::Kept { id, .. } => Some(id),
            Self::Rejected { id, .. } => id.as_ref(),
        }
    }
}

/// What a reload found of a listed file.
pub(super) enum Reading {
    /// Its stamp held: not read.
    Settled,
    /// Read again, the same text: only its stamp is new.
    SameText(Option<stamp::Read>),
    Changed(FileState),
    /// It could not be read: it keeps what it owned.
    Unreadable(FileState),
    /// Deleted since it was listed: its objects go, as they would a moment later.
    Gone,
}

impl FileState {
    /// What `known`, the state of `file` as of the last reload, holds on to
    /// when `file` cannot be read or parsed: the objects it owned.
    pub(super) fn kept(
        file: &Path,
        known: Option<&Self>,
        index: &Index,
        failure: Option<Problem>,
    ) -> Self {
        let mut entries: Vec<Entry> = known
            .into_iter()
            .flat_map(|state| state.owned(file, index))
            .map(|(id, object)| Entry::Kept { id, object })
            .collect();
        entries.sort_by(|a, b| a.id().cmp(&b.id()));
        let failure = failure.map(|problem| with_kept_note(problem, entries.len()));
        Self::unclean(entries, failure)
    }

    /// The objects of this file in force: those whose identity it owns.
    pub(super) fn owned(&self, file: &Path, index: &Index) -> Vec<(ObjectId, Object)> {
        self.entries
            .iter()
            .enumerate()
            .filter_map(|(position, entry)| {
                let id = entry.id()?;
                let object = index.object(id)?;
                let owns = index.owner(id)?.is(file, position);
                owns.then(|| (id.clone(), object.clone()))
            })
            .collect()
    }

    fn unclean(entries: Vec<Entry>, failure: Option<Problem>) -> Self {
        Self {
            clean: None,
            entries,
            failure,
            problems: Vec::new(),
            invalid: Vec::new(),
        }
    }

    fn parsed(
        file: &Path,
        documents: Vec<ParsedDocument>,
        text: String,
        read: Option<stamp::Read>,
    ) -> Self {
        let entries: Vec<Entry> = documents
            .into_iter()
            .map(|document| entry(file, document))
            .collect();
        let all_valid = entries
            .iter()
            .all(|entry| matches!(entry, Entry::Valid { .. }));
        let clean = all_valid.then_some(CleanText { text, read });
        Self {
            clean,
            ..Self::unclean(entries, None)
        }
    }

    pub(super) fn restamp(&mut self, read: Option<stamp::Read>) {
        if let Some(clean) = &mut self.clean {
            clean.read = read;
        }
    }
}

/// Reads `file` again unless `known`, its state as of the last reload, is
/// of a clean file whose stamp still holds.
pub(super) fn read_again(file: &Path, known: Option<&FileState>, index: &Index) -> Reading {
    let clean = known.and_then(|state| state.clean.as_ref());
    let settled = clean
        .and_then(|clean| clean.read)
        .zip(Stamp::of(file).ok())
        .is_some_and(|(read, now)| read.still_holds(now));
    if settled {
        return Reading::Settled;
    }
    let read = stamp::Read::starting(file);
    let failed = |error: ParseError| {
        FileState::kept(
            file,
            known,
            index,
            Some(Problem::in_file(file, None, None, &error)),
        )
    };
    let text = match read_file(file) {
        Ok(text) => text,
        Err(ParseError::Read { source }) if source.kind() == io::ErrorKind::NotFound => {
            return Reading::Gone;
        }
        Err(error) => return Reading::Unreadable(failed(error)),
    };
    if clean.is_some_and(|clean| clean.text == text) {
        return Reading::SameText(read);
    }
    match parse_text(file, &text) {
        Ok(documents) => Reading::Changed(FileState::parsed(file, documents, text, read)),
        Err(error) => Reading::Changed(failed(error)),
    }
}

fn entry(file: &Path, document: ParsedDocument) -> Entry {
    match document {
        ParsedDocument::Valid { id, object } => Entry::Valid { id, object },
        ParsedDocument::Rejected {
            id,
            label,
            errors,
            invalid,
        } => Entry::Rejected {
            id,
            problems: errors
                .iter()
                .map(|error| Problem::in_file(file, Some(label.clone()), error.field(), error))
                .collect(),
            invalid,
        },
    }
}

pub(super) fn with_note(mut problem: Problem, note: &str) -> Problem {
    problem.message = format!("{}; {note}", problem.message);
    problem
}

pub(super) fn with_kept_note(problem: Problem, held: usize) -> Problem {
    match held {
        0 => problem,
        1 => with_note(problem, "the object last read from it stays enforced"),
        n => with_note(
            problem,
            &format!("the {n} objects last read from it stay enforced"),
        ),
    }
}
