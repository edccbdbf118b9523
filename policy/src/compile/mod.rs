//! The compiler: a snapshot to the exact datapath map entries.

mod alloc;
mod entries;
mod hosts;
mod identities;
mod inventory;
mod models;

use std::collections::{BTreeMap, BTreeSet};

use netseg_contract::{FIRST_COMPILED_IDENTITY, FIRST_COMPILED_RULE, POLICY_DENY_ALL};

use self::alloc::IdAllocator;
use self::entries::{EntryContext, PolicySetKey, RuleKey, policy_entries};
use self::hosts::{HostMemo, HostTable};
use self::identities::{PeerTable, Signature, classify};
use self::inventory::{Inventory, Models, Selection, slot};
use crate::model::{PeerModel, PolicyModel, PortModel};
use crate::types::{Compiled, Direction, LocalEndpoint, PodRef, PolicyEntryKey, RuleRef};
use crate::{CompileOptions, DefaultAction, Snapshot};

/// First compiled policy id; 0 is [`POLICY_DENY_ALL`].
const FIRST_COMPILED_POLICY: u32 = 1;

/// The POLICY entries written so far (each policy id's once, so without
/// duplicate keys), and the id of each policy set.
#[derive(Default)]
struct PolicyMaps {
    entries: Vec<(PolicyEntryKey, u32)>,
    ids: BTreeMap<PolicySetKey, u32>,
}

/// Compiles snapshots, keeping ids stable from one compilation to the next.
///
/// Identity ids are keyed by signature (the rule peers that match the
/// address and its egress named-port resolutions), policy ids by the
/// per-direction set of selecting policies, rule ids by (policy, direction,
/// rule index). A key used in one compilation keeps its id in the next; ids
/// of keys that disappear are not handed out again (until the 32-bit space
/// wraps), so a flow record's id never silently changes meaning.
pub struct Compiler {
    models: Models,
    hosts: HostMemo,
    identities: IdAllocator<Signature>,
    policies: IdAllocator<PolicySetKey>,
    rules: IdAllocator<RuleKey>,
}

impl Default for Compiler {
    fn default() -> Self {
        Self::new()
    }
}

impl Compiler {
    /// A compiler with no history.
    pub fn new() -> Self {
        Compiler {
            models: Models::default(),
            hosts: HostMemo::default(),
            identities: IdAllocator::new(FIRST_COMPILED_IDENTITY),
            policies: IdAllocator::new(FIRST_COMPILED_POLICY),
            rules: IdAllocator::new(FIRST_COMPILED_RULE),
        }
    }

    /// Compiles `snapshot` for the node of `options`. Invalid objects are
    /// skipped (see [`crate::validate_network_policy`] and friends); this
    /// never fails.
    pub fn compile(&mut self, snapshot: &Snapshot, options: &CompileOptions) -> Compiled {
        let inv = Inventory::build(snapshot, &mut self.models);
        let selection = Selection::compute(&inv, options);
        let peers = PeerTable::new(relevant_peers(&inv, &selection));
        let egress_names = egress_named_ports(&inv, &selection);
        let hosts = HostTable::new(&inv, &options.node_addresses);
        let mut classes = classify(
            &inv,
            &peers,
            &egress_names,
            &hosts,
            &mut self.identities,
            &mut self.hosts,
        );
        let (rule_ids, rules) = self.allocate_rules(&inv, &selection);
        let ctx = EntryContext {
            classes: &classes,
            peers: &peers,
            rule_ids: &rule_ids,
            node_traffic: !options.deny_node_traffic,
        };
        let mut written = PolicyMaps::default();
        let mut endpoints = BTreeMap::new();
        for (local, &pod_index) in selection.locals.iter().enumerate() {
            let pod = &inv.pods[pod_index];
            let mut ids = [POLICY_DENY_ALL; 2];
            for direction in Direction::BOTH {
                let selecting: Vec<_> = selection.selecting[local][slot(direction)]
                    .iter()
                    .map(|&i| inv.policies[i].as_ref())
                    .collect();
                let isolated =
                    options.default_action == DefaultAction::Deny || !selecting.is_empty();
                let key = PolicySetKey::new(direction, isolated, &selecting, pod);
                ids[slot(direction)] = self.policy_id(&ctx, key, &selecting, &mut written);
            }
            endpoints.insert(pod.pod_ref.clone(), local_endpoint(pod, ids));
        }
        self.identities.finish_compilation();
        self.policies.finish_compilation();
        self.rules.finish_compilation();
        Compiled {
            endpoints,
            ipcache: classes.ipcache(),
            policy: written.entries.into_iter().collect(),
            rules,
            identities: classes.identities,
            pod_addresses: pod_addresses(&inv, &hosts),
        }
    }

