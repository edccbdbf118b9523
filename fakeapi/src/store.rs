//! The object store: every object of every kind, one global resourceVersion counter (as etcd's
//! revision), and the history of changes that watches replay from.
//!
//! Unlike the API server, a list always reads the current state: pages after the first are not
//! a snapshot at the first page's resourceVersion (objects written between pages show up with
//! their new content; the watch that follows the list delivers the same changes again).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::watch;

use crate::resources::Resource;
use crate::selectors::Selection;
use crate::status::ApiError;

/// (namespace, name); the namespace is "" for cluster-scoped objects. Ordered as etcd's keys.
pub(crate) type ObjectKey = (String, String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventType {
    Added,
    Modified,
    Deleted,
}

/// One change, as a watch replays it. `previous` lets a watch with a selector turn a change
/// that moves an object in or out of its selection into ADDED or DELETED.
#[derive(Debug)]
pub(crate) struct HistoryEvent {
    pub rv: u64,
    pub resource: &'static Resource,
    pub event_type: EventType,
    pub object: Arc<Value>,
    pub previous: Option<Arc<Value>>,
}

/// Which part of an object a write may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    /// Everything but `status` (for resources with a status subresource).
    Main,
    /// Only `status`.
    Status,
    /// Everything: the test driver's `apply`.
    Whole,
}

/// One page of a list.
pub(crate) struct Page {
    pub items: Vec<Arc<Value>>,
    /// The key of the last item, when more items follow.
    pub continue_after: Option<ObjectKey>,
    pub remaining: usize,
}

pub(crate) struct Store {
    rv: u64,
    /// A watch may resume from a resourceVersion at or above this; older ones are compacted.
    oldest_resumable_rv: u64,
    objects: HashMap<(&'static str, &'static str), BTreeMap<ObjectKey, Arc<Value>>>,
    history: VecDeque<HistoryEvent>,
    uids_issued: u64,
    changes: watch::Sender<u64>,
}

impl Store {
    pub fn new() -> Store {
        Store {
            rv: 1,
            oldest_resumable_rv: 1,
            objects: HashMap::new(),
            history: VecDeque::new(),
            uids_issued: 0,
            changes: watch::Sender::new(1),
        }
    }

    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    pub fn oldest_resumable_rv(&self) -> u64 {
        self.oldest_resumable_rv
    }

