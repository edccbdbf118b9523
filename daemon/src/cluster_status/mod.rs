//! netseg's status in the API server: every node writes its own NetsegNode,
//! and the holder of the Lease `netseg-status-writer` alone writes the
//! conditions of Segments, SegmentPolicies and ClusterNetworkPolicies and the
//! Events about rejected objects. It runs as its own task: an API server that
//! is slow or refuses a write delays status, never enforcement.

mod conditions;
mod events;
mod lease;
mod node_status;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::utils::Backoff;
use kube::runtime::watcher::DefaultBackoff;
use netseg_policy::{PolicyKind, Snapshot};
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{info, warn};

use conditions::ConditionWriter;
use events::EventWriter;
use lease::LeaderLease;
use node_status::NodeStatusWriter;

/// Where Events go: the API server accepts Events about cluster-scoped
/// objects only in `default` or `kube-system`, and netseg's own namespace is
/// neither. (Rejected NetworkPolicies, being namespaced, would need Event
/// rights in every namespace: they are reported in the log and the
/// NetsegNode only.)
const EVENTS_NAMESPACE: &str = "default";

/// Who this node is and where the Lease goes.
#[derive(Clone, Debug)]
pub struct ClusterStatusConfig {
    pub node_name: String,
    /// The namespace of the Lease (the DaemonSet's own).
    pub namespace: String,
    /// How long the Lease is valid after a renewal without another one,
    /// in whole seconds (at least 1).
    pub lease_duration: Duration,
    /// How often the Lease is renewed or, by the others, checked.
    pub renew_interval: Duration,
}

impl ClusterStatusConfig {
    /// The production timing: a 15 s Lease renewed every 5 s.
    pub fn new(node_name: impl Into<String>, namespace: impl Into<String>) -> Self {
        ClusterStatusConfig {
            node_name: node_name.into(),
            namespace: namespace.into(),
            lease_duration: Duration::from_secs(15),
            renew_interval: Duration::from_secs(5),
        }
    }
}

/// What the daemon enforces and what it refused, after every reconciliation.
#[derive(Clone, Debug, Default)]
pub struct ClusterInputs {
    /// The objects in force (last good versions).
    pub enforced: Snapshot,
    /// Objects the source refused, as written (not enforced).
    pub invalid: Snapshot,
    /// One per refused object.
    pub rejected: Vec<Rejection>,
    pub node: NodeReport,
}

/// An object the source refused, reported as a Warning Event about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub kind: PolicyKind,
    /// `None` for cluster-scoped kinds.
    pub namespace: Option<String>,
    pub name: String,
    /// The object's `metadata.uid`, when the source could read it: tools
    /// such as `kubectl describe` find an object's Events by it.
    pub uid: Option<String>,
    /// The path of the offending field, e.g. `spec.ingress[0].from[1]`.
    pub field: String,
    pub message: String,
}

/// This node's enforcement, written to its NetsegNode.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeReport {
    /// The active datapath revision (0: nothing published yet).
    pub revision: u64,
    /// Whether the whole policy is enforced (what `/readyz` says).
    pub ready: bool,
    pub maps: Vec<MapPressure>,
    /// The last reconciliation or publication error, if the last one failed.
    pub last_error: Option<String>,
}

/// How full one kernel map is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapPressure {
    pub name: String,
    pub used: u64,
    pub capacity: u64,
}

/// Writes the status until `inputs` closes (the daemon shutting down).
/// Every API error is logged; after one, writes wait for the backoff
/// (0.8 s doubling to 30 s, jittered) while the Lease keeps its cadence.
pub async fn run(
    client: kube::Client,
    config: ClusterStatusConfig,
    mut inputs: watch::Receiver<Arc<ClusterInputs>>,
) -> anyhow::Result<()> {
    let mut lease = LeaderLease::new(client.clone(), &config);
    let mut node = NodeStatusWriter::new(client.clone(), &config.node_name);
    let mut conditions = ConditionWriter::new(client.clone());
    let mut events = EventWriter::new(client, EVENTS_NAMESPACE, &config.node_name);
    let mut renew = tokio::time::interval(config.renew_interval);
    renew.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut backoff = DefaultBackoff::default();
    let mut retry_at: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = renew.tick() => {
                let was_leader = lease.is_leader();
                lease.try_hold().await;
                if lease.is_leader() != was_leader {
                    // Another leader may have written since this one last did.
                    conditions.forget();
                    events.forget();
                }
            }
            changed = inputs.changed() => {
                if changed.is_err() {
                    info!("cluster status: inputs closed, stopping");
                    return Ok(());
                }
            }
            _ = sleep_until(retry_at), if retry_at.is_some() => {}
        }
        if retry_at.is_some_and(|at| Instant::now() < at) {
            continue;
        }
        let current = inputs.borrow_and_update().clone();
        match write_status(&current, &lease, &mut node, &mut conditions, &mut events).await {
            Ok(()) => {
                backoff.reset();
                retry_at = None;
            }
            Err(failures) => {
                let delay = backoff.next().unwrap_or(Duration::from_secs(30));
                warn!(failures, retry_in = ?delay, "cluster status: writes failed, will retry");
                retry_at = Some(Instant::now() + delay);
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    if let Some(deadline) = deadline {
        tokio::time::sleep_until(deadline).await;
    }
}

/// Writes what changed; `Err` counts the writes that failed (each logged).
async fn write_status(
    inputs: &Arc<ClusterInputs>,
    lease: &LeaderLease,
    node: &mut NodeStatusWriter,
    conditions: &mut ConditionWriter,
    events: &mut EventWriter,
) -> Result<(), usize> {
    let mut failures = node.write(inputs).await;
    if lease.is_leader() {
        failures += conditions.write(inputs).await;
        failures += events.write(&inputs.rejected).await;
    }
    if failures == 0 { Ok(()) } else { Err(failures) }
}

/// The API resource of a policy kind.
fn policy_resource(kind: PolicyKind) -> kube::api::ApiResource {
    use k8s_openapi::api::networking::v1::NetworkPolicy;
    use kube::api::ApiResource;
    use netseg_crd::{ClusterNetworkPolicy, Segment, SegmentPolicy};
    match kind {
        PolicyKind::NetworkPolicy => ApiResource::erase::<NetworkPolicy>(&()),
        PolicyKind::ClusterNetworkPolicy => ApiResource::erase::<ClusterNetworkPolicy>(&()),
        PolicyKind::SegmentPolicy => ApiResource::erase::<SegmentPolicy>(&()),
        PolicyKind::Segment => ApiResource::erase::<Segment>(&()),
    }
}

#[cfg(test)]
mod tests;

/// Every policy object of `snapshot` with its kind and metadata.
fn policy_objects(snapshot: &Snapshot) -> impl Iterator<Item = (PolicyKind, &ObjectMeta)> {
    let network_policies = snapshot
        .network_policies
        .iter()
        .map(|p| (PolicyKind::NetworkPolicy, &p.metadata));
    let cnps = snapshot
        .cluster_network_policies
        .iter()
        .map(|p| (PolicyKind::ClusterNetworkPolicy, &p.metadata));
    let segments = snapshot
        .segments
        .iter()
        .map(|s| (PolicyKind::Segment, &s.metadata));
    let policies = snapshot
        .segment_policies
        .iter()
        .map(|p| (PolicyKind::SegmentPolicy, &p.metadata));
    network_policies.chain(cnps).chain(segments).chain(policies)
}
