//! Id allocation keyed by canonical content, stable across compilations.

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;

/// Hands out ids for keys. A key seen in the previous compilation keeps its
/// id; a key not used in a compilation is forgotten at its end, and its id is
/// not handed out again until the id space wraps around.
#[derive(Clone, Debug)]
pub(super) struct IdAllocator<K> {
    first: u32,
    next: u32,
    /// Hashed rather than ordered: a key can be long (an identity's peers)
    /// and many keys share a long beginning, which an ordered map compares
    /// again at every level of its tree. The standard hasher: with `FxHash`,
    /// comparing keys of equal hash took a fifth of a compile of 50,000
    /// ipBlocks, about 40 around each address (docs/benchmarks.md).
    ids: HashMap<K, u32>,
    in_use: BTreeSet<u32>,
    used_now: BTreeSet<u32>,
}

impl<K: Hash + Eq + Clone> IdAllocator<K> {
    /// An allocator whose ids start at `first`.
    pub(super) fn new(first: u32) -> Self {
        IdAllocator {
            first,
            next: first,
            ids: HashMap::new(),
            in_use: BTreeSet::new(),
            used_now: BTreeSet::new(),
        }
    }

    /// The id of `key`, allocating one for a new key.
    pub(super) fn id(&mut self, key: &K) -> u32 {
        let id = match self.ids.get(key) {
            Some(id) => *id,
            None => {
                let id = self.fresh();
                self.ids.insert(key.clone(), id);
                self.in_use.insert(id);
                id
            }
        };
        self.used_now.insert(id);
        id
    }

    /// Marks `id`, handed out earlier for a key, as used in this compilation
    /// without looking its key up again.
    pub(super) fn keep(&mut self, id: u32) {
        self.used_now.insert(id);
    }

    /// Forgets the keys not asked for since the previous call.
    pub(super) fn finish_compilation(&mut self) {
        let used = std::mem::take(&mut self.used_now);
        self.ids.retain(|_, id| used.contains(id));
        self.in_use = used;
    }

    /// The next id not held by any key. Ids grow; after `u32::MAX` they wrap
    /// to `first` and skip the ones still held, so within one compilation no
    /// id ever stands for two keys.
    fn fresh(&mut self) -> u32 {
        loop {
            let candidate = self.next;
            self.next = if candidate == u32::MAX {
                self.first
            } else {
                candidate + 1
            };
            if !self.in_use.contains(&candidate) {
                return candidate;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_not_reused() {
        let mut alloc = IdAllocator::new(16);
        assert_eq!(alloc.id(&"a"), 16);
        assert_eq!(alloc.id(&"b"), 17);
        assert_eq!(alloc.id(&"a"), 16);
        alloc.finish_compilation();
        assert_eq!(alloc.id(&"b"), 17);
        alloc.finish_compilation();
        // "a" was forgotten; its id is not handed out again.
        assert_eq!(alloc.id(&"a"), 18);
        assert_eq!(alloc.id(&"c"), 19);
    }

    #[test]
    fn wraps_around_skipping_held_ids() {
        let mut alloc = IdAllocator::new(16);
        assert_eq!(alloc.id(&0), 16);
        alloc.next = u32::MAX;
        assert_eq!(alloc.id(&1), u32::MAX);
        assert_eq!(alloc.id(&2), 17);
    }
}
