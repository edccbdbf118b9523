//! The difference between two compilations of one map.

use std::collections::BTreeMap;

/// What turns one map into another: entries to insert or overwrite, and keys
/// to delete. Only keys whose value changes appear.
///
/// The daemon writes a whole policy into the inactive slot and flips, so the
/// order of operations inside a diff carries no meaning.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapDiff<K, V> {
    /// Keys to insert, or to overwrite, with their new values.
    pub upserts: Vec<(K, V)>,
    /// Keys to delete.
    pub removals: Vec<K>,
}

impl<K, V> Default for MapDiff<K, V> {
    fn default() -> Self {
        MapDiff {
            upserts: Vec::new(),
            removals: Vec::new(),
        }
    }
}

impl<K: Ord + Clone, V: Clone> MapDiff<K, V> {
    /// Whether applying the diff changes nothing.
    pub fn is_empty(&self) -> bool {
        self.upserts.is_empty() && self.removals.is_empty()
    }

    /// Applies the diff to `map` in place.
    pub fn apply(&self, map: &mut BTreeMap<K, V>) {
        for key in &self.removals {
            map.remove(key);
        }
        for (key, value) in &self.upserts {
            map.insert(key.clone(), value.clone());
        }
    }
}

/// The diff that turns `old` into `new`: an upsert for every key that is new
/// or whose value changed, a removal for every key that is gone.
pub fn diff_maps<K: Ord + Clone, V: Eq + Clone>(
    old: &BTreeMap<K, V>,
    new: &BTreeMap<K, V>,
) -> MapDiff<K, V> {
    let upserts = new
        .iter()
        .filter(|(key, value)| old.get(*key) != Some(*value))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    let removals = old
        .keys()
        .filter(|key| !new.contains_key(*key))
        .cloned()
        .collect();
    MapDiff { upserts, removals }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::collection::btree_map;
    use proptest::prelude::*;

    #[test]
    fn touches_only_changed_entries() {
        let old = BTreeMap::from([(1, 'a'), (2, 'b'), (3, 'c')]);
        let new = BTreeMap::from([(1, 'a'), (2, 'x'), (4, 'd')]);
        let diff = diff_maps(&old, &new);
        assert_eq!(diff.upserts, vec![(2, 'x'), (4, 'd')]);
        assert_eq!(diff.removals, vec![3]);
        assert!(diff_maps(&new, &new).is_empty());
    }

    proptest! {
        #[test]
        fn applying_the_diff_yields_the_new_map(
            old in btree_map(0u8..32, 0u8..4, 0..16),
            new in btree_map(0u8..32, 0u8..4, 0..16),
        ) {
            let diff = diff_maps(&old, &new);
            let mut applied = old.clone();
            diff.apply(&mut applied);
            prop_assert_eq!(&applied, &new);
            let touched = diff.upserts.len() + diff.removals.len();
            let changed = old.keys().chain(new.keys())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .filter(|k| old.get(*k) != new.get(*k))
                .count();
            prop_assert_eq!(touched, changed);
        }
    }
}