    /// Wakes on every write.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    pub fn can_resume_from(&self, rv: u64) -> bool {
        (self.oldest_resumable_rv..=self.rv).contains(&rv)
    }

    pub fn get(&self, resource: &Resource, key: &ObjectKey) -> Option<Arc<Value>> {
        self.objects
            .get(&(resource.group, resource.plural))?
            .get(key)
            .cloned()
    }

    pub fn list(
        &self,
        resource: &Resource,
        selection: &Selection,
        after: Option<&ObjectKey>,
        limit: Option<usize>,
    ) -> Page {
        let Some(objects) = self.objects.get(&(resource.group, resource.plural)) else {
            return Page {
                items: Vec::new(),
                continue_after: None,
                remaining: 0,
            };
        };
        let mut matching = objects
            .iter()
            .filter(|(key, _)| after.is_none_or(|after| *key > after))
            .filter(|(_, object)| selection.matches(object));
        let limit = limit.unwrap_or(usize::MAX);
        let mut items = Vec::new();
        let mut last_key = None;
        for (key, object) in matching.by_ref().take(limit) {
            items.push(object.clone());
            last_key = Some(key.clone());
        }
        let remaining = matching.count();
        let continue_after = if remaining > 0 { last_key } else { None };
        Page {
            items,
            continue_after,
            remaining,
        }
    }

    /// Changes of `resource` after `rv`, oldest first.
    pub fn history_since(
        &self,
        rv: u64,
        resource: &Resource,
    ) -> impl Iterator<Item = &HistoryEvent> {
        let start = self.history.partition_point(|event| event.rv <= rv);
        self.history
            .range(start..)
            .filter(move |event| event.resource == resource)
    }

    /// POST: a new object; 409 AlreadyExists if one has its name.
    pub fn create(
        &mut self,
        resource: &'static Resource,
        mut object: Value,
    ) -> Result<Arc<Value>, ApiError> {
        check_shape(resource, &object)?;
        if object["metadata"]["name"]
            .as_str()
            .is_none_or(str::is_empty)
            && let Some(prefix) = object["metadata"]["generateName"].as_str()
        {
            object["metadata"]["name"] = json!(format!("{prefix}{:05x}", self.uids_issued + 1));
        }
        let key = object_key(resource, &object)?;
        if self.get(resource, &key).is_some() {
            return Err(ApiError::already_exists(resource.plural, &key.1));
        }
        if resource.has_status {
            strip_status(&mut object);
        }
        Ok(self.commit(resource, key, object, None))
    }

    /// PUT or a patched object: replaces `part` of the stored object. A non-empty
    /// `metadata.resourceVersion` in `object` must be the stored one (409 Conflict otherwise).
    pub fn update(
        &mut self,
        resource: &'static Resource,
        object: Value,
        part: Part,
    ) -> Result<Arc<Value>, ApiError> {
        let key = object_key(resource, &object)?;
        let stored = self
            .get(resource, &key)
            .ok_or_else(|| ApiError::not_found(resource.plural, &key.1))?;
        check_precondition(
            resource,
            &key,
            &stored,
            object["metadata"]["resourceVersion"].as_str(),
        )?;
        let part = if resource.has_status {
            part
        } else {
            Part::Whole
        };
        let updated = match part {
            Part::Status => {
                let mut updated = (*stored).clone();
                set_or_remove(&mut updated, "status", &object["status"]);
                updated
            }
            Part::Main => {
                let mut updated = object;
                set_or_remove(&mut updated, "status", &stored["status"]);
                updated
            }
            Part::Whole => object,
        };
        Ok(self.commit(resource, key, updated, Some(stored)))
    }

    /// The test driver's write: creates, or replaces the whole object (status included).
    pub fn apply(
        &mut self,
        resource: &'static Resource,
        object: Value,
    ) -> Result<Arc<Value>, ApiError> {
        let key = object_key(resource, &object)?;
        let stored = self.get(resource, &key);
        Ok(self.commit(resource, key, object, stored))
    }

    /// DELETE, at once (no graceful deletion, finalizers are ignored), with optional
    /// resourceVersion and uid preconditions.
    pub fn delete(
        &mut self,
        resource: &'static Resource,
        key: &ObjectKey,
        precondition_rv: Option<&str>,
        precondition_uid: Option<&str>,
    ) -> Result<Arc<Value>, ApiError> {
        let stored = self
            .get(resource, key)
            .ok_or_else(|| ApiError::not_found(resource.plural, &key.1))?;
        check_precondition(resource, key, &stored, precondition_rv)?;
        if let Some(uid) = precondition_uid
            && stored["metadata"]["uid"].as_str() != Some(uid)
        {
            return Err(ApiError::conflict(
                resource.plural,
                &key.1,
                "the UID in the precondition does not match",
            ));
        }
        self.rv += 1;
        let mut deleted = (*stored).clone();
        deleted["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        let deleted = Arc::new(deleted);
        if let Some(objects) = self.objects.get_mut(&(resource.group, resource.plural)) {
            objects.remove(key);
        }
        self.record(resource, EventType::Deleted, deleted.clone(), Some(stored));
        Ok(deleted)
    }

    /// Forgets the history: a watch or a continue token from an older resourceVersion gets 410.
    pub fn compact(&mut self) {
        self.oldest_resumable_rv = self.rv;
        self.history.clear();
    }

    /// A restored etcd: the counter goes back (to half its value), every object carries the
    /// new, older resourceVersion, and the history is gone.
    pub fn rewind(&mut self) {
        self.rv = (self.rv / 2).max(1);
        let rv = json!(self.rv.to_string());
        for objects in self.objects.values_mut() {
            for object in objects.values_mut() {
                Arc::make_mut(object)["metadata"]["resourceVersion"] = rv.clone();
            }
        }
        self.compact();
        self.changes.send_replace(self.rv);
    }

    /// Stores `object` with a new resourceVersion, unless nothing but metadata bookkeeping
    /// changed (the API server does not bump it for a no-op write either).
    fn commit(
        &mut self,
        resource: &'static Resource,
        key: ObjectKey,
        mut object: Value,
        previous: Option<Arc<Value>>,
    ) -> Arc<Value> {
        object["apiVersion"] = json!(resource.api_version());
        object["kind"] = json!(resource.kind);
        match &previous {
            Some(previous) => {
                for field in ["uid", "creationTimestamp"] {
                    object["metadata"][field] = previous["metadata"][field].clone();
                }
                let generation = previous["metadata"]["generation"].as_u64().unwrap_or(1);
                let bump = u64::from(without_bookkeeping(previous) != without_bookkeeping(&object));
                object["metadata"]["generation"] = json!(generation + bump);
                object["metadata"]["resourceVersion"] =
                    previous["metadata"]["resourceVersion"].clone();
                if object == **previous {
                    return previous.clone();
                }
            }
            None => {
                self.uids_issued += 1;
                object["metadata"]["uid"] =
                    json!(format!("00000000-0000-4000-8000-{:012x}", self.uids_issued));
                let now = jiff::Timestamp::now().as_second();
                let now = jiff::Timestamp::from_second(now).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
                object["metadata"]["creationTimestamp"] = json!(now.to_string());
                object["metadata"]["generation"] = json!(1);
            }
        }
        self.rv += 1;
        object["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        let object = Arc::new(object);
        self.objects
            .entry((resource.group, resource.plural))
            .or_default()
            .insert(key, object.clone());
        let event_type = if previous.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        self.record(resource, event_type, object.clone(), previous);
        object
    }

    fn record(
        &mut self,
        resource: &'static Resource,
        event_type: EventType,
        object: Arc<Value>,
        previous: Option<Arc<Value>>,
    ) {
        self.history.push_back(HistoryEvent {
            rv: self.rv,
            resource,
            event_type,
            object,
            previous,
        });
        self.changes.send_replace(self.rv);
    }
}

/// The key of an object from its metadata; a namespaced kind needs a namespace.
pub(crate) fn object_key(resource: &Resource, object: &Value) -> Result<ObjectKey, ApiError> {
    check_shape(resource, object)?;
    let metadata = &object["metadata"];
    let name = metadata["name"]
        .as_str()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            ApiError::new(
                422,
                format!("{}: metadata.name: Required value", resource.kind),
            )
        })?;
    let namespace = match (resource.namespaced, metadata["namespace"].as_str()) {
        (true, Some(ns)) if !ns.is_empty() => ns.to_string(),
        (true, _) => {
            return Err(ApiError::new(
                422,
                format!(
                    "{} {name:?}: metadata.namespace: Required value",
                    resource.kind
                ),
            ));
        }
        (false, _) => String::new(),
    };
    Ok((namespace, name.to_string()))
}

