//! The valid objects of a snapshot, and which policies select which local pods.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::{
    Errors, Labels, PodModel, PolicyModel, namespace_labels, parse_namespace, parse_pod,
    parse_policy,
};
use crate::types::Direction;
use crate::{CompileOptions, Snapshot};

/// The valid objects of a snapshot. Invalid objects are dropped; of several
/// valid objects with the same name, the first in the snapshot wins.
pub(super) struct Inventory {
    /// Labels of every namespace that has a Namespace object or a pod.
    namespaces: BTreeMap<String, Labels>,
    /// Pods whose addresses are pod addresses ([`PodModel::is_peer`]), by name.
    pub pods: Vec<PodModel>,
    /// Policies sorted by namespace and name.
    pub policies: Vec<PolicyModel>,
}

impl Inventory {
    pub(super) fn build(snapshot: &Snapshot) -> Self {
        let mut namespaces = BTreeMap::new();
        for ns in &snapshot.namespaces {
            if let Some(ns) = parse_namespace(ns, &mut Errors::default()) {
                namespaces.entry(ns.name).or_insert(ns.labels);
            }
        }
        let mut pods = BTreeMap::new();
        for pod in &snapshot.pods {
            if let Some(pod) = parse_pod(pod, &mut Errors::default()) {
                pods.entry(pod.pod_ref.clone()).or_insert(pod);
            }
        }
        // Deduplicate before filtering, so a later copy of a terminated pod
        // cannot stand in for the first one.
        let pods: Vec<PodModel> = pods.into_values().filter(PodModel::is_peer).collect();
        for pod in &pods {
            let ns = &pod.pod_ref.namespace;
            if !namespaces.contains_key(ns) {
                namespaces.insert(ns.clone(), namespace_labels(ns, None));
            }
        }
        let mut policies = BTreeMap::new();
        for policy in &snapshot.network_policies {
            if let Some(policy) = parse_policy(policy, &mut Errors::default()) {
                let key = (policy.namespace.clone(), policy.name.clone());
                policies.entry(key).or_insert(policy);
            }
        }
        Inventory {
            namespaces,
            pods,
            policies: policies.into_values().collect(),
        }
    }

    /// The labels namespace selectors see for pods of `namespace`.
    pub(super) fn namespace_labels(&self, namespace: &str) -> Option<&Labels> {
        self.namespaces.get(namespace)
    }
}

/// Which policies select which local endpoint, per direction.
pub(super) struct Selection {
    /// Indices into [`Inventory::pods`] of the pods on this node.
    pub locals: Vec<usize>,
    /// For each local pod (same order as `locals`), per direction (ingress,
    /// egress), the indices of the policies that select it and isolate that
    /// direction, in name order.
    pub selecting: Vec<[Vec<usize>; 2]>,
    /// Per direction, the policies that select at least one local pod: only
    /// their rules reach the maps.
    pub relevant: [BTreeSet<usize>; 2],
}

/// Index of a direction in per-direction arrays.
pub(super) fn slot(direction: Direction) -> usize {
    match direction {
        Direction::Ingress => 0,
        Direction::Egress => 1,
    }
}

impl Selection {
    pub(super) fn compute(inv: &Inventory, options: &CompileOptions) -> Self {
        let locals: Vec<usize> = inv
            .pods
            .iter()
            .enumerate()
            .filter(|(_, pod)| pod.node.as_deref() == Some(options.node_name.as_str()))
            .map(|(i, _)| i)
            .collect();
        let mut relevant: [BTreeSet<usize>; 2] = Default::default();
        let mut selecting = Vec::with_capacity(locals.len());
        for &pod_index in &locals {
            let pod = &inv.pods[pod_index];
            let mut per_direction: [Vec<usize>; 2] = Default::default();
            for (policy_index, policy) in inv.policies.iter().enumerate() {
                if policy.namespace != pod.pod_ref.namespace
                    || !policy.selector.matches(&pod.labels)
                {
                    continue;
                }
                for direction in Direction::BOTH {
                    if policy.rules(direction).is_some() {
                        per_direction[slot(direction)].push(policy_index);
                        relevant[slot(direction)].insert(policy_index);
                    }
                }
            }
            selecting.push(per_direction);
        }
        Selection {
            locals,
            selecting,
            relevant,
        }
    }
}
