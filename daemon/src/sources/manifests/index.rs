//! Which document owns each object identity, and the objects in force:
//! kept from one reload to the next, and changed only for the identities
//! that the files read again name.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::file_state::Entry;
use crate::sources::object::{Object, ObjectId};

/// A document that names an identity. The first by file path, then by
/// place in its file, owns it, so duplicates resolve the same way on every
/// reload whatever was read again.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Claim {
    pub(super) file: PathBuf,
    pub(super) position: usize,
}

impl Claim {
    pub(super) fn is(&self, file: &Path, position: usize) -> bool {
        self.position == position && self.file == file
    }
}

#[derive(Debug, Default)]
pub(super) struct Index {
    /// Sorted; nearly always one claim, so a `Vec` (a set would cost a
    /// tree node for every identity of the cluster).
    claims: BTreeMap<ObjectId, Vec<Claim>>,
    objects: BTreeMap<ObjectId, Object>,
}

impl Index {
    /// Files the claims of `entries` of `file`, adding the identities they name to `touched`.
    pub(super) fn claim(
        &mut self,
        file: &Path,
        entries: &[Entry],
        touched: &mut BTreeSet<ObjectId>,
    ) {
        for (position, id) in named(entries) {
            let claim = Claim {
                file: file.to_path_buf(),
                position,
            };
            let claims = self.claims.entry(id.clone()).or_default();
            if let Err(at) = claims.binary_search(&claim) {
                claims.insert(at, claim);
            }
            touched.insert(id.clone());
        }
    }

    /// Withdraws the claims of `entries` of `file`, adding the identities they name to `touched`.
    pub(super) fn withdraw(
        &mut self,
        file: &Path,
        entries: &[Entry],
        touched: &mut BTreeSet<ObjectId>,
    ) {
        for (position, id) in named(entries) {
            if let Some(claims) = self.claims.get_mut(id) {
                claims.retain(|claim| !claim.is(file, position));
                if claims.is_empty() {
                    self.claims.remove(id);
                }
            }
            touched.insert(id.clone());
        }
    }

    pub(super) fn owner(&self, id: &ObjectId) -> Option<&Claim> {
        self.claims.get(id)?.first()
    }

    /// Every document that names `id`, the owner first.
    pub(super) fn claims(&self, id: &ObjectId) -> impl Iterator<Item = &Claim> {
        self.claims.get(id).into_iter().flatten()
    }

    pub(super) fn object(&self, id: &ObjectId) -> Option<&Object> {
        self.objects.get(id)
    }

    /// Puts `object` in force for `id` (or none); whether that changed anything.
    pub(super) fn enforce(&mut self, id: &ObjectId, object: Option<Object>) -> bool {
        match object {
            Some(object) => self
                .objects
                .insert(id.clone(), object.clone())
                .is_none_or(|before| before != object),
            None => self.objects.remove(id).is_some(),
        }
    }

    /// The objects in force, by identity.
    pub(super) fn objects(&self) -> impl Iterator<Item = &Object> {
        self.objects.values()
    }
}

fn named(entries: &[Entry]) -> impl Iterator<Item = (usize, &ObjectId)> {
    entries
        .iter()
        .enumerate()
        .filter_map(|(position, entry)| Some((position, entry.id()?)))
}
