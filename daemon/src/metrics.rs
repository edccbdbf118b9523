//! Prometheus metrics, a health check and a readiness check over HTTP
//! (`--metrics-addr`): packets by verdict and reason, flow events lost and
//! sampled, flow records written, the active revision, endpoints, local
//! pods not enforced, manifest problems, and what [`datapath`] adds (the
//! README lists them all).

mod datapath;

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{SystemTime, UNIX_EPOCH},
};

use axum::{Router, extract::State, http::StatusCode, routing::get};
use netseg_contract::reason;
use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

use crate::{
    flows::{RecordKind, reason_name},
    status::Status,
};

pub use datapath::DatapathMetrics;

/// Seconds without a reconciliation after which `/healthz` fails.
const STALE_AFTER_SECONDS: u64 = 30;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PacketLabels {
    verdict: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RecordLabels {
    kind: &'static str,
    verdict: &'static str,
}

pub struct Metrics {
    registry: Registry,
    packets: Family<PacketLabels, Counter>,
    events_lost: Counter,
    events_sampled: Counter,
    flow_records: Family<RecordLabels, Counter>,
    revision: Gauge,
    endpoints: Gauge,
    unenforced: Gauge,
    problems: Gauge,
    pub datapath: DatapathMetrics,
    /// Unix time of the last reconciliation.
    reconciled_at: AtomicU64,
    /// A task of the daemon that stopped, and why: the daemon is unhealthy.
    stopped: Mutex<Option<String>>,
    /// What the daemon waits for before it enforces its own policy: not
    /// ready until then.
    waiting_for: Mutex<Option<&'static str>>,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("netseg");
        let datapath = DatapathMetrics::new(&mut registry);
        let mut metrics = Self {
            registry,
            packets: Family::default(),
            events_lost: Counter::default(),
            events_sampled: Counter::default(),
            flow_records: Family::default(),
            revision: Gauge::default(),
            endpoints: Gauge::default(),
            unenforced: Gauge::default(),
            problems: Gauge::default(),
            datapath,
            reconciled_at: AtomicU64::new(0),
            stopped: Mutex::new(None),
            waiting_for: Mutex::new(None),
        };
        let registry = &mut metrics.registry;
        registry.register(
            "packets",
            "Packets by verdict and reason",
            metrics.packets.clone(),
        );
        registry.register(
            "flow_events_lost",
            "Allowed connections whose open event found the ring buffer full, and denials that found no room in the denial counts: not in any record",
            metrics.events_lost.clone(),
        );
        registry.register(
            "flow_events_sampled",
            "Denied packets counted in deny-count records instead of getting a deny record of their own",
            metrics.events_sampled.clone(),
        );
        registry.register(
            "flow_records",
            "Flow records written, by kind (open, update, end, deny, deny-count) and verdict",
            metrics.flow_records.clone(),
        );
        registry.register(
            "policy_revision",
            "The active policy revision",
            metrics.revision.clone(),
        );
        registry.register(
            "endpoints",
            "Local pods enforced on an interface",
            metrics.endpoints.clone(),
        );
        registry.register(
            "pods_unenforced",
            "Local pods with an address but no interface enforcing their policy (not ready while above 0)",
            metrics.unenforced.clone(),
        );
        registry.register(
            "manifest_problems",
            "Current problems in the manifests",
            metrics.problems.clone(),
        );
        metrics
    }

    /// The counter of flow records of `kind`: the exporter holds it, so
    /// counting a record is one atomic add rather than a label lookup.
    pub fn flow_records(&self, kind: RecordKind) -> Counter {
        let verdict = match kind {
            RecordKind::Deny | RecordKind::DenyCount => "deny",
            RecordKind::Open | RecordKind::Update | RecordKind::End => "allow",
        };
        self.flow_records
            .get_or_create(&RecordLabels {
                kind: kind.name(),
                verdict,
            })
            .clone()
    }

    /// Brings the metrics up to `status` and the kernel counters (by reason code).
    pub fn observe(&self, status: &Status, counters: &BTreeMap<u8, u64>) {
        for (&code, &total) in counters {
            let counter = match code {
                reason::COUNTER_EVENTS_LOST => self.events_lost.clone(),
                reason::COUNTER_EVENTS_SAMPLED => self.events_sampled.clone(),
                _ => {
                    let labels = PacketLabels {
                        verdict: if code < reason::FIRST_DENY {
                            "allow"
                        } else {
                            "deny"
                        },
                        reason: reason_name(code),
                    };
                    self.packets.get_or_create(&labels).clone()
                }
            };
            // The kernel counters only grow: add what is new since the last look.
            counter.inc_by(total.saturating_sub(counter.get()));
        }
        self.revision.set(i64::from(status.revision));
        self.endpoints.set(status.endpoints as i64);
        self.unenforced
            .set(status.pods_without_interface.len() as i64);
        self.problems.set(status.problems.len() as i64);
        *self
            .waiting_for
            .lock()
            .unwrap_or_else(|poison| poison.into_inner()) = status.waiting_for;
        self.reconciled_at.store(unix_now(), Ordering::Relaxed);
    }

    fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `addr` until the task is aborted.
pub async fn serve(addr: SocketAddr, metrics: Arc<Metrics>) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(scrape))
        .route("/healthz", get(health))
        .route("/readyz", get(ready))
        .with_state(metrics);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, app).await
}

async fn scrape(State(metrics): State<Arc<Metrics>>) -> Result<String, StatusCode> {
    metrics
        .encode()
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)
}

impl Metrics {
    fn reconciling(&self) -> bool {
        let last = self.reconciled_at.load(Ordering::Relaxed);
        last != 0 && unix_now().saturating_sub(last) <= STALE_AFTER_SECONDS
    }

    /// Marks the daemon unhealthy for good: a task it needs has stopped.
    pub fn task_stopped(&self, task: &str, why: &str) {
        let mut stopped = self
            .stopped
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        stopped.get_or_insert_with(|| format!("{task} stopped: {why}"));
    }

    /// Why the daemon is not healthy, if it is not.
    fn unhealthy(&self) -> Option<String> {
        let stopped = self
            .stopped
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        match stopped.as_ref() {
            Some(why) => Some(why.clone()),
            None => (!self.reconciling()).then(|| "not reconciling".to_owned()),
        }
    }
}

async fn health(State(metrics): State<Arc<Metrics>>) -> (StatusCode, String) {
    match metrics.unhealthy() {
        None => (StatusCode::OK, "ok\n".to_owned()),
        Some(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
    }
}

/// Ready: reconciling, enforcing a policy of its own read whole from its
/// source, and every local pod with an address is enforced.
async fn ready(State(metrics): State<Arc<Metrics>>) -> (StatusCode, String) {
    let unenforced = metrics.unenforced.get();
    let waiting_for = *metrics
        .waiting_for
        .lock()
        .unwrap_or_else(|poison| poison.into_inner());
    if let Some(why) = metrics.unhealthy() {
        (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n"))
    } else if let Some(waiting_for) = waiting_for {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("waiting for {waiting_for}\n"),
        )
    } else if unenforced > 0 {
        let text = format!(
            "{unenforced} local pods not enforced (see pods_without_interface in the status)\n"
        );
        (StatusCode::SERVICE_UNAVAILABLE, text)
    } else {
        (StatusCode::OK, "ok\n".to_owned())
    }
}
