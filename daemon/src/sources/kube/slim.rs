//! The API objects trimmed to what the compiler reads, as soon as they are
//! read: a cluster's pods are the bulk of what every node holds, and a
//! pod's status churns (conditions, restarts) in fields netseg never looks
//! at. A trimmed object that equals the one stored keeps the stored one, so
//! a status-only update costs no recompilation.

use std::borrow::Cow;

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, Namespace, Node, NodeAddress, NodeStatus, Pod, PodIP, PodSpec,
    PodStatus,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::core::{NamespaceResourceScope, Resource};
use serde::Deserialize;

/// A Pod as read from the API, keeping only what a policy can select or
/// address: labels, node, host networking, phase, addresses and the named
/// container ports; and what flow records name it by, its controller.
#[derive(Clone, Debug, Deserialize)]
pub struct SlimPod {
    metadata: ObjectMeta,
    spec: Option<SlimPodSpec>,
    status: Option<SlimPodStatus>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SlimPodSpec {
    node_name: Option<String>,
    host_network: Option<bool>,
    #[serde(default)]
    containers: Vec<SlimContainer>,
}

#[derive(Clone, Debug, Deserialize)]
struct SlimContainer {
    name: String,
    ports: Option<Vec<ContainerPort>>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SlimPodStatus {
    phase: Option<String>,
    #[serde(rename = "podIP")]
    pod_ip: Option<String>,
    #[serde(rename = "podIPs")]
    pod_ips: Option<Vec<PodIP>>,
}

impl Resource for SlimPod {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        Pod::kind(&())
    }
    fn group(_: &()) -> Cow<'_, str> {
        Pod::group(&())
    }
    fn version(_: &()) -> Cow<'_, str> {
        Pod::version(&())
    }
    fn plural(_: &()) -> Cow<'_, str> {
        Pod::plural(&())
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl SlimPod {
    /// The Pod the compiler reads: what the slim type kept, nothing else.
    pub fn into_pod(self) -> Pod {
        let spec = self.spec.map(|spec| PodSpec {
            node_name: spec.node_name,
            host_network: spec.host_network,
            containers: (spec.containers.into_iter())
                .filter_map(with_named_ports)
                .collect(),
            ..PodSpec::default()
        });
        let status = self.status.map(|status| PodStatus {
            phase: status.phase,
            pod_ip: status.pod_ip,
            pod_ips: status.pod_ips,
            ..PodStatus::default()
        });
        let controller = controller(&self.metadata);
        Pod {
            metadata: ObjectMeta {
                owner_references: controller.map(|owner| vec![owner]),
                ..identity(self.metadata)
            },
            spec,
            status,
        }
    }
}

/// A container as a policy can refer to it: by its named ports, the only
/// ports a policy names. One without any is left out: even empty, a
/// `Container` takes 2,144 bytes, and most sidecars name no port. (The
/// index in a problem's `spec.containers[i]` then counts the containers
/// kept; the API server has validated these fields before.)
fn with_named_ports(container: SlimContainer) -> Option<Container> {
    let ports: Vec<ContainerPort> = (container.ports.into_iter().flatten())
        .filter(|port| port.name.is_some())
        .collect();
    (!ports.is_empty()).then(|| Container {
        name: container.name,
        ports: Some(ports),
        ..Container::default()
    })
}

/// The owner reference with `controller: true`, kind and name only: all
/// that flow records name of a pod's workload (the compiler reads it as it
/// reads a manifest's pod, so both sources name a workload alike).
fn controller(metadata: &ObjectMeta) -> Option<OwnerReference> {
    let owner = (metadata.owner_references.iter().flatten())
        .find(|owner| owner.controller == Some(true))?;
    Some(OwnerReference {
        kind: owner.kind.clone(),
        name: owner.name.clone(),
        controller: Some(true),
        ..OwnerReference::default()
    })
}

/// A Namespace keeps its name and labels.
pub fn slim_namespace(namespace: Namespace) -> Namespace {
    Namespace {
        metadata: identity(namespace.metadata),
        ..Namespace::default()
    }
}

/// A Node keeps its name, labels and addresses (node peers and the
/// node-to-pod probes); its image list alone can be tens of kilobytes.
pub fn slim_node(node: Node) -> Node {
    let addresses: Option<Vec<NodeAddress>> = node.status.and_then(|status| status.addresses);
    Node {
        metadata: identity(node.metadata),
        status: Some(NodeStatus {
            addresses,
            ..NodeStatus::default()
        }),
        ..Node::default()
    }
}

/// A NetworkPolicy keeps its spec; its status and bookkeeping go.
pub fn slim_network_policy(policy: NetworkPolicy) -> NetworkPolicy {
    NetworkPolicy {
        metadata: identity(policy.metadata),
        spec: policy.spec,
    }
}

/// The metadata the compiler and the status writer read: who the object
/// is, its labels and its generation. Annotations and managed fields are
/// often most of an object's size.
fn identity(metadata: ObjectMeta) -> ObjectMeta {
    ObjectMeta {
        name: metadata.name,
        namespace: metadata.namespace,
        uid: metadata.uid,
        labels: metadata.labels,
        generation: metadata.generation,
        ..ObjectMeta::default()
    }
}
