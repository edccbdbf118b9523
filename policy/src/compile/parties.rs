//! What flow records name the parties of a flow by: each pod address's pod,
//! workload, labels and Segments, and the Segments of the addresses that no
//! pod holds.
//!
//! A pod's party is remembered from one compilation to the next, as host
//! signatures are: while the pod, its namespace's labels and the Segments
//! are unchanged it keeps its `Arc`, so a recompile decides the membership
//! of the pods a change can affect rather than of every pod, and the flow
//! exporter renders only the parties that are new.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use ipnetwork::IpNetwork;
use rustc_hash::FxHashMap;

use super::hosts::HostTable;
use super::identities::covers;
use super::inventory::Inventory;
use crate::model::{Labels, PodModel, SegmentModel};
use crate::types::{PodParty, SegmentNetworks};

/// The parties of the previous compilation and what they were derived from.
#[derive(Default)]
pub(super) struct PartyMemo {
    /// The Segments the memberships were decided against, by name.
    segments: Vec<Arc<SegmentModel>>,
    /// Their names, shared by every party.
    names: Vec<Arc<str>>,
    /// Every namespace's labels, as namespace selectors saw them.
    namespaces: Arc<BTreeMap<String, Labels>>,
    /// The party of each pod of [`Inventory::pods`], with the pod's model.
    /// The model is held, so that no other model can live at its address
    /// while it is remembered.
    parties: Vec<(Arc<PodModel>, Arc<PodParty>)>,
}

impl PartyMemo {
    /// Every pod address with the party of the first pod (in snapshot
    /// order) that holds it.
    pub(super) fn pod_addresses(
        &mut self,
        inv: &Inventory,
        hosts: &HostTable,
    ) -> BTreeMap<IpAddr, Arc<PodParty>> {
        let previous = std::mem::take(&mut self.parties);
        let same_segments = self.segments.len() == inv.segments.len()
            && (self.segments.iter().zip(&inv.segments)).all(|(a, b)| Arc::ptr_eq(a, b));
        if !same_segments {
            self.segments = inv.segments.clone();
            self.names = (inv.segments.iter())
                .map(|segment| Arc::from(segment.name.as_str()))
                .collect();
        }
        let relabelled = inv.namespaces_changed_since(&self.namespaces);
        if !relabelled.is_empty() {
            self.namespaces = Arc::clone(inv.namespaces());
        }
        let address = |model: &Arc<PodModel>| Arc::as_ptr(model) as usize;
        // Pods mostly keep their positions; the others are looked up.
        let mut moved: Option<FxHashMap<usize, &Arc<PodParty>>> = None;
        let mut remembered = |i: usize, pod: &Arc<PodModel>| match previous.get(i) {
            Some((model, party)) if Arc::ptr_eq(model, pod) => Some(Arc::clone(party)),
            _ => moved
                .get_or_insert_with(|| previous.iter().map(|(m, p)| (address(m), p)).collect())
                .get(&address(pod))
                .map(|party| Arc::clone(party)),
        };
        let parties = (inv.pods.iter().enumerate())
            .map(|(i, pod)| {
                let unchanged = same_segments && !relabelled.contains(&*pod.pod_ref.namespace);
                let party = unchanged.then(|| remembered(i, pod)).flatten();
                let party = party.unwrap_or_else(|| Arc::new(self.party(inv, pod)));
                (Arc::clone(pod), party)
            })
            .collect();
        self.parties = parties;
        (hosts.hosts())
            .filter_map(|host| {
                let first = host.pods().next()?;
                Some((host.addr, Arc::clone(&self.parties[first].1)))
            })
            .collect()
    }

    fn party(&self, inv: &Inventory, pod: &PodModel) -> PodParty {
        let none = Labels::new();
        let namespace_labels = inv
            .namespace_labels(&pod.pod_ref.namespace)
            .unwrap_or(&none);
        PodParty {
            pod: pod.pod_ref.clone(),
            workload: pod.workload.clone(),
            labels: Arc::clone(&pod.labels),
            segments: self
                .segments
                .iter()
                .zip(&self.names)
                .filter(|(segment, _)| segment.has_member(namespace_labels, &pod.labels))
                .map(|(_, name)| Arc::clone(name))
                .collect(),
        }
    }

    /// The Segments of the addresses that no pod holds: each network a
    /// Segment names, with every Segment whose networks cover it.
    pub(super) fn segment_networks(&self) -> SegmentNetworks {
        let networks: BTreeSet<IpNetwork> = (self.segments.iter())
            .flat_map(|segment| segment.networks.iter().copied())
            .collect();
        let with_segments = networks.into_iter().map(|network| {
            let names = (self.segments.iter().zip(&self.names))
                .filter(|(segment, _)| segment.networks.iter().any(|n| covers(n, &network)))
                .map(|(_, name)| Arc::clone(name))
                .collect();
            (network, names)
        });
        SegmentNetworks::new(with_segments.collect())
    }
}

#[cfg(test)]
mod tests;
