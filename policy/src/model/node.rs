//! Node objects: the labels `nodes` peers select on, and the addresses they
//! stand for.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::Node;

use super::errors::Errors;
use super::names::check_labels;
use super::names::dns_subdomain_problem;
use super::policy::check_object_name;
use super::selector::Labels;

/// A valid Node: its name, labels and addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NodeModel {
    pub name: String,
    pub labels: Labels,
    /// The IP addresses of `status.addresses` (every type that holds an IP:
    /// InternalIP and ExternalIP), as the API's `nodes` peer selects them.
    pub addresses: Vec<IpAddr>,
}

/// Parses and validates a Node; `None` when any field netseg reads is invalid.
pub(crate) fn parse_node(node: &Node, errs: &mut Errors) -> Option<NodeModel> {
    let name = node.metadata.name.clone().unwrap_or_default();
    check_object_name(&name, "metadata.name", dns_subdomain_problem, errs);
    check_labels(node.metadata.labels.as_ref(), "metadata.labels", errs);
    let mut addresses = Vec::new();
    let listed = node
        .status
        .iter()
        .flat_map(|s| s.addresses.iter().flatten());
    for (i, address) in listed.enumerate() {
        if !matches!(address.type_.as_str(), "InternalIP" | "ExternalIP") {
            continue;
        }
        match address.address.parse::<IpAddr>() {
            Ok(ip) => addresses.push(ip),
            Err(_) => errs.invalid(
                format!("status.addresses[{i}].address"),
                &address.address,
                "must be an IP address",
            ),
        }
    }
    if !errs.is_empty() {
        return None;
    }
    addresses.sort();
    addresses.dedup();
    Some(NodeModel {
        name,
        labels: node.metadata.labels.clone().unwrap_or_default(),
        addresses,
    })
}
