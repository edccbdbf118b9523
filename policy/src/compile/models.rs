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

    /// Whether `objects` are the previous call's, position by position.
    pub(super) fn unchanged(&self, objects: &[Arc<T>]) -> bool {
        self.previous.len() == objects.len()
            && (self.previous.iter().zip(objects))
                .all(|((seen, _), object)| Arc::ptr_eq(seen, object))
    }

    /// When `objects` are as many as the previous call's, the positions
    /// where they differ, each with the model remembered there and the
    /// model of the new object (parsed), remembering the new objects as a
    /// call of [`ModelCache::models`] would. `None` (and nothing
    /// remembered) when the count changed.
    pub(super) fn replaced(
        &mut self,
        objects: &[Arc<T>],
        parse: impl Fn(&T) -> Option<M>,
    ) -> Option<Vec<Replaced<M>>> {
        if self.previous.len() != objects.len() {
            return None;
        }
        let replaced = (self.previous.iter_mut().zip(objects).enumerate())
            .filter(|(_, ((seen, _), object))| !Arc::ptr_eq(seen, object))
            .map(|(position, ((seen, model), object))| {
                let new = parse(object).map(Arc::new);
                *seen = Arc::clone(object);
                let old = std::mem::replace(model, new.clone());
                Replaced { position, old, new }
            })
            .collect();
        Some(replaced)
    }
}

/// An object replaced at `position` of the snapshot's list, with the
/// models of the object before and after.
pub(super) struct Replaced<M> {
    pub position: usize,
    pub old: Option<Arc<M>>,
    pub new: Option<Arc<M>>,
}
