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

use std::sync::Arc;

use ipnetwork::IpNetwork;
use netseg_contract::identity;

use super::alloc::IdAllocator;
use super::blocks::BlockIndex;
use super::hosts::{HostIdentities, HostMemo, HostSignature, HostTable};
use super::inventory::Inventory;
use crate::model::PeerModel;
use crate::types::{IdentityInfo, IdentityKind};

/// Resolutions of named ports: (name, protocol) to port numbers.
pub(super) type NamedPorts = BTreeMap<(String, u8), BTreeSet<u16>>;

/// The relevant rule peers of one compilation, sorted and deduplicated; a
/// peer's position is its index in signatures during the compilation.
/// Shared, so that the host memo can keep it.
#[derive(Clone, Default)]
pub(super) struct PeerTable(Arc<[PeerModel]>);

impl PeerTable {
    pub(super) fn new(peers: BTreeSet<&PeerModel>) -> Self {
        PeerTable(peers.into_iter().cloned().collect())
    }

    pub(super) fn index(&self, peer: &PeerModel) -> Option<usize> {
        self.0.binary_search(peer).ok()
    }

    pub(super) fn peers(&self) -> &[PeerModel] {
        &self.0
    }
}

/// What an identity id is allocated for: equal signatures, equal treatment.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct Signature {
    kind: IdentityKind,
    peers: Vec<PeerModel>,
    /// Egress named ports resolved against the pods holding the address.
    named_ports: NamedPorts,
}

/// The identities of one compilation.
#[derive(Default)]
pub(super) struct Classes {
    /// Unsorted while identities are added; see [`Classes::ipcache`].
    ipcache: Vec<(IpNetwork, u32)>,
    pub identities: BTreeMap<u32, IdentityInfo>,
    /// For each peer of the [`PeerTable`], the identities it matches.
    pub by_peer: Vec<BTreeSet<u32>>,
    /// The egress named-port resolutions of identities that have any.
    pub named_ports: BTreeMap<u32, NamedPorts>,
    /// Every port number each egress named port resolves to, over all
    /// identities: where a rule naming it can change its match.
    pub named_port_numbers: NamedPorts,
    /// The identities of the node's own addresses.
    pub node: BTreeSet<u32>,
}

/// The addresses of one identity.
#[derive(Default)]
struct Group {
    /// Indices into [`Inventory::pods`].
    pods: Vec<usize>,
    prefixes: Vec<IpNetwork>,
}

/// Whether prefix `outer` contains all of prefix `inner`.
pub(super) fn covers(outer: &IpNetwork, inner: &IpNetwork) -> bool {
    outer.is_ipv4() == inner.is_ipv4()
        && outer.prefix() <= inner.prefix()
        && outer.contains(inner.network())
}

fn is_host_prefix(prefix: &IpNetwork) -> bool {
    prefix.prefix() == if prefix.is_ipv4() { 32 } else { 128 }
}

