//! What the watches of one kind have delivered, as a pure state machine fed
//! with kube's watcher events: testable with scripted histories, no client.
//!
//! A relist (after a restart of the watch or an expired resource version)
//! is built aside and swapped in whole when it completes, so enforcement
//! never sees a half-listed kind: objects deleted during a gap disappear at
//! that moment, and the rest keep their shared identity.

use std::collections::BTreeMap;

use crate::sources::Problem;
use crate::sources::object::{Object, ObjectId};

/// One object as the source judged it.
#[derive(Clone, Debug)]
pub enum Judged {
    Valid(Object),
    /// Refused: the problems say why; `invalid` is the object as written
    /// when it decoded (its status conditions say why).
    Refused {
        problems: Vec<Problem>,
        invalid: Option<Object>,
        /// The object's `metadata.uid`, when it could be read.
        uid: Option<String>,
    },
}

/// The objects of one kind and what was refused of it.
#[derive(Debug, Default)]
pub struct KindState {
    current: Listing,
    /// A relist in progress, swapped in at its end.
    relist: Option<Listing>,
    /// Whether a list of this kind has ever completed.
    pub synced: bool,
    /// The last watch error, until an event arrives again.
    pub error: Option<String>,
}

#[derive(Debug, Default)]
pub struct Listing {
    /// The objects in force: each at its last good version.
    pub objects: BTreeMap<ObjectId, Object>,
    pub refused: BTreeMap<ObjectId, Refusal>,
}

#[derive(Clone, Debug)]
pub struct Refusal {
    pub problems: Vec<Problem>,
    pub invalid: Option<Object>,
    pub uid: Option<String>,
}

impl KindState {
    /// What is in force now.
    pub fn current(&self) -> &Listing {
        &self.current
    }

    /// A (re)list starts: what it lists replaces everything at its end.
    pub fn init(&mut self) {
        self.relist = Some(Listing::default());
    }

    /// An object of the list in progress.
    pub fn init_apply(&mut self, id: ObjectId, judged: Judged) {
        let previous = self.current.objects.get(&id);
        let listing = self.relist.get_or_insert_with(Listing::default);
        listing.put(previous, id, judged);
    }

    /// The list is complete: objects it did not name are gone. Returns
    /// whether the objects in force changed.
    pub fn init_done(&mut self) -> bool {
        let next = self.relist.take().unwrap_or_default();
        let changed = !same_objects(&self.current.objects, &next.objects);
        self.current = next;
        self.synced = true;
        self.error = None;
        changed
    }

    /// A live change. Returns whether the objects in force changed.
    pub fn apply(&mut self, id: ObjectId, judged: Judged) -> bool {
        self.error = None;
        let before = self.current.objects.get(&id).cloned();
        self.current.put(before.as_ref(), id.clone(), judged);
        self.current.objects.get(&id) != before.as_ref()
    }

    /// A live delete. Returns whether the objects in force changed.
    pub fn delete(&mut self, id: &ObjectId) -> bool {
        self.error = None;
        self.current.refused.remove(id);
        self.current.objects.remove(id).is_some()
    }
}

impl Listing {
    /// Records `judged` for `id`, whose version in force was `previous`: a
    /// valid object that equals it keeps it (its identity, for the compiler's
    /// caches); a refused one keeps the last good version in force.
    fn put(&mut self, previous: Option<&Object>, id: ObjectId, judged: Judged) {
        match judged {
            Judged::Valid(object) => {
                let object = match previous {
                    Some(kept) if *kept == object => kept.clone(),
                    _ => object,
                };
                self.refused.remove(&id);
                self.objects.insert(id, object);
            }
            Judged::Refused {
                problems,
                invalid,
                uid,
            } => {
                match previous {
                    Some(last_good) => {
                        self.objects.insert(id.clone(), last_good.clone());
                    }
                    None => {
                        self.objects.remove(&id);
                    }
                }
                self.refused.insert(
                    id,
                    Refusal {
                        problems,
                        invalid,
                        uid,
                    },
                );
            }
        }
    }
}

fn same_objects(a: &BTreeMap<ObjectId, Object>, b: &BTreeMap<ObjectId, Object>) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(a, b)| a == b)
}
