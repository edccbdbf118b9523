//! Signatures of host addresses (pod and node addresses): the rule peers
//! that match each, and its egress named-port resolutions.
//!
//! They are remembered from one compilation to the next. An address whose
//! holders, their namespaces' labels and the egress named ports are
//! unchanged keeps its signature, adjusted only for the peers that came and
//! went, so a recompile after one change re-evaluates what that change can
//! affect rather than every address against every peer.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use ipnetwork::IpNetwork;
use smallvec::SmallVec;

use super::blocks::BlockIndex;
use super::identities::{NamedPorts, PeerTable};
use super::inventory::Inventory;
use crate::model::{Labels, NodeModel, PeerModel, PodModel};
use crate::types::{IdentityInfo, IdentityKind};

/// Who holds each host address: (address, holder) pairs sorted by address,
/// a holder being an index into [`Inventory::pods`], [`NODE_OBJECTS`] plus
/// an index into [`Inventory::nodes`], or [`NODE`]. Flat, so that building
/// it allocates once rather than once per address.
pub(super) struct HostTable(Vec<(IpAddr, usize)>);

/// The holder that stands for the node; sorts after every other.
const NODE: usize = usize::MAX;
/// Holders from here (to [`NODE`]) are Node objects.
const NODE_OBJECTS: usize = usize::MAX / 2;

/// One host address and its holders.
#[derive(Clone, Copy)]
pub(super) struct Host<'a> {
    pub addr: IpAddr,
    holders: &'a [(IpAddr, usize)],
}

impl HostTable {
    /// `with_nodes`: whether the Node objects' addresses are hosts (only
    /// `nodes` peers tell them apart from any other address).
    pub(super) fn new(inv: &Inventory, node_addresses: &[IpAddr], with_nodes: bool) -> Self {
        let nodes = inv.nodes.iter().filter(|_| with_nodes).enumerate();
        let mut table: Vec<(IpAddr, usize)> =
            inv.pods
                .iter()
                .enumerate()
                .flat_map(|(i, pod)| pod.ips.iter().map(move |ip| (*ip, i)))
                .chain(nodes.flat_map(|(i, node)| {
                    node.addresses.iter().map(move |ip| (*ip, NODE_OBJECTS + i))
                }))
                .chain(node_addresses.iter().map(|addr| (*addr, NODE)))
                .collect();
        table.sort_unstable();
        table.dedup();
        HostTable(table)
    }

    pub(super) fn hosts(&self) -> impl Iterator<Item = Host<'_>> {
        self.0.chunk_by(|a, b| a.0 == b.0).map(|holders| Host {
            addr: holders[0].0,
            holders,
        })
    }

    pub(super) fn contains(&self, addr: IpAddr) -> bool {
        self.0.binary_search_by(|(a, _)| a.cmp(&addr)).is_ok()
    }
}

impl Host<'_> {
    /// The pods holding the address, as indices into [`Inventory::pods`].
    pub(super) fn pods(&self) -> impl Iterator<Item = usize> + '_ {
        self.holders
            .iter()
            .map(|(_, p)| *p)
            .filter(|&p| p < NODE_OBJECTS)
    }

    /// The Node objects holding the address, as indices into [`Inventory::nodes`].
    fn nodes(&self) -> impl Iterator<Item = usize> + '_ {
        self.holders
            .iter()
            .map(|(_, p)| *p)
            .filter(|&p| (NODE_OBJECTS..NODE).contains(&p))
            .map(|p| p - NODE_OBJECTS)
    }

    fn kind(&self) -> IdentityKind {
        match self.holders.last() {
            Some((_, NODE)) => IdentityKind::Node,
            _ if self.pods().next().is_some() => IdentityKind::Pods,
            _ => IdentityKind::RemoteNode,
        }
    }
}

/// Indices into a [`PeerTable`]: 32 bits, and inline up to a dozen (the
/// benchmark cluster's addresses are matched by 10 or 11 peers each), so
/// that a recompile that renumbers the peers of every address reads the
/// memo's one array rather than an allocation per address.
pub(super) type PeerIndices = SmallVec<[u32; 12]>;

/// How the rules see one host address. An address held by several pods (a
/// stale pod whose IP was reused) stands for all of them: a peer matches if
/// it matches any holder, and named ports resolve over all holders.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct HostSignature {
    pub kind: IdentityKind,
    /// Indices into the compilation's [`PeerTable`], ascending.
    pub matched: PeerIndices,
    pub named_ports: NamedPorts,
}