/// Computes the identities and the ipcache, allocating ids from `alloc`.
/// `egress_names` are the named ports that relevant egress rules use.
pub(super) fn classify(
    inv: &Inventory,
    peers: &PeerTable,
    egress_names: &BTreeSet<(String, u8)>,
    hosts: &HostTable,
    alloc: &mut IdAllocator<Signature>,
    memo: &mut HostMemo,
) -> Classes {
    let mut classes = Classes {
        by_peer: vec![BTreeSet::new(); peers.0.len()],
        ..Classes::default()
    };
    let blocks = BlockIndex::new(peers);
    memo.update(inv, peers, &blocks, egress_names, hosts);
    let HostIdentities {
        hosts: identities,
        changed,
        described,
    } = memo.identities(|host| alloc.id(&Signature::of_host(peers, host)));
    let mut signatures: BTreeMap<u32, &HostSignature> = BTreeMap::new();
    let mut groups: BTreeMap<u32, Group> = BTreeMap::new();
    for (host, (signature, id)) in hosts.hosts().zip(identities) {
        signatures.entry(id).or_insert(signature);
        classes.ipcache.push((IpNetwork::from(host.addr), id));
        if changed.contains(&id) {
            let group = groups.entry(id).or_default();
            group.pods.extend(host.pods());
            group.prefixes.push(IpNetwork::from(host.addr));
        }
    }
    // Only the identities whose addresses changed are described again.
    described.retain(|id, _| !changed.contains(id));
    for (id, group) in groups {
        described.insert(id, group.describe(inv, signatures[&id].kind));
    }
    classes.identities = described.clone();
    for (id, signature) in signatures {
        alloc.keep(id);
        let matched = signature.matched.iter().map(|&i| i as usize);
        classes.note(id, signature.kind, matched);
        if !signature.named_ports.is_empty() {
            for (name, ports) in &signature.named_ports {
                let numbers = classes.named_port_numbers.entry(name.clone()).or_default();
                numbers.extend(ports);
            }
            classes
                .named_ports
                .insert(id, signature.named_ports.clone());
        }
    }
    let mut by_prefix: BTreeMap<Vec<usize>, Vec<IpNetwork>> = BTreeMap::new();
    for prefix in split_prefixes(peers) {
        // A host entry already says everything about its one address. The
        // identity of any other is the blocks that contain all of it (see
        // the module docs for why this is exact).
        if !(is_host_prefix(&prefix) && hosts.contains(prefix.ip())) {
            by_prefix
                .entry(blocks.containing(&prefix))
                .or_default()
                .push(prefix);
        }
    }
    let mut world = Vec::new();
    for (matched, prefixes) in by_prefix {
        if matched.is_empty() {
            // Matched by nothing: indistinguishable from an unknown address.
            world.extend(prefixes);
            continue;
        }
        let signature = Signature {
            kind: IdentityKind::External,
            peers: matched.iter().map(|&i| peers.0[i].clone()).collect(),
            named_ports: NamedPorts::new(),
        };
        let id = alloc.id(&signature);
        let group = Group {
            pods: Vec::new(),
            prefixes,
        };
        classes.add(inv, id, IdentityKind::External, &matched, group);
    }
    let world = Group {
        pods: Vec::new(),
        prefixes: world,
    };
    classes.add(inv, identity::WORLD, IdentityKind::World, &[], world);
    classes
}

/// The prefixes that split the address space: every ipBlock's cidr and excepts.
fn split_prefixes(peers: &PeerTable) -> BTreeSet<IpNetwork> {
    let mut split = BTreeSet::new();
    for peer in peers.peers() {
        if let PeerModel::Block(block) = peer {
            split.insert(block.cidr);
            split.extend(block.except.iter().copied());
        }
    }
    split
}

impl Signature {
    fn of_host(peers: &PeerTable, host: &HostSignature) -> Self {
        Signature {
            kind: host.kind,
            peers: (host.matched.iter())
                .map(|&i| peers.0[i as usize].clone())
                .collect(),
            named_ports: host.named_ports.clone(),
        }
    }
}

impl Classes {
    /// Address prefix to identity.
    pub(super) fn ipcache(&mut self) -> BTreeMap<IpNetwork, u32> {
        // Each prefix is in one identity: sorting makes the map a bulk build.
        self.ipcache.sort_unstable();
        std::mem::take(&mut self.ipcache).into_iter().collect()
    }

    /// Records identity `id`, matched by the peers `matched`, for the
    /// addresses of `group`.
    fn add(
        &mut self,
        inv: &Inventory,
        id: u32,
        kind: IdentityKind,
        matched: &[usize],
        group: Group,
    ) {
        self.note(id, kind, matched.iter().copied());
        self.ipcache.extend(group.prefixes.iter().map(|p| (*p, id)));
        self.identities.insert(id, group.describe(inv, kind));
    }

    /// Records that identity `id` is of `kind` and matched by the peers `matched`.
    fn note(&mut self, id: u32, kind: IdentityKind, matched: impl Iterator<Item = usize>) {
        if kind == IdentityKind::Node {
            self.node.insert(id);
        }
        for i in matched {
            self.by_peer[i].insert(id);
        }
    }
}

impl Group {
    /// What an identity of `kind` with these addresses stands for.
    fn describe(self, inv: &Inventory, kind: IdentityKind) -> IdentityInfo {
        let mut prefixes = self.prefixes;
        prefixes.sort_unstable();
        let mut pods = self.pods;
        pods.sort_unstable_by_key(|&p| inv.pod_rank(p));
        pods.dedup();
        IdentityInfo {
            kind,
            pods: pods
                .into_iter()
                .map(|p| inv.pods[p].pod_ref.clone())
                .collect(),
            prefixes: prefixes.into(),
        }
    }
}
