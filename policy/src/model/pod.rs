//! Pods and Namespaces: only the fields the compiler reads, validated.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Container, Namespace, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::errors::Errors;
use super::names::{check_labels, dns_label_problem, dns_subdomain_problem, port_name_problem};
use super::policy::check_object_name;
use super::selector::Labels;
use crate::ports::protocol_number;
use crate::types::{PodRef, Workload};

/// The label every namespace carries with its own name as value.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// The label the Deployment controller puts on the pods of each of its
/// ReplicaSets: the hash of the pod template, which also ends the
/// ReplicaSet's name (`web-5d4f8c9b7`).
const POD_TEMPLATE_HASH_LABEL: &str = "pod-template-hash";

/// A container port with a name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct NamedPort {
    pub name: String,
    pub protocol: u8,
    pub port: u16,
}

/// A valid Pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PodModel {
    pub pod_ref: PodRef,
    /// Shared with the flow records' view of the pod ([`crate::PodParty`]).
    pub labels: Arc<Labels>,
    /// Its controller, named as [`workload`] names it.
    pub workload: Option<Workload>,
    pub node: Option<String>,
    pub host_network: bool,
    /// Phase Succeeded or Failed: the pod's IP may already belong to another pod.
    pub terminal: bool,
    /// `status.podIPs` (or `status.podIP`), at most one per family.
    pub ips: Vec<IpAddr>,
    pub named_ports: Vec<NamedPort>,
}

impl PodModel {
    /// Whether the pod's addresses are pod addresses that policies can select.
    /// A host-network pod's address is its node's, so it is not one.
    pub fn is_peer(&self) -> bool {
        !self.host_network && !self.terminal && !self.ips.is_empty()
    }

    /// The container ports called `name` for `protocol`.
    pub fn resolve(&self, name: &str, protocol: u8) -> BTreeSet<u16> {
        self.named_ports
            .iter()
            .filter(|p| p.name == name && p.protocol == protocol)
            .map(|p| p.port)
            .collect()
    }
}

fn parse_container_ports(container: &Container, path: &str, errs: &mut Errors) -> Vec<NamedPort> {
    let mut named = Vec::new();
    for (i, port) in container.ports.iter().flatten().enumerate() {
        let at = format!("{path}.ports[{i}]");
        let number = u16::try_from(port.container_port).ok().filter(|p| *p != 0);
        if number.is_none() {
            errs.invalid(
                format_args!("{at}.containerPort"),
                port.container_port,
                "must be between 1 and 65535, inclusive",
            );
        }
        let protocol_name = port.protocol.as_deref().unwrap_or("TCP");
        let protocol = protocol_number(protocol_name);
        if protocol.is_none() {
            errs.unsupported(
                format_args!("{at}.protocol"),
                protocol_name,
                "TCP, UDP, SCTP",
            );
        }
        let Some(name) = &port.name else { continue };
        if let Some(reason) = port_name_problem(name) {
            errs.invalid(format_args!("{at}.name"), name, reason);
        }
        if let (Some(port), Some(protocol)) = (number, protocol) {
            named.push(NamedPort {
                name: name.clone(),
                protocol,
                port,
            });
        }
    }
    named
}

fn parse_ip(text: &str, path: &str, errs: &mut Errors) -> Option<IpAddr> {
    let parsed = text.parse::<IpAddr>();
    if parsed.is_err() {
        errs.invalid(path, text, "must be a valid IP address");
    }
    parsed.ok()
}

fn parse_pod_ips(pod: &Pod, errs: &mut Errors) -> Vec<IpAddr> {
    let Some(status) = &pod.status else {
        return Vec::new();
    };
    let mut ips = Vec::new();
    for (i, ip) in status.pod_ips.iter().flatten().enumerate() {
        let path = format!("status.podIPs[{i}].ip");
        let Some(addr) = parse_ip(&ip.ip, &path, errs) else {
            continue;
        };
        if ips.iter().any(|a: &IpAddr| a.is_ipv4() == addr.is_ipv4()) {
            errs.invalid(
                path,
                addr,
                "may specify no more than one IP for each IP family",
            );
        }
        ips.push(addr);
    }
    let single = status.pod_ip.as_deref().filter(|s| !s.is_empty());
    if let Some(addr) = single.and_then(|s| parse_ip(s, "status.podIP", errs)) {
        match ips.first() {
            None => ips.push(addr),
            Some(first) if *first != addr => {
                errs.invalid("status.podIP", addr, "must match status.podIPs[0]");
            }
            Some(_) => {}
        }
    }
    ips
}

/// The workload of a pod: its controller (the owner reference with
/// `controller: true`), as `Kind/name`; `None` for a pod without one.
///
/// A Deployment owns its pods through ReplicaSets, which the pod names
/// instead. As Cilium and Hubble do, a ReplicaSet whose name is a prefix,
/// `-` and the pod's `pod-template-hash` label stands for Deployment
/// `prefix`: that is how the Deployment controller names its ReplicaSets,
/// and asking the API server would take a watch of every ReplicaSet. A
/// ReplicaSet created otherwise with such a name is named as a Deployment.
///
/// The reference only names the pod: one without a kind or a name is no
/// workload rather than a reason to refuse the pod (and change what is
/// enforced).
fn workload(meta: &ObjectMeta) -> Option<Workload> {
    let controller = meta
        .owner_references
        .iter()
        .flatten()
        .find(|owner| owner.controller == Some(true))
        .filter(|owner| !owner.kind.is_empty() && !owner.name.is_empty())?;
    let template_hash = meta
        .labels
        .as_ref()
        .and_then(|labels| labels.get(POD_TEMPLATE_HASH_LABEL))
        .filter(|hash| !hash.is_empty());
    let deployment = template_hash
        .filter(|_| controller.kind == "ReplicaSet")
        .and_then(|hash| controller.name.strip_suffix(hash.as_str()))
        .and_then(|prefix| prefix.strip_suffix('-'))
        .filter(|name| !name.is_empty());
    Some(match deployment {
        Some(name) => Workload {
            kind: "Deployment".into(),
            name: name.into(),
        },
        None => Workload {
            kind: controller.kind.as_str().into(),
            name: controller.name.as_str().into(),
        },
    })
}

