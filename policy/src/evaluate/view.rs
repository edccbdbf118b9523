//! The evaluator's reading of the raw objects. Written independently of the
//! compiler's model on purpose: only the validity filter is shared.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnetwork::IpNetwork;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::types::Direction;
use crate::{
    NAMESPACE_NAME_LABEL, Snapshot, protocol_number, validate_namespace, validate_network_policy,
    validate_pod,
};

pub(super) type Labels = BTreeMap<String, String>;

/// The valid objects of a snapshot; of several with one name, the first.
pub(super) struct View<'a> {
    pub pods: Vec<&'a Pod>,
    pub policies: Vec<&'a NetworkPolicy>,
    namespaces: BTreeMap<String, Labels>,
}

fn name_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> (String, String) {
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

impl<'a> View<'a> {
    pub(super) fn new(snapshot: &'a Snapshot) -> Self {
        let mut seen = BTreeSet::new();
        let pods = snapshot
            .pods
            .iter()
            .filter(|p| validate_pod(p).is_empty() && seen.insert(name_of(&p.metadata)))
            .map(AsRef::as_ref)
            .collect();
        let mut seen = BTreeSet::new();
        let policies = snapshot
            .network_policies
            .iter()
            .filter(|p| validate_network_policy(p).is_empty() && seen.insert(name_of(&p.metadata)))
            .map(AsRef::as_ref)
            .collect();
        let mut namespaces = BTreeMap::new();
        for ns in snapshot
            .namespaces
            .iter()
            .filter(|ns| validate_namespace(ns).is_empty())
        {
            let name = ns.metadata.name.clone().unwrap_or_default();
            namespaces
                .entry(name)
                .or_insert_with(|| ns.metadata.labels.clone().unwrap_or_default());
        }
        View {
            pods,
            policies,
            namespaces,
        }
    }

    /// Labels of namespace `name`, with the name label the API server sets.
    pub(super) fn namespace_labels(&self, name: &str) -> Labels {
        let mut labels = self.namespaces.get(name).cloned().unwrap_or_default();
        labels.insert(NAMESPACE_NAME_LABEL.to_string(), name.to_string());
        labels
    }

    /// Pods whose addresses are pod addresses and that hold `addr`.
    pub(super) fn pods_holding(&self, addr: IpAddr) -> Vec<&'a Pod> {
        self.pods
            .iter()
            .copied()
            .filter(|p| is_pod_address_holder(p) && pod_ips(p).contains(&addr))
            .collect()
    }
}

pub(super) fn pod_ips(pod: &Pod) -> Vec<IpAddr> {
    let Some(status) = &pod.status else {
        return Vec::new();
    };
    let listed: Vec<IpAddr> = status
        .pod_ips
        .iter()
        .flatten()
        .filter_map(|ip| ip.ip.parse().ok())
        .collect();
    if !listed.is_empty() {
        return listed;
    }
    status
        .pod_ip
        .iter()
        .filter_map(|ip| ip.parse().ok())
        .collect()
}

/// Running (or pending) pods with an IP of their own: not host-network, not finished.
pub(super) fn is_pod_address_holder(pod: &Pod) -> bool {
    let host_network = pod
        .spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false);
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    let finished = phase == Some("Succeeded") || phase == Some("Failed");
    !host_network && !finished && !pod_ips(pod).is_empty()
}

pub(super) fn labels_of(pod: &Pod) -> &Labels {
    static NONE: Labels = BTreeMap::new();
    pod.metadata.labels.as_ref().unwrap_or(&NONE)
}

