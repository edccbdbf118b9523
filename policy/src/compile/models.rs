//! Parsed models by object identity, kept from one compilation to the next.

use std::sync::Arc;

use rustc_hash::FxHashMap;

/// What the compiler parsed from each object of the previous snapshot. The
/// objects are held, so while they are remembered no other object can live
/// at their addresses: an object whose `Arc` is remembered is unchanged.
pub(super) struct ModelCache<T, M> {
    /// The previous snapshot's objects in its order, each with its model
    /// (`None` for an invalid object).
    previous: Vec<(Arc<T>, Option<Arc<M>>)>,
}

impl<T, M> Default for ModelCache<T, M> {
    fn default() -> Self {
        ModelCache {
            previous: Vec::new(),
        }
    }
}

impl<T, M> ModelCache<T, M> {
    /// The model of each of `objects`, parsing only the objects that the
    /// previous call did not see. Objects usually keep their positions, so
    /// each is first compared with the one at its position; the others are
    /// looked up by address.
    pub(super) fn models(
        &mut self,
        objects: &[Arc<T>],
        parse: impl Fn(&T) -> Option<M>,
    ) -> Vec<Option<Arc<M>>> {
        let address = |object: &Arc<T>| Arc::as_ptr(object) as usize;
        let mut by_address: Option<FxHashMap<usize, &Option<Arc<M>>>> = None;
        let models: Vec<Option<Arc<M>>> = objects
            .iter()
            .enumerate()
            .map(|(i, object)| match self.previous.get(i) {
                Some((seen, model)) if Arc::ptr_eq(seen, object) => model.clone(),
                _ => {
                    let previous = by_address.get_or_insert_with(|| {
                        self.previous.iter().map(|(o, m)| (address(o), m)).collect()
                    });
                    match previous.get(&address(object)) {
                        Some(model) => (*model).clone(),
                        None => parse(object).map(Arc::new),
                    }
                }
            })
            .collect();
        self.previous = objects
            .iter()
            .cloned()
            .zip(models.iter().cloned())
            .collect();
        models
    }
}
