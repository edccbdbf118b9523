//! Identities: classes of addresses that every relevant rule peer treats
//! alike, and the ipcache that maps addresses to them.
//!
//! Pod and node addresses get host entries (/32, /128) whose signature is
//! computed directly from the pods holding the address. The rest of the
//! address space is split by the ipBlock `cidr` and `except` prefixes; the
//! identity of such a prefix `p` is the set of ipBlock peers `i` with
//! `cidr_i ⊇ p` and no `except_ij ⊇ p`.
//!
//! Why longest-prefix match makes this exact: two CIDR prefixes are either
//! nested or disjoint. Take an address `a` outside every host entry, and let
//! `p` be the longest split prefix containing it. Any split prefix `q` that
//! contains `a` is, by maximality of `p`, no longer than `p` and shares `a`
//! with it, so `q ⊇ p`; conversely `q ⊇ p` implies `a ∈ q`. Hence for every
//! cidr and except, `a ∈ q ⟺ q ⊇ p`, and `a` is in ipBlock `i` (in `cidr_i`,
//! in no `except_ij`) exactly when `i` is in the identity of `p`. An address
//! in no split prefix is in no ipBlock: it misses the ipcache and is WORLD.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnetwork::IpNetwork;
use netseg_contract::identity;

use super::alloc::IdAllocator;
use super::inventory::Inventory;
use crate::model::{IpBlockModel, NamespaceScope, PeerModel};
use crate::types::{IdentityInfo, IdentityKind, PodRef};

/// Resolutions of named ports: (name, protocol) to port numbers.
pub(super) type NamedPorts = BTreeMap<(String, u8), BTreeSet<u16>>;

/// The relevant rule peers of one compilation, sorted and deduplicated; a
/// peer's position is its index in signatures during the compilation.
pub(super) struct PeerTable(Vec<PeerModel>);

impl PeerTable {
    pub(super) fn new(peers: BTreeSet<PeerModel>) -> Self {
        PeerTable(peers.into_iter().collect())
    }

    pub(super) fn index(&self, peer: &PeerModel) -> Option<usize> {
        self.0.binary_search(peer).ok()
    }
}

/// What an identity id is allocated for: equal signatures, equal treatment.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Signature {
    kind: IdentityKind,
    peers: Vec<PeerModel>,
    /// Egress named ports resolved against the pods holding the address.
    named_ports: NamedPorts,
}

/// The identities of one compilation.
#[derive(Default)]
pub(super) struct Classes {
    pub ipcache: BTreeMap<IpNetwork, u32>,
    pub identities: BTreeMap<u32, IdentityInfo>,
    /// For each peer of the [`PeerTable`], the identities it matches.
    pub by_peer: Vec<BTreeSet<u32>>,
    /// The egress named-port resolutions of identities that have any.
    pub named_ports: BTreeMap<u32, NamedPorts>,
    /// The identities of the node's own addresses.
    pub node: BTreeSet<u32>,
}

/// Signature content during a compilation, with peers as table indices.
type GroupKey = (IdentityKind, Vec<usize>, NamedPorts);

#[derive(Default)]
struct Group {
    pods: BTreeSet<PodRef>,
    prefixes: Vec<IpNetwork>,
}

/// Who holds a host address.
#[derive(Default)]
struct Holders {
    pods: Vec<usize>,
    node: bool,
}

fn block_contains(block: &IpBlockModel, addr: IpAddr) -> bool {
    block.cidr.contains(addr) && !block.except.iter().any(|e| e.contains(addr))
}

/// Whether prefix `outer` contains all of prefix `inner`.
fn covers(outer: &IpNetwork, inner: &IpNetwork) -> bool {
    outer.is_ipv4() == inner.is_ipv4()
        && outer.prefix() <= inner.prefix()
        && outer.contains(inner.network())
}

