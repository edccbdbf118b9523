//! This node's NetsegNode (netseg.dev/v1alpha1, cluster-scoped, named after
//! the node): which generation of which policy it enforces, map pressure and
//! its last error, written when they change. The type is addressed
//! dynamically so that this writer needs nothing but the wire format.

use std::sync::Arc;

use k8s_openapi::jiff::Timestamp;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use netseg_policy::{PolicyKind, Snapshot};

use serde::Serialize;
use serde_json::json;
use tracing::warn;

use super::{ClusterInputs, policy_objects};

/// The API resource of NetsegNode.
pub(super) fn netseg_node_resource() -> ApiResource {
    let gvk = GroupVersionKind::gvk("netseg.dev", "v1alpha1", "NetsegNode");
    ApiResource::from_gvk_with_plural(&gvk, "netsegnodes")
}

/// `status` of a NetsegNode, but for `updateTime`, set when written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
struct NetsegNodeStatus {
    node_name: String,
    revision: u64,
    ready: bool,
    enforced: Vec<EnforcedObject>,
    maps: Vec<MapStatus>,
    /// Written as `null` when there is none, which a merge patch removes.
    last_error: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
struct EnforcedObject {
    kind: PolicyKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<String>,
    name: String,
    generation: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
struct MapStatus {
    name: String,
    used: u64,
    capacity: u64,
}

fn node_status(node_name: &str, inputs: &ClusterInputs) -> NetsegNodeStatus {
    let report = &inputs.node;
    NetsegNodeStatus {
        node_name: node_name.to_owned(),
        revision: report.revision,
        ready: report.ready,
        enforced: enforced_objects(&inputs.enforced),
        maps: report
            .maps
            .iter()
            .map(|map| MapStatus {
                name: map.name.clone(),
                used: map.used,
                capacity: map.capacity,
            })
            .collect(),
        last_error: report.last_error.clone(),
    }
}

fn enforced_objects(snapshot: &Snapshot) -> Vec<EnforcedObject> {
    let mut enforced: Vec<EnforcedObject> = policy_objects(snapshot)
        .map(|(kind, meta)| EnforcedObject {
            kind,
            namespace: meta.namespace.clone(),
            name: meta.name.clone().unwrap_or_default(),
            generation: meta.generation,
        })
        .collect();
    enforced.sort();
    enforced
}

pub(super) struct NodeStatusWriter {
    api: Api<DynamicObject>,
    node_name: String,
    /// The inputs and status last written.
    written: Option<(Arc<ClusterInputs>, NetsegNodeStatus)>,
}

impl NodeStatusWriter {
    pub(super) fn new(client: kube::Client, node_name: &str) -> Self {
        NodeStatusWriter {
            api: Api::all_with(client, &netseg_node_resource()),
            node_name: node_name.to_owned(),
            written: None,
        }
    }

    /// Writes the status if it changed; returns 1 if that failed (logged).
    pub(super) async fn write(&mut self, inputs: &Arc<ClusterInputs>) -> usize {
        if let Some((written_inputs, _)) = &self.written
            && Arc::ptr_eq(written_inputs, inputs)
        {
            return 0;
        }
        let status = node_status(&self.node_name, inputs);
        if self
            .written
            .as_ref()
            .is_some_and(|(_, written)| *written == status)
        {
            self.written = Some((inputs.clone(), status));
            return 0;
        }
        match self.write_status(&status).await {
            Ok(()) => {
                self.written = Some((inputs.clone(), status));
                0
            }
            Err(error) => {
                warn!(node = %self.node_name, error = %error, "cluster status: could not write this node's NetsegNode");
                1
            }
        }
    }

    async fn write_status(&self, status: &NetsegNodeStatus) -> Result<(), kube::Error> {
        let mut fields = serde_json::to_value(status).map_err(kube::Error::SerdeError)?;
        fields["updateTime"] = json!(Timestamp::now().to_string());
        let patch = json!({ "status": fields });
        match self.patch_status(&patch).await {
            Err(kube::Error::Api(response)) if response.is_not_found() => {
                let node = DynamicObject::new(&self.node_name, &netseg_node_resource())
                    .data(json!({ "spec": {} }));
                self.api.create(&PostParams::default(), &node).await?;
                self.patch_status(&patch).await
            }
            written => written,
        }
    }

    async fn patch_status(&self, patch: &serde_json::Value) -> Result<(), kube::Error> {
        self.api
            .patch_status(
                &self.node_name,
                &PatchParams::default(),
                &Patch::Merge(patch),
            )
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster_status::{MapPressure, NodeReport};
    use netseg_policy::Snapshot;

    #[test]
    fn the_status_names_every_enforced_policy_with_its_generation() {
        let policy = |value| Arc::new(serde_json::from_value(value).unwrap());
        let inputs = ClusterInputs {
            enforced: Snapshot {
                network_policies: vec![policy(json!({
                    "metadata": {"namespace": "shop", "name": "web", "generation": 4},
                    "spec": {"podSelector": {}}
                }))],
                ..Snapshot::default()
            },
            node: NodeReport {
                revision: 7,
                ready: true,
                maps: vec![MapPressure {
                    name: "policy".to_owned(),
                    used: 10,
                    capacity: 100,
                }],
                last_error: None,
            },
            ..ClusterInputs::default()
        };
        let status = serde_json::to_value(node_status("node-a", &inputs)).unwrap();
        assert_eq!(
            status,
            json!({
                "nodeName": "node-a", "revision": 7, "ready": true,
                "enforced": [{"kind": "NetworkPolicy", "namespace": "shop", "name": "web",
                              "generation": 4}],
                "maps": [{"name": "policy", "used": 10, "capacity": 100}],
                "lastError": null,
            })
        );
    }
}
