//! The leader's `status.conditions` on Segments, SegmentPolicies and
//! ClusterNetworkPolicies: computed by `netseg_policy::conditions`, completed
//! with `lastTransitionTime` and `observedGeneration`, and merge-patched on
//! the status subresource only where the object does not carry them already.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition as ApiCondition, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use netseg_policy::{Condition, ObjectRef, PolicyKind, Snapshot, conditions};
use serde_json::json;
use tracing::{debug, warn};

use super::{ClusterInputs, policy_objects, policy_resource};

/// An object's conditions as netseg computes them, with the identity and
/// generation of the version they were computed from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct ObjectConditions {
    pub(super) object: ObjectRef,
    pub(super) uid: Option<String>,
    pub(super) generation: Option<i64>,
    pub(super) conditions: Vec<Condition>,
}

/// The conditions of every object the daemon read: an enforced object's
/// from the enforced snapshot, a refused object's from its version as
/// written (which replaces its last good version, still enforced).
pub(super) fn object_conditions(inputs: &ClusterInputs) -> Vec<ObjectConditions> {
    let refused: BTreeSet<ObjectRef> = objects(&inputs.invalid).map(|(object, _)| object).collect();
    let mut refused_view = inputs.invalid.clone();
    refused_view.segments.extend(
        inputs
            .enforced
            .segments
            .iter()
            .filter(|segment| {
                !refused.contains(&object_ref(PolicyKind::Segment, &segment.metadata))
            })
            .cloned(),
    );
    let mut metadata: HashMap<ObjectRef, &ObjectMeta> = objects(&inputs.enforced).collect();
    metadata.extend(objects(&inputs.invalid));
    let enforced = conditions(&inputs.enforced)
        .into_iter()
        .filter(|(object, _)| !refused.contains(object));
    let as_written = conditions(&refused_view)
        .into_iter()
        .filter(|(object, _)| refused.contains(object));
    enforced
        .chain(as_written)
        .map(|(object, conditions)| {
            let meta = metadata.get(&object);
            ObjectConditions {
                uid: meta.and_then(|meta| meta.uid.clone()),
                generation: meta.and_then(|meta| meta.generation),
                object,
                conditions,
            }
        })
        .collect()
}

/// The objects of the kinds that carry netseg's conditions.
fn objects(snapshot: &Snapshot) -> impl Iterator<Item = (ObjectRef, &ObjectMeta)> {
    policy_objects(snapshot)
        .filter(|(kind, _)| *kind != PolicyKind::NetworkPolicy)
        .map(|(kind, meta)| (object_ref(kind, meta), meta))
}

fn object_ref(kind: PolicyKind, meta: &ObjectMeta) -> ObjectRef {
    ObjectRef {
        kind,
        name: meta.name.clone().unwrap_or_default(),
    }
}

/// The object's conditions with netseg's replaced by `computed`, or `None`
/// when it carries them already. Conditions of other types stay as they
/// are; a condition whose status is unchanged keeps its `lastTransitionTime`.
pub(super) fn merged_conditions(
    existing: &[ApiCondition],
    computed: &[Condition],
    generation: Option<i64>,
    now: Timestamp,
) -> Option<Vec<ApiCondition>> {
    let carried = |condition: &Condition| {
        existing.iter().any(|e| {
            e.type_ == condition.type_
                && e.status == status_text(condition.status)
                && e.reason == condition.reason
                && e.message == condition.message
                && e.observed_generation == generation
        })
    };
    if computed.iter().all(carried) {
        return None;
    }
    let mut merged = existing.to_vec();
    for condition in computed {
        let status = status_text(condition.status);
        let transition = Time(now);
        let position = merged.iter().position(|e| e.type_ == condition.type_);
        let last_transition_time = match position {
            Some(i) if merged[i].status == status => merged[i].last_transition_time.clone(),
            _ => transition,
        };
        let written = ApiCondition {
            type_: condition.type_.to_owned(),
            status: status.to_owned(),
            reason: condition.reason.to_owned(),
            message: condition.message.clone(),
            observed_generation: generation,
            last_transition_time,
        };
        match position {
            Some(i) => merged[i] = written,
            None => merged.push(written),
        }
    }
    Some(merged)
}

fn status_text(status: bool) -> &'static str {
    if status { "True" } else { "False" }
}