fn check_precondition(
    resource: &Resource,
    key: &ObjectKey,
    stored: &Value,
    rv: Option<&str>,
) -> Result<(), ApiError> {
    match rv {
        Some(rv)
            if !rv.is_empty() && stored["metadata"]["resourceVersion"].as_str() != Some(rv) =>
        {
            Err(ApiError::conflict(
                resource.plural,
                &key.1,
                "the object has been modified; please apply your changes to the latest version and try again",
            ))
        }
        _ => Ok(()),
    }
}

/// Writes index into `metadata`: both must be JSON objects.
fn check_shape(resource: &Resource, object: &Value) -> Result<(), ApiError> {
    if !object.is_object() {
        return Err(ApiError::bad_request(format!(
            "a {} must be a JSON object",
            resource.kind
        )));
    }
    if !object["metadata"].is_object() {
        return Err(ApiError::new(
            422,
            format!(
                "{}: metadata: Required value (a JSON object)",
                resource.kind
            ),
        ));
    }
    Ok(())
}

fn strip_status(object: &mut Value) {
    set_or_remove(object, "status", &Value::Null);
}

/// Sets `field` to `value`, or removes it when `value` is null (a missing field reads as null).
fn set_or_remove(object: &mut Value, field: &str, value: &Value) {
    if let Some(fields) = object.as_object_mut() {
        if value.is_null() {
            fields.remove(field);
        } else {
            fields.insert(field.to_string(), value.clone());
        }
    }
}

/// What `metadata.generation` tracks: the object without metadata and status.
fn without_bookkeeping(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(fields) = object.as_object_mut() {
        fields.remove("metadata");
        fields.remove("status");
    }
    object
}

#[cfg(test)]
mod tests;
