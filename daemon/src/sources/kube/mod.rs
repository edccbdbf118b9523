//! The Kubernetes API server as a source: one watch per kind (pods twice:
//! this node's, and every other node's as peers), each object trimmed and
//! judged as it arrives, and the whole recomputed from the watches' state
//! whenever something changed (level-triggered: no decision rests on a
//! single event, which a watch may lose).
//!
//! Failing closed: a watch that cannot list (RBAC missing, CRD not
//! installed, server away) is reported and retried, and its kind keeps what
//! it last listed; "could not list NetworkPolicies" never reads as "there
//! are none". Until every watch has listed once, the source is not synced,
//! so the daemon is not ready and does not take over pinned programs.

mod judge;
mod slim;
mod state;
mod watch;

#[cfg(test)]
pub(crate) mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use kube::api::{ApiResource, DynamicObject};
use kube::runtime::watcher;
use kube::{Api, Client};
use netseg_crd::{ClusterNetworkPolicy, Segment, SegmentPolicy};
use netseg_policy::Snapshot;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

pub use slim::SlimPod;
use state::KindState;

use super::object::{Object, ObjectId, ObjectKind};
use super::{Problem, Refused, Update};

/// The first change after a quiet spell is taken at once; what follows
/// within this long of an update (the rest of a rollout, a relist) is
/// gathered into one more.
const SETTLE: Duration = Duration::from_millis(50);

/// One watch of the API server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Watch {
    Namespaces,
    Nodes,
    LocalPods,
    PeerPods,
    NetworkPolicies,
    ClusterNetworkPolicies,
    Segments,
    SegmentPolicies,
}

impl Watch {
    const ALL: [Watch; 8] = [
        Self::Namespaces,
        Self::Nodes,
        Self::LocalPods,
        Self::PeerPods,
        Self::NetworkPolicies,
        Self::ClusterNetworkPolicies,
        Self::Segments,
        Self::SegmentPolicies,
    ];

    fn kind(self) -> ObjectKind {
        match self {
            Self::Namespaces => ObjectKind::Namespace,
            Self::Nodes => ObjectKind::Node,
            Self::LocalPods | Self::PeerPods => ObjectKind::Pod,
            Self::NetworkPolicies => ObjectKind::NetworkPolicy,
            Self::ClusterNetworkPolicies => ObjectKind::ClusterNetworkPolicy,
            Self::Segments => ObjectKind::Segment,
            Self::SegmentPolicies => ObjectKind::SegmentPolicy,
        }
    }
}

impl fmt::Display for Watch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Namespaces => "namespaces",
            Self::Nodes => "nodes",
            Self::LocalPods => "pods on this node",
            Self::PeerPods => "pods on other nodes",
            Self::NetworkPolicies => "networkpolicies",
            Self::ClusterNetworkPolicies => "clusternetworkpolicies",
            Self::Segments => "segments",
            Self::SegmentPolicies => "segmentpolicies",
        })
    }
}

/// What the watch tasks share with the source.
#[derive(Default)]
struct Shared {
    watches: Mutex<BTreeMap<Watch, KindState>>,
    /// When a watch first recorded a change that no update has taken yet;
    /// set and taken only under the lock of `watches`.
    seen_at: Mutex<Option<Instant>>,
    changed: Notify,
}

impl Shared {
    /// Applies `change` to the state of `watch`; wakes the source if it
    /// says something changed.
    fn record(&self, watch: Watch, change: impl FnOnce(&mut KindState) -> bool) {
        let mut watches = self.lock();
        if change(watches.entry(watch).or_default()) {
            self.seen_at().get_or_insert_with(Instant::now);
            drop(watches);
            self.changed.notify_one();
        }
    }