/// Writes conditions where the server's differ; remembers what the server
/// carries so that unchanged inputs cost no request.
pub(super) struct ConditionWriter {
    client: kube::Client,
    /// What the server carried or accepted, per object.
    verified: HashMap<ObjectRef, ObjectConditions>,
    /// The inputs of the last write that completed without a failure.
    written: Option<Arc<ClusterInputs>>,
}

impl ConditionWriter {
    pub(super) fn new(client: kube::Client) -> Self {
        ConditionWriter {
            client,
            verified: HashMap::new(),
            written: None,
        }
    }

    /// Forgets what the server carried (another writer may have written).
    pub(super) fn forget(&mut self) {
        self.verified.clear();
        self.written = None;
    }

    /// Writes what changed; returns how many objects failed (each logged).
    pub(super) async fn write(&mut self, inputs: &Arc<ClusterInputs>) -> usize {
        if self
            .written
            .as_ref()
            .is_some_and(|w| Arc::ptr_eq(w, inputs))
        {
            return 0;
        }
        let computed = object_conditions(inputs);
        let present: BTreeSet<&ObjectRef> = computed.iter().map(|c| &c.object).collect();
        self.verified.retain(|object, _| present.contains(object));
        let pending: Vec<ObjectConditions> = computed
            .iter()
            .filter(|c| self.verified.get(&c.object) != Some(c))
            .cloned()
            .collect();
        let mut failures = 0;
        for kind in [
            PolicyKind::ClusterNetworkPolicy,
            PolicyKind::Segment,
            PolicyKind::SegmentPolicy,
        ] {
            let of_kind: Vec<&ObjectConditions> =
                pending.iter().filter(|c| c.object.kind == kind).collect();
            if !of_kind.is_empty() {
                failures += self.write_kind(kind, &of_kind).await;
            }
        }
        self.written = (failures == 0).then(|| inputs.clone());
        failures
    }

    async fn write_kind(&mut self, kind: PolicyKind, pending: &[&ObjectConditions]) -> usize {
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &policy_resource(kind));
        let on_server = match api.list(&ListParams::default()).await {
            Ok(list) => list.items,
            Err(error) => {
                warn!(%kind, error = %error, "cluster status: could not list to compare conditions");
                return pending.len();
            }
        };
        let mut failures = 0;
        for wanted in pending {
            let name = &wanted.object.name;
            let current = on_server
                .iter()
                .find(|o| o.metadata.name.as_ref() == Some(name));
            let same_object =
                |o: &&DynamicObject| wanted.uid.is_none() || o.metadata.uid == wanted.uid;
            let Some(current) = current.filter(same_object) else {
                // Deleted or replaced since the inputs were read: the next inputs say what to write.
                debug!(%kind, %name, "cluster status: object not on the server as read, conditions not written");
                self.verified
                    .insert(wanted.object.clone(), (*wanted).clone());
                continue;
            };
            match write_object_conditions(&api, current, wanted).await {
                Ok(()) => {
                    self.verified
                        .insert(wanted.object.clone(), (*wanted).clone());
                }
                Err(error) => {
                    warn!(%kind, %name, error = %error, "cluster status: could not write conditions");
                    failures += 1;
                }
            }
        }
        failures
    }
}

async fn write_object_conditions(
    api: &Api<DynamicObject>,
    current: &DynamicObject,
    wanted: &ObjectConditions,
) -> Result<(), kube::Error> {
    let existing = server_conditions(current);
    let Some(merged) = merged_conditions(
        &existing,
        &wanted.conditions,
        wanted.generation,
        Timestamp::now(),
    ) else {
        return Ok(());
    };
    // With the resourceVersion read, a concurrent status writer makes this a 409, retried later.
    let patch = json!({
        "metadata": { "resourceVersion": current.metadata.resource_version },
        "status": { "conditions": merged },
    });
    api.patch_status(
        &wanted.object.name,
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    Ok(())
}

/// The conditions an object carries; unreadable ones count as none, so that
/// netseg's own replace them.
fn server_conditions(object: &DynamicObject) -> Vec<ApiCondition> {
    let Some(conditions) = object.data.pointer("/status/conditions") else {
        return Vec::new();
    };
    serde_json::from_value(conditions.clone()).unwrap_or_else(|error| {
        let name = object.metadata.name.as_deref().unwrap_or_default();
        warn!(%name, error = %error, "cluster status: unreadable status.conditions, replaced");
        Vec::new()
    })
}

#[cfg(test)]
mod tests;