pub(super) fn selector_matches(selector: &LabelSelector, labels: &Labels) -> bool {
    let labels_ok = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let exprs_ok = selector.match_expressions.iter().flatten().all(|e| {
        let values = e.values.as_deref().unwrap_or_default();
        let value = labels.get(&e.key);
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => !value.is_some_and(|v| values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    labels_ok && exprs_ok
}

/// Whether `policy` isolates `direction` (spelled-out or defaulted policyTypes).
pub(super) fn policy_isolates(policy: &NetworkPolicy, direction: Direction) -> bool {
    let Some(spec) = &policy.spec else {
        // The defaulted spec: every pod of the namespace, Ingress only.
        return direction == Direction::Ingress;
    };
    let types = spec.policy_types.as_deref().unwrap_or_default();
    let wanted = match direction {
        Direction::Ingress => "Ingress",
        Direction::Egress => "Egress",
    };
    if !types.is_empty() {
        return types.iter().any(|t| t == wanted);
    }
    match direction {
        Direction::Ingress => true,
        Direction::Egress => spec.egress.as_ref().is_some_and(|e| !e.is_empty()),
    }
}

/// A rule of a policy: (index, peers, ports), an absent list as an empty one.
pub(super) type RawRule<'a> = (u32, &'a [NetworkPolicyPeer], &'a [NetworkPolicyPort]);

pub(super) fn rules_of(policy: &NetworkPolicy, direction: Direction) -> Vec<RawRule<'_>> {
    let Some(spec) = &policy.spec else {
        return Vec::new();
    };
    let rules: Vec<(&[NetworkPolicyPeer], &[NetworkPolicyPort])> = match direction {
        Direction::Ingress => spec
            .ingress
            .iter()
            .flatten()
            .map(|r| {
                (
                    r.from.as_deref().unwrap_or_default(),
                    r.ports.as_deref().unwrap_or_default(),
                )
            })
            .collect(),
        Direction::Egress => spec
            .egress
            .iter()
            .flatten()
            .map(|r| {
                (
                    r.to.as_deref().unwrap_or_default(),
                    r.ports.as_deref().unwrap_or_default(),
                )
            })
            .collect(),
    };
    (0u32..)
        .zip(rules)
        .map(|(i, (peers, ports))| (i, peers, ports))
        .collect()
}

/// Whether `peer` (of a policy in `policy_ns`) matches address `addr`, held by `holders`.
pub(super) fn peer_matches(
    view: &View<'_>,
    peer: &NetworkPolicyPeer,
    policy_ns: &str,
    addr: IpAddr,
    holders: &[&Pod],
) -> bool {
    if let Some(block) = &peer.ip_block {
        let inside = |cidr: &str| {
            cidr.parse::<IpNetwork>()
                .is_ok_and(|net| net.contains(addr))
        };
        return inside(&block.cidr) && !block.except.iter().flatten().any(|e| inside(e));
    }
    holders.iter().any(|pod| {
        let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
        let ns_ok = match &peer.namespace_selector {
            None => ns == policy_ns,
            Some(sel) => selector_matches(sel, &view.namespace_labels(ns)),
        };
        let pod_ok = peer
            .pod_selector
            .as_ref()
            .is_none_or(|sel| selector_matches(sel, labels_of(pod)));
        ns_ok && pod_ok
    })
}

/// Whether `pod` has a container port `name` for `protocol` numbered `port`.
fn has_named_port(pod: &Pod, name: &str, protocol: u8, port: u16) -> bool {
    let containers = pod
        .spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or_default();
    containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .any(|p| {
            p.name.as_deref() == Some(name)
                && protocol_number(p.protocol.as_deref().unwrap_or("TCP")) == Some(protocol)
                && p.container_port == i32::from(port)
        })
}

/// Whether a `ports` entry matches the packet. Named ports resolve against
/// `named_port_pods`: the local pod on ingress, the peer's holders on egress.
pub(super) fn port_matches(
    entry: &NetworkPolicyPort,
    named_port_pods: &[&Pod],
    protocol: u8,
    port: u16,
) -> bool {
    if protocol_number(entry.protocol.as_deref().unwrap_or("TCP")) != Some(protocol) {
        return false;
    }
    match &entry.port {
        None => true,
        Some(IntOrString::Int(first)) => {
            let last = entry.end_port.unwrap_or(*first);
            (*first..=last).contains(&i32::from(port))
        }
        Some(IntOrString::String(name)) => named_port_pods
            .iter()
            .any(|p| has_named_port(p, name, protocol, port)),
    }
}
