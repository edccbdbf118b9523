//! `netseg.dev/v1alpha1` NetsegNode: what one node's daemon enforces, written by that node's
//! daemon only.
//!
//! One object per node, named after the node. The spec is empty; everything is in the status
//! subresource. A ValidatingAdmissionPolicy (`deploy/admission.yaml`) lets the netseg service
//! account write only the object named after the node its token was issued on, so one
//! compromised node cannot misreport another.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The spec of a NetsegNode: empty, the object exists for its status.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "netseg.dev",
    version = "v1alpha1",
    kind = "NetsegNode",
    plural = "netsegnodes",
    shortname = "nsn",
    status = "NetsegNodeStatus",
    derive = "PartialEq",
    doc = "NetsegNode reports what the netseg daemon on the node of the same name enforces.",
    printcolumn(name = "Ready", type_ = "boolean", json_path = ".status.ready"),
    printcolumn(name = "Revision", type_ = "integer", json_path = ".status.revision"),
    printcolumn(name = "Updated", type_ = "date", json_path = ".status.updateTime")
)]
pub struct NetsegNodeSpec {}

/// What the daemon of one node enforces, as of `updateTime`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetsegNodeStatus {
    /// The node this daemon runs on; equals the object's name.
    pub node_name: String,
    /// The datapath revision that is active: increases with every publication.
    pub revision: u64,
    /// Whether the daemon has published the complete policy of every watched kind.
    pub ready: bool,
    /// Every policy object in the active revision, with the generation it was compiled from.
    #[serde(default)]
    pub enforced: Vec<EnforcedPolicy>,
    /// Occupancy of the datapath's maps.
    #[serde(default)]
    pub maps: Vec<MapUsage>,
    /// The last error that kept the daemon from publishing, absent once a publication succeeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When the daemon wrote this status (RFC 3339).
    pub update_time: Time,
}

/// One policy object a node enforces.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct EnforcedPolicy {
    /// The object's kind: `NetworkPolicy`, `ClusterNetworkPolicy`, `Segment` or `SegmentPolicy`.
    /// A string rather than an enum, so that a reader built before a new kind still parses.
    pub kind: String,
    /// The namespace of a namespaced kind (NetworkPolicy); absent for cluster-scoped kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The object's name.
    pub name: String,
    /// The `metadata.generation` the active revision was compiled from.
    pub generation: i64,
}

/// How full one datapath map is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MapUsage {
    /// The map's name in the eBPF object, e.g. `conntrack`.
    pub name: String,
    /// Entries in use.
    pub used: u32,
    /// The map's maximum number of entries.
    pub capacity: u32,
}