    /// The policy id of `key`, writing its entries on first sight. A policy
    /// without entries is the reserved allow-nothing policy.
    fn policy_id(
        &mut self,
        ctx: &EntryContext<'_>,
        key: PolicySetKey,
        selecting: &[&PolicyModel],
        written: &mut PolicyMaps,
    ) -> u32 {
        if let Some(&id) = written.ids.get(&key) {
            return id;
        }
        let entries = policy_entries(ctx, &key, selecting);
        let id = if entries.is_empty() {
            POLICY_DENY_ALL
        } else {
            self.policies.id(&key)
        };
        for ((identity, protocol, port), rule) in entries {
            let entry = PolicyEntryKey {
                policy: id,
                identity,
                protocol,
                port,
            };
            written.entries.push((entry, rule));
        }
        written.ids.insert(key, id);
        id
    }

    /// Ids for every rule of a policy that selects a local pod in the rule's
    /// direction, in name order.
    fn allocate_rules(
        &mut self,
        inv: &Inventory,
        selection: &Selection,
    ) -> (BTreeMap<RuleKey, u32>, BTreeMap<u32, RuleRef>) {
        let mut ids = BTreeMap::new();
        let mut refs = BTreeMap::new();
        for direction in Direction::BOTH {
            for &p in &selection.relevant[slot(direction)] {
                let policy = &inv.policies[p];
                for rule in policy.rules(direction).unwrap_or_default() {
                    let key = (
                        policy.namespace.clone(),
                        policy.name.clone(),
                        direction,
                        rule.index,
                    );
                    let id = self.rules.id(&key);
                    ids.insert(key, id);
                    let rule_ref = RuleRef {
                        kind: "NetworkPolicy".to_string(),
                        namespace: policy.namespace.clone(),
                        name: policy.name.clone(),
                        direction,
                        index: rule.index,
                    };
                    refs.insert(id, rule_ref);
                }
            }
        }
        (ids, refs)
    }
}

fn local_endpoint(pod: &crate::model::PodModel, ids: [u32; 2]) -> LocalEndpoint {
    LocalEndpoint {
        ipv4: pod.ips.iter().find_map(|ip| match ip {
            std::net::IpAddr::V4(a) => Some(*a),
            std::net::IpAddr::V6(_) => None,
        }),
        ipv6: pod.ips.iter().find_map(|ip| match ip {
            std::net::IpAddr::V6(a) => Some(*a),
            std::net::IpAddr::V4(_) => None,
        }),
        ingress_policy: ids[slot(Direction::Ingress)],
        egress_policy: ids[slot(Direction::Egress)],
    }
}

/// Every peer of a rule that can reach the maps.
fn relevant_peers<'a>(inv: &'a Inventory, selection: &Selection) -> BTreeSet<&'a PeerModel> {
    let mut peers = BTreeSet::new();
    for direction in Direction::BOTH {
        for &p in &selection.relevant[slot(direction)] {
            for rule in inv.policies[p].rules(direction).unwrap_or_default() {
                peers.extend(rule.peers.iter().flatten());
            }
        }
    }
    peers
}

/// The (name, protocol) of every named port in a relevant egress rule.
fn egress_named_ports(inv: &Inventory, selection: &Selection) -> BTreeSet<(String, u8)> {
    let mut names = BTreeSet::new();
    for &p in &selection.relevant[slot(Direction::Egress)] {
        for rule in inv.policies[p].rules(Direction::Egress).unwrap_or_default() {
            for port in rule.ports.iter().flatten() {
                if let PortModel::Named { protocol, name } = port {
                    names.insert((name.clone(), *protocol));
                }
            }
        }
    }
    names
}

/// Every pod address, naming the first pod of the snapshot that holds it.
fn pod_addresses(inv: &Inventory, hosts: &HostTable) -> BTreeMap<std::net::IpAddr, PodRef> {
    hosts
        .hosts()
        .filter_map(|host| {
            let first = host.pods().next()?;
            Some((host.addr, inv.pods[first].pod_ref.clone()))
        })
        .collect()
}
