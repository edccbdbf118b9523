//! The valid objects of a snapshot, and which policies select which local pods.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use rustc_hash::FxHashSet;

use super::models::ModelCache;
use crate::model::{
    Errors, Labels, NamespaceModel, PodModel, PolicyModel, namespace_labels, parse_namespace,
    parse_pod, parse_policy,
};
use crate::types::Direction;
use crate::{CompileOptions, Snapshot};

/// The parsed models of every kind of object.
#[derive(Default)]
pub(super) struct Models {
    namespaces: ModelCache<Namespace, NamespaceModel>,
    pods: ModelCache<Pod, PodModel>,
    policies: ModelCache<NetworkPolicy, PolicyModel>,
}

/// The valid objects of a snapshot. Invalid objects are dropped; of several
/// valid objects with the same name, the first in the snapshot wins.
pub(super) struct Inventory {
    /// Labels of every namespace that has a Namespace object or a pod.
    namespaces: BTreeMap<String, Labels>,
    /// Pods whose addresses are pod addresses ([`PodModel::is_peer`]), in
    /// snapshot order.
    pub pods: Vec<Arc<PodModel>>,
    /// Policies sorted by namespace and name.
    pub policies: Vec<Arc<PolicyModel>>,
}

impl Inventory {
    pub(super) fn build(snapshot: &Snapshot, models: &mut Models) -> Self {
        let parse = |ns: &Namespace| parse_namespace(ns, &mut Errors::default());
        let mut namespaces = BTreeMap::new();
        for ns in models
            .namespaces
            .models(&snapshot.namespaces, parse)
            .iter()
            .flatten()
        {
            namespaces
                .entry(ns.name.clone())
                .or_insert_with(|| ns.labels.clone());
        }
        let parse = |pod: &Pod| parse_pod(pod, &mut Errors::default());
        let mut names = FxHashSet::default();
        // Deduplicate before filtering, so a later copy of a terminated pod
        // cannot stand in for the first one.
        let pods: Vec<Arc<PodModel>> = models
            .pods
            .models(&snapshot.pods, parse)
            .into_iter()
            .flatten()
            .filter(|p| names.insert(p.pod_ref.clone()) && p.is_peer())
            .collect();
        let mut namespace = None;
        for pod in &pods {
            let ns = &pod.pod_ref.namespace;
            if namespace != Some(ns) && !namespaces.contains_key(&**ns) {
                namespaces.insert(ns.to_string(), namespace_labels(ns, None));
            }
            namespace = Some(ns);
        }
        let parse = |policy: &NetworkPolicy| parse_policy(policy, &mut Errors::default());
        let policies = models.policies.models(&snapshot.network_policies, parse);
        let policies = first_by_name(policies.into_iter().flatten().collect(), |a, b| {
            (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name))
        });
        Inventory {
            namespaces,
            pods,
            policies,
        }
    }

    /// The indices of the policies of `namespace` (policies are sorted by
    /// namespace, so they are adjacent).
    fn policies_of(&self, namespace: &str) -> std::ops::Range<usize> {
        let start = self
            .policies
            .partition_point(|p| p.namespace.as_str() < namespace);
        let end = self
            .policies
            .partition_point(|p| p.namespace.as_str() <= namespace);
        start..end
    }

    /// Every namespace's labels, as namespace selectors see them.
    pub(super) fn namespaces(&self) -> &BTreeMap<String, Labels> {
        &self.namespaces
    }

    /// The labels namespace selectors see for pods of `namespace`.
    pub(super) fn namespace_labels(&self, namespace: &str) -> Option<&Labels> {
        self.namespaces.get(namespace)
    }
}

/// `models` sorted by `name`, keeping the first in the given order of those
/// with the same name. Sorting shared models moves no strings: at cluster
/// scale this is several times faster than building a map by name.
fn first_by_name<M>(mut models: Vec<Arc<M>>, by_name: impl Fn(&M, &M) -> Ordering) -> Vec<Arc<M>> {
    if !models.is_sorted_by(|a, b| by_name(a, b).is_lt()) {
        models.sort_by(|a, b| by_name(a, b));
        models.dedup_by(|later, first| by_name(later, first).is_eq());
    }
    models
}

/// Which policies select which local endpoint, per direction.
pub(super) struct Selection {
    /// Indices into [`Inventory::pods`] of the pods on this node, by name.
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
        let mut locals: Vec<usize> = inv
            .pods
            .iter()
            .enumerate()
            .filter(|(_, pod)| pod.node.as_deref() == Some(options.node_name.as_str()))
            .map(|(i, _)| i)
            .collect();
        // Name order, so that ids do not depend on the snapshot's order.
        locals.sort_by(|&a, &b| inv.pods[a].pod_ref.cmp(&inv.pods[b].pod_ref));
        let mut relevant: [BTreeSet<usize>; 2] = Default::default();
        let mut selecting = Vec::with_capacity(locals.len());
        for &pod_index in &locals {
            let pod = &inv.pods[pod_index];
            let mut per_direction: [Vec<usize>; 2] = Default::default();
            for policy_index in inv.policies_of(&pod.pod_ref.namespace) {
                let policy = &inv.policies[policy_index];
                if !policy.selector.matches(&pod.labels) {
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
