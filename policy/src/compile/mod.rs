//! The compiler: a snapshot to the exact datapath map entries.

mod alloc;
mod blocks;
mod emit;
mod entries;
mod hosts;
mod identities;
mod inventory;
mod models;
mod parties;
mod precedence;
mod resolve;
mod set_cache;
mod trace;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use netseg_contract::{
    FIRST_COMPILED_IDENTITY, FIRST_COMPILED_RULE, PolicyValue, VERDICT_ALLOW, VERDICT_DENY, rule,
};

use self::alloc::IdAllocator;
use self::entries::{Applicable, EntryContext, PolicySetKey, order};
use self::hosts::{HostMemo, HostTable};
use self::identities::{Classes, PeerTable, Signature, classify};
use self::inventory::Selection;
pub(crate) use self::inventory::{Inventory, Models};
use self::parties::PartyMemo;
use self::precedence::{DecisionKey, Order, Outcome};
pub(crate) use self::resolve::{ResolvedPolicy, ResolvedRule, resolve};
use self::set_cache::SetCache;
use crate::model::{PeerModel, PortModel};
use crate::types::{Compiled, Decider, Direction, LocalEndpoint, PolicyEntryKey, Verdict};
use crate::{CompileOptions, Snapshot};

/// First compiled policy id; 0 is [`netseg_contract::POLICY_DENY_ALL`].
const FIRST_COMPILED_POLICY: u32 = 1;

/// The POLICY entries written so far (each policy id's once, so without
/// duplicate keys), the id of each policy set, and the verdicts named.
#[derive(Default)]
struct PolicyMaps {
    entries: Vec<(PolicyEntryKey, PolicyValue)>,
    ids: BTreeMap<PolicySetKey, u32>,
    verdicts: BTreeMap<u32, Verdict>,
}

/// What a compilation derives from a snapshot before writing entries.
struct Prepared {
    inv: Inventory,
    resolved: Vec<ResolvedPolicy>,
    selection: Selection,
    peers: PeerTable,
    classes: Classes,
    hosts: Arc<HostTable>,
}

/// Compiles snapshots, keeping ids stable from one compilation to the next.
///
/// Identity ids are keyed by signature (the rule peers that match the
/// address and its egress named-port resolutions), policy ids by the
/// per-direction set of applying policies, verdict ids by the verdict
/// (what decided, after which Pass rules, and the audit difference). A key
/// used in one compilation keeps its id in the next; ids of keys that
/// disappear are not handed out again (until the 32-bit space wraps), so a
/// flow record's id never silently changes meaning.
pub struct Compiler {
    models: Models,
    hosts: HostMemo,
    identities: IdAllocator<Signature>,
    policies: IdAllocator<PolicySetKey>,
    verdicts: IdAllocator<Verdict>,
    sets: SetCache,
    parties: PartyMemo,
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
            verdicts: IdAllocator::new(FIRST_COMPILED_RULE),
            sets: SetCache::default(),
            parties: PartyMemo::default(),
        }
    }

    /// A compiler that hands out the ids this one would, but remembers
    /// nothing else: its next compilation derives everything from the
    /// snapshot, as a fresh compiler's would. What this one's next
    /// (incremental) compilation must equal, entry for entry.
    pub fn without_memo(&self) -> Compiler {
        Compiler {
            identities: self.identities.clone(),
            policies: self.policies.clone(),
            verdicts: self.verdicts.clone(),
            ..Compiler::new()
        }
    }

    /// Compiles `snapshot` for the node of `options`. Invalid objects are
    /// skipped (see [`crate::validate_network_policy`] and friends); this
    /// never fails.
    pub fn compile(&mut self, snapshot: &Snapshot, options: &CompileOptions) -> Compiled {
        let mut prepared = self.prepare(snapshot, options);
        let Prepared {
            inv,
            resolved,
            selection,
            ..
        } = &prepared;
        let ctx = EntryContext {
            classes: &prepared.classes,
            peers: &prepared.peers,
            options,
        };
        self.sets.begin(&prepared.classes.named_ports);
        let mut written = PolicyMaps::default();
        let mut endpoints = BTreeMap::new();
        for (local, &pod_index) in selection.locals.iter().enumerate() {
            let pod = &inv.pods[pod_index];
            let ids = Direction::BOTH.map(|direction| {
                let applicable = selection.applicable(inv, resolved, local, direction);
                let key = applicable.key(pod);
                self.policy_id(&ctx, key, &applicable, &mut written)
            });
            endpoints.insert(pod.pod_ref.clone(), local_endpoint(pod, ids));
        }
        self.identities.finish_compilation();
        self.policies.finish_compilation();
        self.verdicts.finish_compilation();
        self.sets.finish();
        Compiled {
            endpoints,
            ipcache: prepared.classes.ipcache(),
            policy: written.entries.into_iter().collect(),
            verdicts: written.verdicts,
            identities: std::mem::take(&mut prepared.classes.identities),
            pod_addresses: self.parties.pod_addresses(&prepared.inv, &prepared.hosts),
            segment_networks: self.parties.segment_networks(),
        }
    }

    /// [`crate::warnings`] of `snapshot`, parsing only the objects the
    /// last compilation did not see (checking the snapshot just compiled
    /// parses nothing). Every pod modelled from scratch instead cost the
    /// daemon 0.7 s of CPU at 100,000 pods.
    pub fn warnings(&mut self, snapshot: &Snapshot) -> Vec<crate::Warning> {
        crate::warnings::found(snapshot, &mut self.models)
    }

    /// What compiling `snapshot` derives before writing any entry: the
    /// valid objects, the cluster policies resolved against the Segments,
    /// which policies select which local pods, and the identities.
    fn prepare(&mut self, snapshot: &Snapshot, options: &CompileOptions) -> Prepared {
        let inv = Inventory::build(snapshot, &mut self.models);
        let segments = inv.segments_by_name();
        let resolved: Vec<ResolvedPolicy> =
            inv.tiered.iter().map(|p| resolve(p, &segments)).collect();
        let selection = Selection::compute(&inv, &resolved, options);
        let relevant = relevant_peers(&inv, &resolved, &selection);
        let with_nodes = relevant.iter().any(|p| matches!(p, PeerModel::Nodes(_)));
        let peers = PeerTable::new(relevant);
        let egress_names = egress_named_ports(&inv, &resolved, &selection);
        let hosts = self.hosts.table(&inv, &options.node_addresses, with_nodes);
        let classes = classify(
            &inv,
            &peers,
            &egress_names,
            &hosts,
            &mut self.identities,
            &mut self.hosts,
        );
        Prepared {
            inv,
            resolved,
            selection,
            peers,
            classes,
            hosts,
        }
    }

    /// The policy id of `key`, writing its entries on first sight.
    fn policy_id(
        &mut self,
        ctx: &EntryContext<'_>,
        key: PolicySetKey,
        applicable: &Applicable<'_>,
        written: &mut PolicyMaps,
    ) -> u32 {
        if let Some(&id) = written.ids.get(&key) {
            return id;
        }
        let id = self.policies.id(&key);
        let order = order(ctx, &key, applicable);
        let set = self.sets.entries(&key, id, order, &mut self.verdicts);
        written.entries.extend_from_slice(&set.entries);
        for (rule, verdict) in &set.verdicts {
            written.verdicts.insert(*rule, verdict.clone());
        }
        written.ids.insert(key, id);
        id
    }
}