    fn seen_at(&self) -> MutexGuard<'_, Option<Instant>> {
        self.seen_at.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<Watch, KindState>> {
        // A watch task that panicked leaves consistent state behind: every
        // change is applied whole under the lock.
        self.watches.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The objects of a cluster, as the API server serves them.
pub struct KubeSource {
    shared: Arc<Shared>,
    tasks: Vec<(Watch, JoinHandle<()>)>,
    /// The objects in force at the last [`KubeSource::update`], in the
    /// order of their ids. Their ids are not copied here: equal objects
    /// have equal ids, and the watches' state keeps one copy of each.
    last: Vec<Object>,
    /// When the burst a watch woke [`KubeSource::changed`] for has settled;
    /// kept until [`KubeSource::update`], so that a wait dropped meanwhile
    /// (the daemon's `select!` drops it whenever another event comes
    /// first) loses nothing.
    settled_at: Option<tokio::time::Instant>,
    /// No update is taken before this: [`SETTLE`] after the last.
    held_until: tokio::time::Instant,
}

impl KubeSource {
    /// Starts every watch; `node_name` tells this node's pods from its peers.
    pub fn start(client: Client, node_name: &str) -> Self {
        let shared = Arc::new(Shared::default());
        let all = watcher::Config::default();
        let local = all.clone().fields(&format!("spec.nodeName={node_name}"));
        let peers = all.clone().fields(&format!("spec.nodeName!={node_name}"));
        let task = |watch, task: BoxFuture<'static, ()>| (watch, tokio::spawn(task));
        let tasks = vec![
            task(
                Watch::Namespaces,
                built_in(
                    Watch::Namespaces,
                    all.clone(),
                    &client,
                    &shared,
                    judge::namespace,
                ),
            ),
            task(
                Watch::Nodes,
                built_in(Watch::Nodes, all.clone(), &client, &shared, judge::node),
            ),
            task(
                Watch::LocalPods,
                built_in(Watch::LocalPods, local, &client, &shared, judge::pod),
            ),
            task(
                Watch::PeerPods,
                built_in(Watch::PeerPods, peers, &client, &shared, judge::pod),
            ),
            task(
                Watch::NetworkPolicies,
                built_in(
                    Watch::NetworkPolicies,
                    all.clone(),
                    &client,
                    &shared,
                    judge::network_policy,
                ),
            ),
            task(
                Watch::ClusterNetworkPolicies,
                custom::<ClusterNetworkPolicy>(Watch::ClusterNetworkPolicies, &client, &shared),
            ),
            task(
                Watch::Segments,
                custom::<Segment>(Watch::Segments, &client, &shared),
            ),
            task(
                Watch::SegmentPolicies,
                custom::<SegmentPolicy>(Watch::SegmentPolicies, &client, &shared),
            ),
        ];
        Self {
            shared,
            tasks,
            last: Vec::new(),
            settled_at: None,
            held_until: tokio::time::Instant::now(),
        }
    }

    /// Waits until a watch recorded a change, and until [`SETTLE`] has
    /// passed since the last update. Cancel-safe: dropped before it
    /// returns, the next call resumes the same wait.
    pub async fn changed(&mut self) {
        let settled_at = match self.settled_at {
            Some(at) => at,
            None => {
                self.shared.changed.notified().await;
                let now = tokio::time::Instant::now();
                *self.settled_at.insert(self.held_until.max(now))
            }
        };
        tokio::time::sleep_until(settled_at).await;
    }

    /// What the watches hold now.
    pub fn update(&mut self) -> Update {
        self.settled_at = None;
        self.held_until = tokio::time::Instant::now() + SETTLE;
        let watches = self.shared.lock();
        let seen_at = self.shared.seen_at().take();
        // Borrowed from the watches: a pod listed by both pod watches (in
        // the moment it is scheduled here) counts once, as this node's.
        let mut objects: BTreeMap<&ObjectId, &Object> = BTreeMap::new();
        let mut problems = Vec::new();
        let mut invalid = Snapshot::default();
        let mut refused = Vec::new();
        for watch in Watch::ALL {
            let state = watches.get(&watch);
            let synced = state.is_some_and(|s| s.synced);
            if let Some(error) = state.and_then(|s| s.error.as_ref()) {
                problems.push(watch_problem(watch, synced, error));
            } else if !synced {
                problems.push(watch_problem(watch, false, "listing"));
            }
            let Some(state) = state else { continue };
            for (id, object) in &state.current().objects {
                objects.entry(id).or_insert(object);
            }
            for (id, refusal) in &state.current().refused {
                problems.extend(refusal.problems.iter().cloned());
                if let Some(object) = &refusal.invalid {
                    object.add_to(&mut invalid);
                }
                refused.push(Refused {
                    id: id.clone(),
                    uid: refusal.uid.clone(),
                    problems: refusal.problems.clone(),
                });
            }
        }
        let synced = Watch::ALL
            .iter()
            .all(|watch| watches.get(watch).is_some_and(|s| s.synced));
        let objects: Vec<Object> = objects.into_values().cloned().collect();
        drop(watches);
        if let Some(watch) = self.stopped_watch() {
            problems.push(watch_problem(watch, synced, "the watch task stopped"));
        }
        let changed =
            objects.len() != self.last.len() || objects.iter().zip(&self.last).any(|(a, b)| a != b);
        self.last = objects;
        Update {
            changed,
            seen_at,
            problems,
            invalid,
            synced,
            refused,
            taken_at: None,
        }
    }

    /// A watch whose task ended (it runs until aborted, so only a panic
    /// ends it): its kind would no longer follow the cluster.
    pub fn stopped_watch(&self) -> Option<Watch> {
        self.tasks
            .iter()
            .find(|(_, task)| task.is_finished())
            .map(|(watch, _)| *watch)
    }

    /// The objects in force at the last [`KubeSource::update`].
    pub fn snapshot(&self) -> Snapshot {
        let mut snapshot = Snapshot::default();
        for object in &self.last {
            object.add_to(&mut snapshot);
        }
        snapshot
    }
}

impl Drop for KubeSource {
    fn drop(&mut self) {
        for (_, task) in &self.tasks {
            task.abort();
        }
    }
}

/// A watch of a kind compiled into this netseg (k8s-openapi, or the slim pod).
fn built_in<K>(
    watch: Watch,
    config: watcher::Config,
    client: &Client,
    shared: &Arc<Shared>,
    judge: fn(&ObjectId, K) -> state::Judged,
) -> BoxFuture<'static, ()>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + fmt::Debug
        + Send
        + 'static,
{
    let api: Api<kube::core::DeserializeGuard<K>> = Api::all(client.clone());
    Box::pin(watch::run(watch, api, config, judge, shared.clone()))
}

/// A watch of a custom resource, read as JSON and judged as strictly as a
/// manifest file.
fn custom<K>(watch: Watch, client: &Client, shared: &Arc<Shared>) -> BoxFuture<'static, ()>
where
    K: kube::Resource<DynamicType = ()>,
{
    let resource = ApiResource::erase::<K>(&());
    let api: Api<kube::core::DeserializeGuard<DynamicObject>> =
        Api::all_with(client.clone(), &resource);
    Box::pin(watch::run(
        watch,
        api,
        watcher::Config::default(),
        judge::custom,
        shared.clone(),
    ))
}

fn watch_problem(watch: Watch, synced: bool, error: &str) -> Problem {
    let state = if synced {
        "what it last listed stays enforced"
    } else {
        "not listed yet: the daemon is not ready, and pinned programs of a previous daemon keep enforcing"
    };
    Problem {
        origin: super::Origin::Api,
        object: Some(format!("watch of {watch}")),
        field: None,
        message: format!("{error}; {state}"),
    }
}