/// Parses and validates a Pod; `None` when any field is invalid.
pub(crate) fn parse_pod(pod: &Pod, errs: &mut Errors) -> Option<PodModel> {
    let meta = &pod.metadata;
    let name = meta.name.clone().unwrap_or_default();
    let namespace = meta.namespace.clone().unwrap_or_default();
    check_object_name(&name, "metadata.name", dns_subdomain_problem, errs);
    check_object_name(&namespace, "metadata.namespace", dns_label_problem, errs);
    check_labels(meta.labels.as_ref(), "metadata.labels", errs);
    let spec = pod.spec.as_ref();
    let mut named_ports = Vec::new();
    for (i, container) in spec
        .map(|s| s.containers.as_slice())
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        named_ports.extend(parse_container_ports(
            container,
            &format!("spec.containers[{i}]"),
            errs,
        ));
    }
    let ips = parse_pod_ips(pod, errs);
    if !errs.is_empty() {
        return None;
    }
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    Some(PodModel {
        pod_ref: PodRef::new(namespace, name),
        labels: Arc::new(meta.labels.clone().unwrap_or_default()),
        workload: workload(meta),
        node: spec
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty()),
        host_network: spec.and_then(|s| s.host_network).unwrap_or(false),
        terminal: matches!(phase, Some("Succeeded" | "Failed")),
        ips,
        named_ports,
    })
}

/// A valid Namespace: its name and its labels, including [`NAMESPACE_NAME_LABEL`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NamespaceModel {
    pub name: String,
    pub labels: Labels,
}

/// The labels of namespace `name` as selectors see them: `labels` plus
/// [`NAMESPACE_NAME_LABEL`], which the API server always sets to the name.
pub(crate) fn namespace_labels(name: &str, labels: Option<&Labels>) -> Labels {
    let mut labels = labels.cloned().unwrap_or_default();
    labels.insert(NAMESPACE_NAME_LABEL.to_string(), name.to_string());
    labels
}

/// Parses and validates a Namespace; `None` when any field is invalid.
pub(crate) fn parse_namespace(namespace: &Namespace, errs: &mut Errors) -> Option<NamespaceModel> {
    let name = namespace.metadata.name.clone().unwrap_or_default();
    check_object_name(&name, "metadata.name", dns_label_problem, errs);
    check_labels(namespace.metadata.labels.as_ref(), "metadata.labels", errs);
    if !errs.is_empty() {
        return None;
    }
    let labels = namespace_labels(&name, namespace.metadata.labels.as_ref());
    Some(NamespaceModel { name, labels })
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    /// The workload of a pod labelled `labels` with these owner references.
    fn workload_of(labels: Value, owners: Value) -> Option<String> {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"namespace": "shop", "name": "web-5d4f8c9b7-x2x9k",
                "labels": labels, "ownerReferences": owners},
        }))
        .expect("a pod");
        let model = parse_pod(&pod, &mut Errors::default()).expect("a valid pod");
        model.workload.map(|w| w.to_string())
    }

    fn owner(kind: &str, name: &str, controller: bool) -> Value {
        json!({"apiVersion": "apps/v1", "kind": kind, "name": name, "uid": "u",
            "controller": controller})
    }

    #[test]
    fn a_replica_set_named_by_the_template_hash_is_its_deployment() {
        let hash = json!({"app": "web", "pod-template-hash": "5d4f8c9b7"});
        let rs = |name| json!([owner("ReplicaSet", name, true)]);
        assert_eq!(
            workload_of(hash.clone(), rs("web-5d4f8c9b7")).as_deref(),
            Some("Deployment/web")
        );
        assert_eq!(
            workload_of(hash.clone(), rs("web-other")).as_deref(),
            Some("ReplicaSet/web-other"),
            "a name without the hash is no Deployment's"
        );
        assert_eq!(
            workload_of(hash, rs("5d4f8c9b7")).as_deref(),
            Some("ReplicaSet/5d4f8c9b7"),
            "the hash alone leaves no Deployment name"
        );
        assert_eq!(
            workload_of(json!({"app": "web"}), rs("web-5d4f8c9b7")).as_deref(),
            Some("ReplicaSet/web-5d4f8c9b7"),
            "without the label a ReplicaSet stays itself"
        );
    }

    #[test]
    fn the_workload_is_the_controller_among_the_owners() {
        let labels = json!({"app": "db"});
        let owners = json!([
            owner("ConfigMap", "settings", false),
            owner("StatefulSet", "db", true)
        ]);
        assert_eq!(
            workload_of(labels.clone(), owners).as_deref(),
            Some("StatefulSet/db")
        );
        let owners = json!([owner("ConfigMap", "settings", false)]);
        assert_eq!(workload_of(labels.clone(), owners), None, "no controller");
        assert_eq!(workload_of(labels.clone(), json!(null)), None, "no owners");
        let nameless = json!([owner("Job", "", true)]);
        assert_eq!(workload_of(labels, nameless), None);
    }
}