/// The POLICY value of `verdict`: reserved ids for the plain default and
/// node-traffic verdicts, one allocated from `ids` for the rest.
fn verdict_value(ids: &mut IdAllocator<Verdict>, verdict: &Verdict) -> PolicyValue {
    let plain = verdict.passed_by.is_empty() && verdict.audit.is_none();
    let id = match (&verdict.decided_by, verdict.allow) {
        (Decider::Default, true) if plain => rule::DEFAULT_ALLOW,
        (Decider::Default, false) if plain => rule::DEFAULT_DENY,
        (Decider::NodeTraffic, _) if plain => rule::NODE_TRAFFIC,
        _ => ids.id(verdict),
    };
    PolicyValue {
        rule: id,
        verdict: if verdict.allow {
            VERDICT_ALLOW
        } else {
            VERDICT_DENY
        },
        _pad: [0; 3],
    }
}

/// The verdict `decision` stands for in `order`.
fn verdict_of(order: &Order<'_>, decision: &DecisionKey) -> Verdict {
    let of = |outcome: &Outcome| Verdict {
        allow: order.allows(outcome),
        decided_by: order.steps[outcome.step].decided_by.clone(),
        passed_by: outcome
            .passes
            .iter()
            .filter_map(|&i| match &order.steps[i].decided_by {
                Decider::Rule(rule) => Some(rule.clone()),
                _ => None,
            })
            .collect(),
        audit: None,
    };
    let mut verdict = of(&decision.enforced);
    verdict.audit = decision.audit.as_ref().map(|audit| Box::new(of(audit)));
    verdict
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
        ingress_policy: ids[Direction::Ingress.index()],
        egress_policy: ids[Direction::Egress.index()],
    }
}

/// Every peer of a rule that can reach the maps.
fn relevant_peers<'a>(
    inv: &'a Inventory,
    resolved: &'a [ResolvedPolicy],
    selection: &Selection,
) -> BTreeSet<&'a PeerModel> {
    let mut peers = BTreeSet::new();
    for direction in Direction::BOTH {
        let d = direction.index();
        for &p in &selection.relevant[d] {
            for rule in inv.policies[p].rules(direction).unwrap_or_default() {
                peers.extend(rule.peers.iter().flatten());
            }
        }
        for &p in &selection.relevant_cluster[d] {
            for rule in &resolved[p].rules[d] {
                peers.extend(rule.peers.iter().flatten());
            }
        }
    }
    peers
}

/// The (name, protocol) of every named port in a relevant egress rule.
fn egress_named_ports(
    inv: &Inventory,
    resolved: &[ResolvedPolicy],
    selection: &Selection,
) -> BTreeSet<(String, u8)> {
    let d = Direction::Egress.index();
    let network = selection.relevant[d]
        .iter()
        .flat_map(|&p| inv.policies[p].rules(Direction::Egress).unwrap_or_default())
        .flat_map(|rule| rule.ports.iter().flatten());
    let cluster = selection.relevant_cluster[d]
        .iter()
        .flat_map(|&p| resolved[p].rules[d].iter())
        .flat_map(|rule| rule.ports.iter().flatten());
    network
        .chain(cluster)
        .filter_map(|port| match port {
            PortModel::Named { protocol, name } => Some((name.clone(), *protocol)),
            _ => None,
        })
        .collect()
}
