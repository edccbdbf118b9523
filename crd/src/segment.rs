//! `netseg.dev/v1alpha1` Segment: a named zone of pods and external networks, with a
//! default posture for its member pods.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{NamespacedPod, ResourceStatus};
use crate::schema::cidr_list;

/// The spec of a Segment.
// Printer columns repeat `type_ = "string"`, which clippy takes for a duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "netseg.dev",
    version = "v1alpha1",
    kind = "Segment",
    plural = "segments",
    shortname = "seg",
    status = "ResourceStatus",
    derive = "PartialEq",
    doc = "Segment is a named zone of pods and external networks with a default posture for its member pods.",
    printcolumn(
        name = "Ingress",
        type_ = "string",
        json_path = ".spec.posture.ingress"
    ),
    printcolumn(name = "Egress", type_ = "string", json_path = ".spec.posture.egress"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
pub struct SegmentSpec {
    /// Free text for people, at most 1024 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,
    /// 1..=25 member entries; a pod or address is a member when any entry matches it.
    #[schemars(length(min = 1, max = 25))]
    pub members: Vec<SegmentMember>,
    /// The member pods' default per direction, applied below the Baseline tier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub posture: Option<SegmentPosture>,
}

/// One member entry: exactly one field is set.
///
/// An entry with none of these fields set (written for a newer version of the API) makes
/// nothing a member.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(extend("minProperties" = 1, "maxProperties" = 1))]
pub struct SegmentMember {
    /// Every pod of the namespaces this selector matches (host-network pods never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<LabelSelector>,
    /// The pods this namespace/pod selector pair matches (host-network pods never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<NamespacedPod>,
    /// 1..=25 CIDRs of external addresses: addresses inside that are not pod addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "cidr_list")]
    pub networks: Option<Vec<String>>,
}

/// The default for member pods, per direction. An absent direction is `Deny`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SegmentPosture {
    /// Connections to member pods that no policy decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<PostureAction>,
    /// Connections from member pods that no policy decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<PostureAction>,
}

/// A Segment's posture for one direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum PostureAction {
    /// Allow what no policy decided.
    Accept,
    /// Drop what no policy decided.
    Deny,
}