/// Which peers can match where: pod peers by the namespaces their scope
/// takes in (decided once per namespace rather than once per pod), and the
/// ipBlock peers.
struct PeerIndex<'a> {
    pods_in_namespace: BTreeMap<&'a str, Vec<usize>>,
    blocks: Vec<usize>,
}

impl<'a> PeerIndex<'a> {
    fn new(inv: &'a Inventory, peers: &PeerTable) -> Self {
        let namespaces: BTreeSet<&str> = inv
            .pods
            .iter()
            .map(|p| p.pod_ref.namespace.as_str())
            .collect();
        let in_scope = |scope: &NamespaceScope, namespace: &str| match scope {
            NamespaceScope::Own(own) => own == namespace,
            NamespaceScope::Selected(sel) => inv
                .namespace_labels(namespace)
                .is_some_and(|l| sel.matches(l)),
        };
        let pods_in_namespace = namespaces
            .into_iter()
            .map(|namespace| {
                let scoped = (0..peers.0.len())
                    .filter(|&i| matches!(&peers.0[i], PeerModel::Pods { namespaces, .. } if in_scope(namespaces, namespace)))
                    .collect();
                (namespace, scoped)
            })
            .collect();
        let blocks = (0..peers.0.len())
            .filter(|&i| matches!(peers.0[i], PeerModel::Block(_)))
            .collect();
        PeerIndex {
            pods_in_namespace,
            blocks,
        }
    }

    /// The peers (table indices, sorted) that match `addr` held by `pods`.
    fn matching(
        &self,
        inv: &Inventory,
        peers: &PeerTable,
        addr: IpAddr,
        pods: &[usize],
    ) -> Vec<usize> {
        let mut matched = BTreeSet::new();
        for &i in &self.blocks {
            if let PeerModel::Block(block) = &peers.0[i]
                && block_contains(block, addr)
            {
                matched.insert(i);
            }
        }
        for &p in pods {
            let pod = &inv.pods[p];
            let scoped = self.pods_in_namespace.get(pod.pod_ref.namespace.as_str());
            for &i in scoped.into_iter().flatten() {
                if let PeerModel::Pods { pods: selector, .. } = &peers.0[i]
                    && selector.matches(&pod.labels)
                {
                    matched.insert(i);
                }
            }
        }
        matched.into_iter().collect()
    }
}

/// The signature of a pod or node address. An address held by several pods
/// (a stale pod whose IP was reused) stands for all of them: a peer matches
/// if it matches any holder, and named ports resolve over all holders.
fn host_signature(
    inv: &Inventory,
    peers: &PeerTable,
    index: &PeerIndex<'_>,
    egress_names: &BTreeSet<(String, u8)>,
    addr: IpAddr,
    holders: &Holders,
) -> GroupKey {
    let kind = if holders.node {
        IdentityKind::Node
    } else {
        IdentityKind::Pods
    };
    let matched = index.matching(inv, peers, addr, &holders.pods);
    let mut named = NamedPorts::new();
    for &p in &holders.pods {
        for (name, protocol) in egress_names {
            let ports = inv.pods[p].resolve(name, *protocol);
            if !ports.is_empty() {
                named
                    .entry((name.clone(), *protocol))
                    .or_default()
                    .extend(ports);
            }
        }
    }
    (kind, matched, named)
}

/// The signature of a split prefix: the ipBlocks that contain all of it
/// (see the module docs for why this is exact).
fn prefix_signature(peers: &PeerTable, prefix: &IpNetwork) -> GroupKey {
    let matched = (0..peers.0.len())
        .filter(|&i| match &peers.0[i] {
            PeerModel::Block(b) => {
                covers(&b.cidr, prefix) && !b.except.iter().any(|e| covers(e, prefix))
            }
            PeerModel::Pods { .. } => false,
        })
        .collect();
    (IdentityKind::External, matched, NamedPorts::new())
}

