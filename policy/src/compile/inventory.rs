//! The valid objects of a snapshot, and which policies select which local pods.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use netseg_crd::{ClusterNetworkPolicy, Segment, SegmentPolicy};
use rustc_hash::FxHashSet;

use super::entries::Applicable;
use super::models::{ModelCache, Replaced};
use super::resolve::ResolvedPolicy;
use crate::model::{
    Errors, Labels, NamespaceModel, NamespaceScope, NodeModel, PodModel, PolicyModel, SegmentModel,
    TieredPolicy, namespace_labels, parse_cluster_network_policy, parse_namespace, parse_node,
    parse_pod, parse_policy, parse_segment, parse_segment_policy,
};
use crate::types::Direction;
use crate::{CompileOptions, Snapshot};

/// The parsed models of every kind of object.
#[derive(Default)]
pub(crate) struct Models {
    namespaces: ModelCache<Namespace, NamespaceModel>,
    pods: ModelCache<Pod, PodModel>,
    policies: ModelCache<NetworkPolicy, PolicyModel>,
    cluster_policies: ModelCache<ClusterNetworkPolicy, TieredPolicy>,
    segment_policies: ModelCache<SegmentPolicy, TieredPolicy>,
    segments: ModelCache<Segment, SegmentModel>,
    nodes: ModelCache<Node, NodeModel>,
    /// What the previous build derived from the pods and namespaces.
    kept: Option<Kept>,
    /// The last [`Kept::addresses`] handed out.
    addresses: u64,
}

/// What a build derived from the pods and namespaces.
struct Kept {
    pods: Arc<Vec<Arc<PodModel>>>,
    /// See [`Inventory::pod_rank`]; a patch keeps every pod's name.
    ranks: Arc<[u32]>,
    /// See [`Inventory::addresses`].
    addresses: u64,
    namespaces: Arc<BTreeMap<String, Labels>>,
    /// For each position of the snapshot's pods, the pod's index in
    /// `pods` (`None`: invalid, a later copy, or not a peer).
    slots: Vec<Option<usize>>,
}

impl Models {
    /// `kept`, with the pods of `snapshot_pods` that replaced others put in
    /// their place, when that is what a rebuild would give: the same
    /// number of pods, each replacing one of the same name, valid and a
    /// peer alike (so that the same copies win and pass the filter, and the
    /// namespaces that pods bring are the same). `None` otherwise.
    fn patched(&mut self, mut kept: Kept, snapshot_pods: &[Arc<Pod>]) -> Option<Kept> {
        let parse = |pod: &Pod| parse_pod(pod, &mut Errors::default());
        let replaced = self.pods.replaced(snapshot_pods, parse)?;
        let alike = replaced.iter().all(|r| match (&r.old, &r.new) {
            (Some(old), Some(new)) => old.pod_ref == new.pod_ref && old.is_peer() == new.is_peer(),
            (None, None) => true,
            _ => false,
        });
        if !alike {
            return None;
        }
        let moved = replaced.iter().any(|r| match (&r.old, &r.new) {
            (Some(old), Some(new)) => old.ips != new.ips,
            _ => false,
        });
        if moved {
            self.addresses += 1;
            kept.addresses = self.addresses;
        }
        if !replaced.is_empty() {
            let pods = Arc::make_mut(&mut kept.pods);
            for Replaced { position, new, .. } in replaced {
                if let (Some(slot), Some(new)) = (kept.slots[position], new) {
                    pods[slot] = new;
                }
            }
        }
        Some(kept)
    }

    /// The pods and namespaces of `snapshot`, from scratch (but for the
    /// models of objects seen before).
    fn rebuilt(&mut self, snapshot: &Snapshot) -> Kept {
        let parse = |ns: &Namespace| parse_namespace(ns, &mut Errors::default());
        let mut namespaces = BTreeMap::new();
        for ns in self
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
        let mut pods = Vec::new();
        let mut slots = vec![None; snapshot.pods.len()];
        let models = self.pods.models(&snapshot.pods, parse);
        for (position, pod) in models.into_iter().enumerate() {
            // Deduplicate before filtering, so a later copy of a terminated
            // pod cannot stand in for the first one.
            if let Some(pod) = pod
                && names.insert(pod.pod_ref.clone())
                && pod.is_peer()
            {
                slots[position] = Some(pods.len());
                pods.push(pod);
            }
        }
        let mut namespace = None;
        for pod in &pods {
            let ns = &pod.pod_ref.namespace;
            if namespace != Some(ns) && !namespaces.contains_key(&**ns) {
                namespaces.insert(ns.to_string(), namespace_labels(ns, None));
            }
            namespace = Some(ns);
        }
        self.addresses += 1;
        Kept {
            ranks: ranks(&pods),
            addresses: self.addresses,
            pods: Arc::new(pods),
            namespaces: Arc::new(namespaces),
            slots,
        }
    }
}