struct Remembered {
    /// Held so that their addresses cannot be reused while remembered.
    /// Inline, as `matched`: an address mostly has one holder.
    holders: SmallVec<[Arc<PodModel>; 1]>,
    /// The same for Node objects.
    nodes: Vec<Arc<NodeModel>>,
    signature: HostSignature,
    /// The identity of `signature`, once allocated.
    identity: Option<u32>,
}

/// The signatures of the previous compilation and what they were computed from.
#[derive(Default)]
pub(super) struct HostMemo {
    peers: PeerTable,
    namespaces: Arc<BTreeMap<String, Labels>>,
    egress_names: BTreeSet<(String, u8)>,
    /// One per host of the last [`HostTable`], in its (address) order.
    hosts: Vec<(IpAddr, Remembered)>,
    /// The identities that an address left in the last update (it went, or
    /// its signature was derived again or changed).
    left: BTreeSet<u32>,
    /// What each identity of host addresses stood for in the previous
    /// compilation.
    described: BTreeMap<u32, IdentityInfo>,
    /// The last host table, and what it was built from.
    table: Option<(TableSource, Arc<HostTable>)>,
}

/// What a [`HostTable`] is built from.
#[derive(PartialEq)]
struct TableSource {
    /// [`Inventory::addresses`].
    addresses: u64,
    /// The Node objects, when their addresses are hosts.
    nodes: Option<Vec<Arc<NodeModel>>>,
    node_addresses: Vec<IpAddr>,
}

/// See [`HostMemo::identities`].
pub(super) struct HostIdentities<'a> {
    pub hosts: Vec<(&'a HostSignature, u32)>,
    pub changed: BTreeSet<u32>,
    pub described: &'a mut BTreeMap<u32, IdentityInfo>,
}

/// What changed since the memo was written, as far as kept entries care.
struct Changes {
    /// Index in the memo's peer table to index in the new one.
    remap: Vec<Option<usize>>,
    /// Indices of peers that are new in the new table.
    added: Vec<usize>,
    peers: bool,
    /// Namespaces whose labels changed, appeared or disappeared.
    namespaces: BTreeSet<String>,
    egress_names: bool,
}

impl HostMemo {
    /// [`HostTable::new`], or the last one when built from the same.
    pub(super) fn table(
        &mut self,
        inv: &Inventory,
        node_addresses: &[IpAddr],
        with_nodes: bool,
    ) -> Arc<HostTable> {
        let source = TableSource {
            addresses: inv.addresses(),
            nodes: with_nodes.then(|| inv.nodes.clone()),
            node_addresses: node_addresses.to_vec(),
        };
        match &self.table {
            Some((built_from, table)) if *built_from == source => Arc::clone(table),
            _ => {
                let table = Arc::new(HostTable::new(inv, node_addresses, with_nodes));
                self.table = Some((source, Arc::clone(&table)));
                table
            }
        }
    }

    /// Brings the signature of every address of `hosts` up to date and
    /// forgets the addresses no longer held.
    pub(super) fn update(
        &mut self,
        inv: &Inventory,
        peers: &PeerTable,
        blocks: &BlockIndex,
        egress_names: &BTreeSet<(String, u8)>,
        hosts: &HostTable,
    ) {
        let changes = self.changes(inv, peers, egress_names);
        let mut updater = Updater {
            inv,
            peers,
            egress_names,
            index: PeerIndex::new(peers, blocks),
            changes: &changes,
        };
        let left = &mut self.left;
        left.clear();
        let mut now = hosts.hosts().peekable();
        // While the addresses are the memo's, in its order (none came or
        // went before them: the common case), each is updated where it is.
        let mut same = 0;
        while let Some((addr, remembered)) = self.hosts.get_mut(same)
            && let Some(host) = now.next_if(|host| host.addr == *addr)
        {
            updater.refresh(host, remembered, left);
            same += 1;
        }
        let mut previous = self.hosts.split_off(same).into_iter().peekable();
        for host in now {
            while let Some((_, gone)) = previous.next_if(|(addr, _)| *addr < host.addr) {
                left.extend(gone.identity);
            }
            match previous.next_if(|(addr, _)| *addr == host.addr) {
                Some((addr, mut remembered)) => {
                    updater.refresh(host, &mut remembered, left);
                    self.hosts.push((addr, remembered));
                }
                None => self.hosts.push((host.addr, updater.remembered(host))),
            }
        }
        previous.for_each(|(_, gone)| left.extend(gone.identity));
        self.peers = peers.clone();
        // Copied only when changed: at 5,000 namespaces the copy costs more
        // than a recompile after a pod relabel should.
        if !changes.namespaces.is_empty() {
            self.namespaces = Arc::clone(inv.namespaces());
        }
        if changes.egress_names {
            self.egress_names = egress_names.clone();
        }
    }

