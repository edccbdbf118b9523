//! Parsed models by object identity, kept from one compilation to the next.

use std::sync::Arc;

use rustc_hash::FxHashMap;

/// What the compiler parsed from each object of the previous snapshots,
/// keyed by the address of the object's `Arc`. Each entry holds that `Arc`,
/// so while it is cached no other object can live at the same address.
pub(super) struct ModelCache<T, M> {
    entries: FxHashMap<usize, Cached<T, M>>,
}

struct Cached<T, M> {
    _object: Arc<T>,
    /// `None` for an invalid object.
    model: Option<Arc<M>>,
    used: bool,
}

impl<T, M> Default for ModelCache<T, M> {
    fn default() -> Self {
        ModelCache {
            entries: FxHashMap::default(),
        }
    }
}

impl<T, M> ModelCache<T, M> {
    /// The model of `object`, parsing it only if this `Arc` is new.
    pub(super) fn model(
        &mut self,
        object: &Arc<T>,
        parse: impl FnOnce(&T) -> Option<M>,
    ) -> Option<Arc<M>> {
        let entry = self
            .entries
            .entry(Arc::as_ptr(object) as usize)
            .or_insert_with(|| Cached {
                _object: Arc::clone(object),
                model: parse(object).map(Arc::new),
                used: false,
            });
        entry.used = true;
        entry.model.clone()
    }

    /// Forgets the objects not asked for since the previous call.
    pub(super) fn finish_compilation(&mut self) {
        self.entries
            .retain(|_, entry| std::mem::take(&mut entry.used));
    }
}
