//! What the CNI plugin reported, per attachment: the pod's interface
//! whatever its name, and the pod's identity until its Pod object arrives.

use std::{collections::BTreeMap, net::IpAddr, sync::Arc};

use k8s_openapi::{
    api::core::v1::{Pod, PodIP},
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use netseg_cni::wire::{Attachment, AttachmentId};
use netseg_policy::{PodRef, Snapshot};

use crate::node::NodeView;

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("no interface of prevResult ({names:?}) is in the node namespace")]
    Missing { names: Vec<String> },
    #[error("prevResult has several host interfaces ({names:?}) and none is a veth to the pod")]
    Ambiguous { names: Vec<String> },
    #[error(
        "prevResult has no host interface, and no address of the pod is routed to an interface of its own"
    )]
    NoRoute,
}

/// The pod's host-side interface: the one host interface of `prevResult`,
/// or of several the one whose peer is in another namespace (the veth, not
/// the bridge it is enslaved to); with none, the interface a route for one
/// of the pod's addresses alone leads to.
pub fn resolve_interface(
    attachment: &Attachment,
    view: &NodeView,
) -> Result<(String, u32), ResolveError> {
    let names = &attachment.host_interfaces;
    if names.is_empty() {
        return attachment
            .ips
            .iter()
            .find_map(|ip| view.host_route_interface(*ip))
            .and_then(|ifindex| view.link_at(ifindex))
            .map(|link| (link.name.clone(), link.ifindex))
            .ok_or(ResolveError::NoRoute);
    }
    let present: Vec<_> = names.iter().filter_map(|name| view.link(name)).collect();
    let chosen = match present.as_slice() {
        [] => {
            return Err(ResolveError::Missing {
                names: names.clone(),
            });
        }
        [only] => Some(*only),
        several => several.iter().copied().find(|link| link.peer_elsewhere),
    };
    chosen
        .map(|link| (link.name.clone(), link.ifindex))
        .ok_or_else(|| ResolveError::Ambiguous {
            names: names.clone(),
        })
}

#[derive(Debug, Default)]
pub struct CniRegistry {
    entries: BTreeMap<AttachmentId, Entry>,
}

#[derive(Debug)]
struct Entry {
    pod: PodRef,
    /// At most one per family, as `status.podIPs`.
    ips: Vec<IpAddr>,
    interface: String,
    ifindex: u32,
    /// The pod compiled for this entry and the manifests' Pod it was built
    /// from: rebuilt only when that one changes, so that the compiler
    /// recognises it by pointer as it does unchanged manifests.
    built: Option<(Option<Arc<Pod>>, Arc<Pod>)>,
}

impl CniRegistry {
    /// Records what ADD reported; a pod has one sandbox at a time, so an
    /// earlier attachment of the same pod is forgotten. Returns whether
    /// anything changed.
    pub fn add(&mut self, attachment: &Attachment, (interface, ifindex): (String, u32)) -> bool {
        let pod = PodRef::new(attachment.namespace.as_str(), attachment.name.as_str());
        let mut ips: Vec<IpAddr> = Vec::new();
        for ip in &attachment.ips {
            if !ips.iter().any(|kept| kept.is_ipv4() == ip.is_ipv4()) {
                ips.push(*ip);
            }
        }
        if let Some(entry) = self.entries.get(&attachment.id)
            && (entry.pod == pod && entry.ips == ips)
            && (entry.interface == interface && entry.ifindex == ifindex)
        {
            return false;
        }
        self.entries.retain(|_, entry| entry.pod != pod);
        let entry = Entry {
            pod,
            ips,
            interface,
            ifindex,
            built: None,
        };
        self.entries.insert(attachment.id.clone(), entry);
        true
    }

    pub fn remove(&mut self, id: &AttachmentId) -> bool {
        self.entries.remove(id).is_some()
    }

    /// Forgets attachments whose interface is gone (a DEL that never came).
    pub fn retain_present(&mut self, view: &NodeView) -> bool {
        let before = self.entries.len();
        self.entries.retain(|_, entry| {
            view.link(&entry.interface)
                .is_some_and(|link| link.ifindex == entry.ifindex)
        });
        self.entries.len() != before
    }

    /// The pod and interface ADD reported for `id`.
    pub fn get(&self, id: &AttachmentId) -> Option<(&PodRef, u32)> {
        self.entries
            .get(id)
            .map(|entry| (&entry.pod, entry.ifindex))
    }

    /// The interface reported for `pod`.
    pub fn interface_of(&self, pod: &PodRef) -> Option<u32> {
        self.entries
            .values()
            .find(|entry| entry.pod == *pod)
            .map(|entry| entry.ifindex)
    }

    /// Every reported interface, by name and index.
    pub fn interfaces(&self) -> impl Iterator<Item = (&str, u32)> {
        self.entries
            .values()
            .map(|entry| (entry.interface.as_str(), entry.ifindex))
    }

    /// `snapshot` (pods sorted by namespace and name, as the store yields
    /// them) with every reported pod on `node` at its reported addresses:
    /// the manifests' Pod of that name with its labels and ports, or, until
    /// that arrives, a pod with no labels, so that policies selecting every
    /// pod of its namespace apply from its first packet.
    pub fn overlay(&mut self, mut snapshot: Snapshot, node: &str) -> Snapshot {
        for entry in self.entries.values_mut() {
            let key = (&*entry.pod.namespace, &*entry.pod.name);
            let position = snapshot.pods.binary_search_by(|pod| {
                let meta = &pod.metadata;
                (
                    meta.namespace.as_deref().unwrap_or(""),
                    meta.name.as_deref().unwrap_or(""),
                )
                    .cmp(&key)
            });
            let source = position.ok().map(|index| Arc::clone(&snapshot.pods[index]));
            let pod = entry.pod_for(source, node);
            match position {
                Ok(index) => snapshot.pods[index] = pod,
                Err(index) => snapshot.pods.insert(index, pod),
            }
        }
        snapshot
    }
}

impl Entry {
    fn pod_for(&mut self, source: Option<Arc<Pod>>, node: &str) -> Arc<Pod> {
        if let Some((from, built)) = &self.built {
            let same = match (from, &source) {
                (Some(from), Some(source)) => Arc::ptr_eq(from, source),
                (None, None) => true,
                _ => false,
            };
            if same {
                return Arc::clone(built);
            }
        }
        let base = source.as_deref().cloned().unwrap_or_else(|| Pod {
            metadata: ObjectMeta {
                namespace: Some(self.pod.namespace.to_string()),
                name: Some(self.pod.name.to_string()),
                ..ObjectMeta::default()
            },
            ..Pod::default()
        });
        let reported = Arc::new(self.reported(base, node));
        let built = match &source {
            Some(source) if **source == *reported => Arc::clone(source),
            _ => reported,
        };
        self.built = Some((source, Arc::clone(&built)));
        built
    }

    /// `pod` where the plugin found it: on this node, at these addresses.
    fn reported(&self, mut pod: Pod, node: &str) -> Pod {
        pod.spec.get_or_insert_default().node_name = Some(node.to_owned());
        let status = pod.status.get_or_insert_default();
        status.pod_ips = Some(
            self.ips
                .iter()
                .map(|ip| PodIP { ip: ip.to_string() })
                .collect(),
        );
        status.pod_ip = self.ips.first().map(ToString::to_string);
        pod
    }
}

#[cfg(test)]
mod tests;