/// The valid objects of a snapshot. Invalid objects are dropped; of several
/// valid objects with the same name, the first in the snapshot wins.
pub(crate) struct Inventory {
    /// Labels of every namespace that has a Namespace object or a pod.
    namespaces: Arc<BTreeMap<String, Labels>>,
    /// Pods whose addresses are pod addresses ([`PodModel::is_peer`]), in
    /// snapshot order.
    pub pods: Arc<Vec<Arc<PodModel>>>,
    pod_ranks: Arc<[u32]>,
    addresses: u64,
    /// Policies sorted by namespace and name.
    pub policies: Vec<Arc<PolicyModel>>,
    /// ClusterNetworkPolicies and SegmentPolicies in their order (tier,
    /// priority, kind, name).
    pub tiered: Vec<Arc<TieredPolicy>>,
    /// Segments sorted by name.
    pub segments: Vec<Arc<SegmentModel>>,
    /// Node objects sorted by name.
    pub nodes: Vec<Arc<NodeModel>>,
}

impl Inventory {
    pub(crate) fn build(snapshot: &Snapshot, models: &mut Models) -> Self {
        let kept = match models.kept.take() {
            Some(kept) if models.namespaces.unchanged(&snapshot.namespaces) => {
                models.patched(kept, &snapshot.pods)
            }
            _ => None,
        };
        let kept = kept.unwrap_or_else(|| models.rebuilt(snapshot));
        let (pods, namespaces) = (Arc::clone(&kept.pods), Arc::clone(&kept.namespaces));
        let (pod_ranks, addresses) = (Arc::clone(&kept.ranks), kept.addresses);
        models.kept = Some(kept);
        let parse = |policy: &NetworkPolicy| parse_policy(policy, &mut Errors::default());
        let policies = models.policies.models(&snapshot.network_policies, parse);
        let policies = first_by_name(policies.into_iter().flatten().collect(), |a, b| {
            (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name))
        });
        let parse =
            |p: &ClusterNetworkPolicy| parse_cluster_network_policy(p, &mut Errors::default());
        let mut tiered: Vec<Arc<TieredPolicy>> = models
            .cluster_policies
            .models(&snapshot.cluster_network_policies, parse)
            .into_iter()
            .flatten()
            .collect();
        let parse = |p: &SegmentPolicy| parse_segment_policy(p, &mut Errors::default());
        let segment_policies = models
            .segment_policies
            .models(&snapshot.segment_policies, parse);
        tiered.extend(segment_policies.into_iter().flatten());
        // Names are unique per kind: a second object of the kind with the
        // name is dropped whatever its tier or priority.
        let mut tiered = first_by_name(tiered, |a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
        tiered.sort_by(|a, b| a.order_key().cmp(&b.order_key()));
        let parse = |s: &Segment| parse_segment(s, &mut Errors::default());
        let segments = models.segments.models(&snapshot.segments, parse);
        let segments = first_by_name(segments.into_iter().flatten().collect(), |a, b| {
            a.name.cmp(&b.name)
        });
        let parse = |n: &Node| parse_node(n, &mut Errors::default());
        let nodes = models.nodes.models(&snapshot.nodes, parse);
        let nodes = first_by_name(nodes.into_iter().flatten().collect(), |a, b| {
            a.name.cmp(&b.name)
        });
        Inventory {
            namespaces,
            pods,
            pod_ranks,
            addresses,
            policies,
            tiered,
            segments,
            nodes,
        }
    }

    /// Where pod `p` (an index into [`Inventory::pods`]) comes in the pods'
    /// name order: sorting indices by rank sorts the pods by name without
    /// comparing a string.
    pub(super) fn pod_rank(&self, p: usize) -> u32 {
        self.pod_ranks[p]
    }

    /// Names the pods' addresses and positions: two inventories with the
    /// same number have pods at the same positions holding the same
    /// addresses (a relabel keeps it; a pod that came, went or was
    /// readdressed changes it).
    pub(super) fn addresses(&self) -> u64 {
        self.addresses
    }

