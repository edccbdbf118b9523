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
    namespaces: BTreeMap<String, Labels>,
    /// By the address of the pod's model. The model is held, so that no
    /// other model can live at its address while it is remembered.
    parties: FxHashMap<usize, (Arc<PodModel>, Arc<PodParty>)>,
}

impl PartyMemo {
    /// Every pod address with the party of the first pod (in snapshot
    /// order) that holds it.
    pub(super) fn pod_addresses(
        &mut self,
        inv: &Inventory,
        hosts: &HostTable,
    ) -> BTreeMap<IpAddr, Arc<PodParty>> {
        let mut previous = std::mem::take(&mut self.parties);
        let same_segments = self.segments.len() == inv.segments.len()
            && (self.segments.iter().zip(&inv.segments)).all(|(a, b)| Arc::ptr_eq(a, b));
        if !same_segments {
            previous.clear();
            self.segments = inv.segments.clone();
            self.names = (inv.segments.iter())
                .map(|segment| Arc::from(segment.name.as_str()))
                .collect();
        }
        let relabelled = inv.namespaces_changed_since(&self.namespaces);
        let mut addresses = BTreeMap::new();
        for host in hosts.hosts() {
            let Some(first) = host.pods().next() else {
                continue;
            };
            let pod = &inv.pods[first];
            let key = Arc::as_ptr(pod) as usize;
            let party = match self.parties.get(&key) {
                Some((_, party)) => Arc::clone(party),
                None => {
                    let party = match previous.remove(&key) {
                        Some((_, party)) if !relabelled.contains(&*pod.pod_ref.namespace) => party,
                        _ => Arc::new(self.party(inv, pod)),
                    };
                    let remembered = (Arc::clone(pod), Arc::clone(&party));
                    self.parties.insert(key, remembered);
                    party
                }
            };
            addresses.insert(host.addr, party);
        }
        if !relabelled.is_empty() {
            self.namespaces = inv.namespaces().clone();
        }
        addresses
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