    /// The signature and identity of each host of the last update, in
    /// address order, and the identities whose addresses changed since the
    /// update before (an address came, went or moved from one to another,
    /// or its holders changed), with what each identity stood for after the
    /// previous compilation, for the caller to bring up to date (the
    /// changed ones are stale). A signature without an identity yet gets
    /// `id` of it, called once per distinct signature, in address order (so
    /// that new ids do not depend on the memo's history).
    pub(super) fn identities(
        &mut self,
        mut id: impl FnMut(&HostSignature) -> u32,
    ) -> HostIdentities<'_> {
        let mut changed = std::mem::take(&mut self.left);
        let mut assigned: BTreeMap<HostSignature, u32> = BTreeMap::new();
        let mut assign = |signature: &HostSignature| match assigned.get(signature) {
            Some(&identity) => identity,
            None => *assigned
                .entry(signature.clone())
                .or_insert_with_key(|signature| id(signature)),
        };
        let identities = self
            .hosts
            .iter_mut()
            .map(|(_, remembered)| {
                let Remembered {
                    signature,
                    identity,
                    ..
                } = remembered;
                let identity = *identity.get_or_insert_with(|| {
                    let identity = assign(signature);
                    changed.insert(identity);
                    identity
                });
                (&*signature, identity)
            })
            .collect();
        HostIdentities {
            hosts: identities,
            changed,
            described: &mut self.described,
        }
    }

    fn changes(
        &self,
        inv: &Inventory,
        peers: &PeerTable,
        egress_names: &BTreeSet<(String, u8)>,
    ) -> Changes {
        let remap: Vec<Option<usize>> = self.peers.peers().iter().map(|p| peers.index(p)).collect();
        let mut kept = vec![false; peers.peers().len()];
        for &i in remap.iter().flatten() {
            kept[i] = true;
        }
        let added: Vec<usize> = (0..kept.len()).filter(|&i| !kept[i]).collect();
        let peers_changed =
            !added.is_empty() || remap.iter().enumerate().any(|(i, n)| *n != Some(i));
        Changes {
            remap,
            added,
            peers: peers_changed,
            namespaces: inv.namespaces_changed_since(&self.namespaces),
            egress_names: self.egress_names != *egress_names,
        }
    }
}

impl Changes {
    /// Whether `remembered` was computed from the same holders, namespace
    /// labels and named ports as `holder` has now.
    fn keep(&self, inv: &Inventory, remembered: &Remembered, host: Host<'_>) -> bool {
        !self.egress_names
            && remembered.signature.kind == host.kind()
            && remembered.holders.len() == host.pods().count()
            && remembered.holders.iter().zip(host.pods()).all(|(old, p)| {
                Arc::ptr_eq(old, &inv.pods[p]) && !self.namespaces.contains(&*old.pod_ref.namespace)
            })
            && remembered.nodes.len() == host.nodes().count()
            && (remembered.nodes.iter().zip(host.nodes()))
                .all(|(old, n)| Arc::ptr_eq(old, &inv.nodes[n]))
    }

    /// Moves a kept signature to the new peer table: drops the peers that
    /// went, renumbers the rest, and evaluates only the new ones. Returns
    /// whether the set of matching peers changed.
    fn adjust(
        &self,
        inv: &Inventory,
        peers: &PeerTable,
        host: Host<'_>,
        signature: &mut HostSignature,
    ) -> bool {
        // In place: a recompile after an edit adjusts every address's.
        let matched = &mut signature.matched;
        let before = matched.len();
        matched.retain_mut(|i| self.remap[*i as usize].map(|new| *i = new as u32).is_some());
        let kept = matched.len();
        let table = peers.peers();
        for &i in &self.added {
            if peer_matches(inv, &table[i], host) {
                matched.push(i as u32);
            }
        }
        if matched.len() != kept {
            matched.sort_unstable();
        }
        kept != before || matched.len() != kept
    }
}

/// What [`HostMemo::update`] brings each address up to date with.
struct Updater<'a> {
    inv: &'a Inventory,
    peers: &'a PeerTable,
    egress_names: &'a BTreeSet<(String, u8)>,
    index: PeerIndex<'a>,
    changes: &'a Changes,
}

