use std::fmt;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use netseg_crd::{ClusterNetworkPolicy, Segment, SegmentPolicy};
use netseg_policy::Snapshot;

/// The kinds a manifests directory may hold; anything else is reported and ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ObjectKind {
    Namespace,
    Node,
    Pod,
    NetworkPolicy,
    ClusterNetworkPolicy,
    Segment,
    SegmentPolicy,
}

impl ObjectKind {
    pub(crate) fn from_type(api_version: &str, kind: &str) -> Option<Self> {
        match (api_version, kind) {
            ("v1", "Namespace") => Some(Self::Namespace),
            ("v1", "Pod") => Some(Self::Pod),
            ("v1", "Node") => Some(Self::Node),
            ("networking.k8s.io/v1", "NetworkPolicy") => Some(Self::NetworkPolicy),
            ("policy.networking.k8s.io/v1alpha2", "ClusterNetworkPolicy") => {
                Some(Self::ClusterNetworkPolicy)
            }
            ("netseg.dev/v1alpha1", "Segment") => Some(Self::Segment),
            ("netseg.dev/v1alpha1", "SegmentPolicy") => Some(Self::SegmentPolicy),
            _ => None,
        }
    }

    /// The item kind of a typed list such as `PodList`, whose items the API
    /// server writes without `apiVersion` and `kind`.
    pub(crate) fn from_list_kind(list_kind: &str) -> Option<Self> {
        match list_kind {
            "NamespaceList" => Some(Self::Namespace),
            "PodList" => Some(Self::Pod),
            "NodeList" => Some(Self::Node),
            "NetworkPolicyList" => Some(Self::NetworkPolicy),
            "ClusterNetworkPolicyList" => Some(Self::ClusterNetworkPolicy),
            "SegmentList" => Some(Self::Segment),
            "SegmentPolicyList" => Some(Self::SegmentPolicy),
            _ => None,
        }
    }

    pub(crate) fn api_version(self) -> &'static str {
        match self {
            Self::Namespace | Self::Pod | Self::Node => "v1",
            Self::NetworkPolicy => "networking.k8s.io/v1",
            Self::ClusterNetworkPolicy => "policy.networking.k8s.io/v1alpha2",
            Self::Segment | Self::SegmentPolicy => "netseg.dev/v1alpha1",
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Namespace => "Namespace",
            Self::Pod => "Pod",
            Self::Node => "Node",
            Self::NetworkPolicy => "NetworkPolicy",
            Self::ClusterNetworkPolicy => "ClusterNetworkPolicy",
            Self::Segment => "Segment",
            Self::SegmentPolicy => "SegmentPolicy",
        }
    }

    pub(crate) fn is_namespaced(self) -> bool {
        matches!(self, Self::Pod | Self::NetworkPolicy)
    }
}

/// What makes two manifests the same object, as the API server would see it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectId {
    pub kind: ObjectKind,
    /// `None` for cluster-scoped kinds.
    pub namespace: Option<String>,
    pub name: String,
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(namespace) => write!(f, "{} {namespace}/{}", self.kind.name(), self.name),
            None => write!(f, "{} {}", self.kind.name(), self.name),
        }
    }
}

/// Shared: a Pod is over 2 KiB, and the objects of an unchanged file are
/// carried from one reload to the next without copying.
#[derive(Clone, Debug)]
pub enum Object {
    Namespace(Arc<Namespace>),
    Pod(Arc<Pod>),
    Node(Arc<Node>),
    NetworkPolicy(Arc<NetworkPolicy>),
    ClusterNetworkPolicy(Arc<ClusterNetworkPolicy>),
    Segment(Arc<Segment>),
    SegmentPolicy(Arc<SegmentPolicy>),
}

/// Objects carried over unchanged are one allocation: comparing them is a
/// pointer comparison, not a walk of every field (a reload compares every
/// object of the cluster with its last version, twice).
impl PartialEq for Object {
    fn eq(&self, other: &Self) -> bool {
        fn same<T: PartialEq>(a: &Arc<T>, b: &Arc<T>) -> bool {
            Arc::ptr_eq(a, b) || a == b
        }
        match (self, other) {
            (Self::Namespace(a), Self::Namespace(b)) => same(a, b),
            (Self::Pod(a), Self::Pod(b)) => same(a, b),
            (Self::Node(a), Self::Node(b)) => same(a, b),
            (Self::NetworkPolicy(a), Self::NetworkPolicy(b)) => same(a, b),
            (Self::ClusterNetworkPolicy(a), Self::ClusterNetworkPolicy(b)) => same(a, b),
            (Self::Segment(a), Self::Segment(b)) => same(a, b),
            (Self::SegmentPolicy(a), Self::SegmentPolicy(b)) => same(a, b),
            _ => false,
        }
    }
}

impl Object {
    /// Adds the object to the list of its kind in `snapshot`.
    pub(crate) fn add_to(&self, snapshot: &mut Snapshot) {
        match self {
            Object::Namespace(namespace) => snapshot.namespaces.push(Arc::clone(namespace)),
            Object::Pod(pod) => snapshot.pods.push(Arc::clone(pod)),
            Object::Node(node) => snapshot.nodes.push(Arc::clone(node)),
            Object::NetworkPolicy(policy) => {
                snapshot.network_policies.push(Arc::clone(policy));
            }
            Object::ClusterNetworkPolicy(policy) => {
                snapshot.cluster_network_policies.push(Arc::clone(policy));
            }
            Object::Segment(segment) => snapshot.segments.push(Arc::clone(segment)),
            Object::SegmentPolicy(policy) => {
                snapshot.segment_policies.push(Arc::clone(policy));
            }
        }
    }
}