fn is_host_prefix(prefix: &IpNetwork) -> bool {
    prefix.prefix() == if prefix.is_ipv4() { 32 } else { 128 }
}

/// Groups every ipcache prefix by signature.
fn group_addresses(
    inv: &Inventory,
    peers: &PeerTable,
    egress_names: &BTreeSet<(String, u8)>,
    node_addresses: &[IpAddr],
) -> BTreeMap<GroupKey, Group> {
    let mut holders: BTreeMap<IpAddr, Holders> = BTreeMap::new();
    for (i, pod) in inv.pods.iter().enumerate() {
        for ip in &pod.ips {
            holders.entry(*ip).or_default().pods.push(i);
        }
    }
    for addr in node_addresses {
        holders.entry(*addr).or_default().node = true;
    }
    let index = PeerIndex::new(inv, peers);
    let mut groups: BTreeMap<GroupKey, Group> = BTreeMap::new();
    for (addr, holder) in &holders {
        let group = groups
            .entry(host_signature(
                inv,
                peers,
                &index,
                egress_names,
                *addr,
                holder,
            ))
            .or_default();
        group
            .pods
            .extend(holder.pods.iter().map(|&p| inv.pods[p].pod_ref.clone()));
        group.prefixes.push(IpNetwork::from(*addr));
    }
    let mut split = BTreeSet::new();
    for peer in &peers.0 {
        if let PeerModel::Block(block) = peer {
            split.insert(block.cidr);
            split.extend(block.except.iter().copied());
        }
    }
    for prefix in split {
        // A host entry already says everything about its one address.
        if is_host_prefix(&prefix) && holders.contains_key(&prefix.ip()) {
            continue;
        }
        groups
            .entry(prefix_signature(peers, &prefix))
            .or_default()
            .prefixes
            .push(prefix);
    }
    groups
}

/// Computes the identities and the ipcache, allocating ids from `alloc`.
/// `egress_names` are the named ports that relevant egress rules use.
pub(super) fn classify(
    inv: &Inventory,
    peers: &PeerTable,
    egress_names: &BTreeSet<(String, u8)>,
    node_addresses: &[IpAddr],
    alloc: &mut IdAllocator<Signature>,
) -> Classes {
    let mut classes = Classes {
        by_peer: vec![BTreeSet::new(); peers.0.len()],
        ..Classes::default()
    };
    let mut world = Vec::new();
    for ((kind, matched, named_ports), group) in
        group_addresses(inv, peers, egress_names, node_addresses)
    {
        if kind == IdentityKind::External && matched.is_empty() {
            // Matched by nothing: indistinguishable from an unknown address.
            world.extend(group.prefixes);
            continue;
        }
        let signature = Signature {
            kind,
            peers: matched.iter().map(|&i| peers.0[i].clone()).collect(),
            named_ports,
        };
        let id = alloc.id(&signature);
        for &i in &matched {
            classes.by_peer[i].insert(id);
        }
        classes.add(id, signature, group);
    }
    let world = Group {
        pods: BTreeSet::new(),
        prefixes: world,
    };
    classes.add_info(identity::WORLD, IdentityKind::World, world);
    classes
}

impl Classes {
    /// Records identity `id` for the addresses of `group`.
    fn add(&mut self, id: u32, signature: Signature, group: Group) {
        if signature.kind == IdentityKind::Node {
            self.node.insert(id);
        }
        if !signature.named_ports.is_empty() {
            self.named_ports.insert(id, signature.named_ports);
        }
        self.add_info(id, signature.kind, group);
    }

    fn add_info(&mut self, id: u32, kind: IdentityKind, group: Group) {
        self.ipcache.extend(group.prefixes.iter().map(|p| (*p, id)));
        let mut prefixes = group.prefixes;
        prefixes.sort();
        let pods = group.pods.into_iter().collect();
        let info = IdentityInfo {
            kind,
            pods,
            prefixes,
        };
        self.identities.insert(id, info);
    }
}
