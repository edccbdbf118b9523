//! Pods and Namespaces: only the fields the compiler reads, validated.

use std::collections::BTreeSet;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Container, Namespace, Pod};

use super::errors::Errors;
use super::names::{check_labels, dns_label_problem, dns_subdomain_problem, port_name_problem};
use super::policy::check_object_name;
use super::selector::Labels;
use crate::ports::protocol_number;
use crate::types::PodRef;

/// The label every namespace carries with its own name as value.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

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
    pub labels: Labels,
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
        labels: meta.labels.clone().unwrap_or_default(),
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