    /// The Segments by name.
    pub(crate) fn segments_by_name(&self) -> BTreeMap<&str, &SegmentModel> {
        self.segments
            .iter()
            .map(|s| (s.name.as_str(), s.as_ref()))
            .collect()
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
    pub(super) fn namespaces(&self) -> &Arc<BTreeMap<String, Labels>> {
        &self.namespaces
    }

    /// Whether a pod peer's namespace `scope` takes in `namespace`.
    pub(crate) fn in_scope(&self, scope: &NamespaceScope, namespace: &str) -> bool {
        match scope {
            NamespaceScope::Own(own) => own == namespace,
            NamespaceScope::Selected(selector) => self
                .namespace_labels(namespace)
                .is_some_and(|labels| selector.matches(labels)),
        }
    }

    /// The labels namespace selectors see for pods of `namespace`.
    pub(crate) fn namespace_labels(&self, namespace: &str) -> Option<&Labels> {
        self.namespaces.get(namespace)
    }

    /// The namespaces whose labels differ from `before` (a namespace's
    /// labels as [`Inventory::namespaces`] had them): changed, appeared or
    /// disappeared.
    pub(super) fn namespaces_changed_since(
        &self,
        before: &Arc<BTreeMap<String, Labels>>,
    ) -> BTreeSet<String> {
        let now = &self.namespaces;
        if Arc::ptr_eq(before, now) {
            return BTreeSet::new();
        }
        before
            .keys()
            .chain(now.keys())
            .filter(|ns| before.get(*ns) != now.get(*ns))
            .cloned()
            .collect()
    }
}

/// Each pod's position in name order (names are unique among `pods`).
fn ranks(pods: &[Arc<PodModel>]) -> Arc<[u32]> {
    let mut order: Vec<usize> = (0..pods.len()).collect();
    order.sort_unstable_by(|&a, &b| pods[a].pod_ref.cmp(&pods[b].pod_ref));
    let mut ranks = vec![0; pods.len()];
    for (rank, p) in order.into_iter().enumerate() {
        ranks[p] = rank as u32;
    }
    ranks.into()
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
    /// egress), the indices of the NetworkPolicies that select it and
    /// isolate that direction, in name order.
    pub selecting: Vec<[Vec<usize>; 2]>,
    /// The same for cluster policies (indices into the resolved policies,
    /// in their order) that have rules in the direction.
    pub cluster: Vec<[Vec<usize>; 2]>,
    /// For each local pod, the Segments it is a member of (indices into
    /// [`Inventory::segments`], by name).
    pub segments: Vec<Vec<usize>>,
    /// Per direction, the NetworkPolicies that select at least one local
    /// pod: only their rules reach the maps.
    pub relevant: [BTreeSet<usize>; 2],
    /// The same for cluster policies.
    pub relevant_cluster: [BTreeSet<usize>; 2],
}

impl Selection {
    pub(super) fn compute(
        inv: &Inventory,
        resolved: &[ResolvedPolicy],
        options: &CompileOptions,
    ) -> Self {
        let mut locals: Vec<usize> = inv
            .pods
            .iter()
            .enumerate()
            .filter(|(_, pod)| pod.node.as_deref() == Some(options.node_name.as_str()))
            .map(|(i, _)| i)
            .collect();
        // Name order, so that ids do not depend on the snapshot's order.
        locals.sort_by(|&a, &b| inv.pods[a].pod_ref.cmp(&inv.pods[b].pod_ref));
        let mut selection = Selection {
            locals: Vec::new(),
            selecting: Vec::with_capacity(locals.len()),
            cluster: Vec::with_capacity(locals.len()),
            segments: Vec::with_capacity(locals.len()),
            relevant: Default::default(),
            relevant_cluster: Default::default(),
        };
        for &pod_index in &locals {
            let pod = &inv.pods[pod_index];
            selection.select_network(inv, pod);
            selection.select_cluster(inv, resolved, pod);
        }
        selection.locals = locals;
        selection
    }

    fn select_network(&mut self, inv: &Inventory, pod: &PodModel) {
        let mut per_direction: [Vec<usize>; 2] = Default::default();
        for policy_index in inv.policies_of(&pod.pod_ref.namespace) {
            let policy = &inv.policies[policy_index];
            if !policy.selector.matches(&pod.labels) {
                continue;
            }
            for direction in Direction::BOTH {
                if policy.rules(direction).is_some() {
                    per_direction[direction.index()].push(policy_index);
                    self.relevant[direction.index()].insert(policy_index);
                }
            }
        }
        self.selecting.push(per_direction);
    }

    fn select_cluster(&mut self, inv: &Inventory, resolved: &[ResolvedPolicy], pod: &PodModel) {
        let empty = Labels::new();
        let namespace_labels = inv
            .namespace_labels(&pod.pod_ref.namespace)
            .unwrap_or(&empty);
        let segments: Vec<usize> = (0..inv.segments.len())
            .filter(|&s| inv.segments[s].has_member(namespace_labels, &pod.labels))
            .collect();
        let member_of = |name: &str| segments.iter().any(|&s| inv.segments[s].name == name);
        let mut per_direction: [Vec<usize>; 2] = Default::default();
        for (index, policy) in resolved.iter().enumerate() {
            if !policy
                .model
                .subject
                .selects(namespace_labels, &pod.labels, member_of)
            {
                continue;
            }
            for direction in Direction::BOTH {
                if !policy.model.rules(direction).is_empty() {
                    per_direction[direction.index()].push(index);
                    self.relevant_cluster[direction.index()].insert(index);
                }
            }
        }
        self.cluster.push(per_direction);
        self.segments.push(segments);
    }

    /// What applies to local pod number `local` in `direction`.
    pub(super) fn applicable<'a>(
        &self,
        inv: &'a Inventory,
        resolved: &'a [ResolvedPolicy],
        local: usize,
        direction: Direction,
    ) -> Applicable<'a> {
        let d = direction.index();
        Applicable {
            direction,
            cluster: self.cluster[local][d]
                .iter()
                .map(|&i| &resolved[i])
                .collect(),
            network: self.selecting[local][d]
                .iter()
                .map(|&i| inv.policies[i].as_ref())
                .collect(),
            segments: self.segments[local]
                .iter()
                .map(|&i| inv.segments[i].as_ref())
                .collect(),
        }
    }
}