impl Updater<'_> {
    /// Brings `remembered`, what the memo holds for `host`'s address, up
    /// to date, adding the identity it leaves (if any) to `left`.
    fn refresh(&mut self, host: Host<'_>, remembered: &mut Remembered, left: &mut BTreeSet<u32>) {
        if !self.changes.keep(self.inv, remembered, host) {
            left.extend(remembered.identity);
            *remembered = self.remembered(host);
        } else if self.changes.peers
            && self
                .changes
                .adjust(self.inv, self.peers, host, &mut remembered.signature)
        {
            left.extend(remembered.identity.take());
        }
    }

    /// What to remember of `host`, derived afresh.
    fn remembered(&mut self, host: Host<'_>) -> Remembered {
        Remembered {
            holders: host.pods().map(|p| Arc::clone(&self.inv.pods[p])).collect(),
            nodes: host
                .nodes()
                .map(|n| Arc::clone(&self.inv.nodes[n]))
                .collect(),
            signature: signature(self.inv, &mut self.index, self.egress_names, host),
            identity: None,
        }
    }
}

fn signature(
    inv: &Inventory,
    index: &mut PeerIndex<'_>,
    egress_names: &BTreeSet<(String, u8)>,
    host: Host<'_>,
) -> HostSignature {
    let mut named_ports = NamedPorts::new();
    for p in host.pods() {
        for (name, protocol) in egress_names {
            let ports = inv.pods[p].resolve(name, *protocol);
            if !ports.is_empty() {
                named_ports
                    .entry((name.clone(), *protocol))
                    .or_default()
                    .extend(ports);
            }
        }
    }
    HostSignature {
        kind: host.kind(),
        matched: index.matching(inv, host),
        named_ports,
    }
}

/// Whether `peer` matches `host`.
fn peer_matches(inv: &Inventory, peer: &PeerModel, host: Host<'_>) -> bool {
    match peer {
        PeerModel::Block(block) => block.contains(host.addr, host.pods().next().is_some()),
        PeerModel::Nodes(selector) => host.nodes().any(|n| selector.matches(&inv.nodes[n].labels)),
        PeerModel::Pods {
            namespaces,
            pods: selector,
        } => host.pods().any(|p| {
            let pod = &inv.pods[p];
            inv.in_scope(namespaces, &pod.pod_ref.namespace) && selector.matches(&pod.labels)
        }),
    }
}

/// Which peers can match where: pod peers by the namespaces their scope
/// takes in (decided once per namespace, when first needed, rather than
/// once per pod), and the ipBlock peers by the prefixes they name.
struct PeerIndex<'a> {
    peers: &'a [PeerModel],
    pods_in_namespace: BTreeMap<String, Vec<usize>>,
    blocks: &'a BlockIndex,
    nodes: Vec<usize>,
}

impl<'a> PeerIndex<'a> {
    fn new(peers: &'a PeerTable, blocks: &'a BlockIndex) -> Self {
        let peers = peers.peers();
        let nodes = (0..peers.len())
            .filter(|&i| matches!(peers[i], PeerModel::Nodes(_)))
            .collect();
        PeerIndex {
            peers,
            pods_in_namespace: BTreeMap::new(),
            blocks,
            nodes,
        }
    }

    /// The peers (table indices, ascending) that match `host`.
    fn matching(&mut self, inv: &Inventory, host: Host<'_>) -> PeerIndices {
        let held_by_pod = host.pods().next().is_some();
        let mut matched: BTreeSet<usize> = (self.blocks.containing(&IpNetwork::from(host.addr)))
            .into_iter()
            .filter(
                |&i| matches!(&self.peers[i], PeerModel::Block(b) if b.admits_holder(held_by_pod)),
            )
            .collect();
        for &i in &self.nodes {
            if peer_matches(inv, &self.peers[i], host) {
                matched.insert(i);
            }
        }
        for p in host.pods() {
            let pod = &inv.pods[p];
            let peers = self.peers;
            let namespace = &pod.pod_ref.namespace;
            if !self.pods_in_namespace.contains_key(&**namespace) {
                let scoped = (0..peers.len())
                    .filter(|&i| matches!(&peers[i], PeerModel::Pods { namespaces, .. } if inv.in_scope(namespaces, namespace)))
                    .collect();
                self.pods_in_namespace.insert(namespace.to_string(), scoped);
            }
            for &i in &self.pods_in_namespace[&**namespace] {
                if let PeerModel::Pods { pods: selector, .. } = &peers[i]
                    && selector.matches(&pod.labels)
                {
                    matched.insert(i);
                }
            }
        }
        matched.into_iter().map(|i| i as u32).collect()
    }
}
