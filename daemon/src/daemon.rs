//! `netseg daemon`: keeps the datapath enforcing the compiled policy of its
//! source (a manifests directory or the API server) on the pod interfaces
//! of this node namespace.

mod cluster;
mod cni_requests;
mod reconcile;

use std::{
    collections::BTreeMap, io::Write, net::SocketAddr, path::PathBuf, sync::Arc, time::Duration,
};

use anyhow::Context as _;
use aya::maps::{MapData, PerCpuArray};
use futures::StreamExt;
use netseg_cni::wire::Reply;
use netseg_policy::{CompileOptions, PodRef};
use tokio::{
    signal::unix::{SignalKind, signal},
    sync::{mpsc, watch},
    task::{JoinError, JoinHandle},
};
use tracing::{error, info};

use crate::{
    cni::{self, CniRegistry, CniRequest},
    datapath::{Datapath, DenyBudgets, FlowEvents, KernelMaps, Limits, MapSizes, pins::PinDir},
    enforcer::Enforcer,
    flows::{
        self, FlowContext, FlowLabels, RotatingFile, Rotation,
        recent::{RecentFlows, RecentLimits},
    },
    metrics::Metrics,
    node::{self, NodeView},
    status::Status,
};

/// Everything `netseg daemon` is told on its command line.
pub struct DaemonConfig {
    pub source: SourceConfig,
    /// The DaemonSet's namespace, where the status writer's Lease goes
    /// (Kubernetes mode).
    pub namespace: String,
    pub compile: CompileOptions,
    pub interface_prefixes: Vec<String>,
    pub flow_log: Option<PathBuf>,
    /// When a flow log file (not stdout) rotates.
    pub flow_log_rotation: Rotation,
    /// How often a live connection gets an `update` record.
    pub flow_update_interval: Duration,
    /// The label keys flow records carry of each pod.
    pub flow_labels: FlowLabels,
    pub status_file: Option<PathBuf>,
    pub metrics_addr: Option<SocketAddr>,
    /// Serve the flow API here (`None`: not at all).
    pub flow_api_addr: Option<SocketAddr>,
    /// The recent records the flow API holds.
    pub flow_api_limits: RecentLimits,
    pub sizes: MapSizes,
    pub limits: Limits,
    pub flow_events: FlowEvents,
    pub deny_budgets: DenyBudgets,
    /// Pin links here so that enforcement outlives the daemon.
    pub pin_dir: Option<PathBuf>,
    /// Serve the `netseg-cni` plugin on this unix socket.
    pub cni_socket: Option<PathBuf>,
}

/// Where the objects to enforce come from.
pub enum SourceConfig {
    /// A directory of manifests, watched for changes.
    Manifests(PathBuf),
    /// The Kubernetes API server: this kubeconfig, else `KUBECONFIG`, the
    /// user's kubeconfig or the pod's service account.
    Kubernetes { kubeconfig: Option<PathBuf> },
}

/// The daemon's state between events.
struct Daemon {
    config: DaemonConfig,
    datapath: Datapath,
    enforcer: Enforcer<KernelMaps>,
    counters: PerCpuArray<MapData, u64>,
    /// Pods the CNI plugin reported, until their interface goes.
    cni: CniRegistry,
    flow_context: watch::Sender<Arc<FlowContext>>,
    /// Tells the exporter the ifindex of every interface detached.
    detached: mpsc::UnboundedSender<u32>,
    status: Status,
    /// The pod each enforcing interface serves, as last published.
    served: BTreeMap<u32, PodRef>,
    metrics: Arc<Metrics>,
    /// What the status writer (Kubernetes mode) last got.
    cluster: Option<cluster::ClusterReporter>,
}

pub async fn run(config: DaemonConfig) -> anyhow::Result<()> {
    let pins = config.pin_dir.as_deref().map(PinDir::open).transpose()?;
    let (datapath, mut maps, telemetry) =
        Datapath::load(config.sizes, pins).context("loading the datapath")?;
    maps.set_flow_events(config.flow_events)
        .context("configuring flow events")?;
    maps.set_limits(config.limits)
        .context("configuring the per-endpoint limits")?;
    maps.set_deny_budgets(config.deny_budgets)
        .context("configuring denial record budgets")?;
    datapath
        .attach_as_announced(config.interface_prefixes.clone())
        .context("watching for new pod interfaces")?;
    let (handle, mut node_changes) = node::watch().context("watching the node namespace")?;
    let (mut source, client) =
        cluster::open_source(&config.source, &config.compile.node_name).await?;
    let mut cni_requests = config.cni_socket.as_deref().map(cni::serve).transpose()?;
    let (flow_context, context) = watch::channel(Arc::new(FlowContext::default()));
    let flow_out = open_flow_log(config.flow_log.as_deref(), config.flow_log_rotation)?;
    let metrics = Arc::new(Metrics::new());
    let (detached, detached_interfaces) = mpsc::unbounded_channel();
    let allowed_reported = config.flow_events == FlowEvents::All;
    let recent = config
        .flow_api_addr
        .map(|addr| (addr, Arc::new(RecentFlows::new(config.flow_api_limits))));
    let (exporter_thread, mut exporter) = flows::ExporterThread::spawn(flows::Export {
        events: telemetry.events,
        denials: telemetry.denials,
        connections: allowed_reported.then_some(telemetry.connections),
        detached: detached_interfaces,
        context,
        out: flow_out,
        recent: recent.as_ref().map(|(_, recent)| recent.clone()),
        node: Some(config.compile.node_name.clone()),
        update_every: config.flow_update_interval,
        metrics: metrics.clone(),
    })
    .context("starting the flow exporter's thread")?;
    let mut flow_api = recent.map(|(addr, recent)| tokio::spawn(flows::api::serve(addr, recent)));
    let server = config.metrics_addr.map(|addr| {
        let metrics = metrics.clone();
        tokio::spawn(async move {
            if let Err(error) = crate::metrics::serve(addr, metrics).await {
                error!(%addr, %error, "serving metrics");
            }
        })
    });
    let cluster = client.map(|client| {
        cluster::ClusterReporter::start(client, &config.compile.node_name, &config.namespace)
    });
    let status = Status {
        ebpf: Some(datapath.loaded.clone()),
        ..Status::default()
    };
    let mut daemon = Daemon {
        enforcer: Enforcer::new(maps, config.compile.clone(), source.sync_awaited()),
        config,
        datapath,
        counters: telemetry.counters,
        cni: CniRegistry::default(),
        flow_context,
        detached,
        status,
        served: BTreeMap::new(),
        metrics,
        cluster,
    };
    daemon.take_update(&mut source);
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    let mut sweep = tokio::time::interval(SWEEP_INTERVAL);
    let mut exporting = true;
    // Until a task of the source stops for good.
    let mut following = true;
    loop {
        match NodeView::read(&handle).await {
            Ok(view) => daemon.reconcile(&view),
            Err(error) => error!(error = %anyhow::Error::from(error), "reading the node namespace"),
        }
        tokio::select! {
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
            Some(()) = source.changed() => daemon.take_update(&mut source),
            Some(()) = node_changes.next() => settle(&mut node_changes).await,
            Some(request) = next_cni_request(&mut cni_requests) => {
                let reply = match NodeView::read(&handle).await {
                    Ok(view) => daemon.answer(request.request, &view),
                    Err(error) => Reply::refused(format!("{:#}", anyhow::Error::from(error))),
                };
                // The plugin may have given up waiting; it then fails the ADD.
                let _ = request.reply.send(reply);
            }
            _ = tick.tick() => {
                if let Some(task) = source.stopped().filter(|_| following) {
                    following = false;
                    error!(task, "stopped: the daemon no longer follows its source");
                    daemon.metrics.task_stopped(&task, "its task ended");
                }
            }
            _ = sweep.tick() => daemon.sweep(),
            ended = &mut exporter, if exporting => {
                exporting = false;
                let why = why_ended(ended, "its events ended");
                // Enforcement goes on; the records do not, so health says so.
                error!(why, "the flow exporter stopped: no more flow records");
                daemon.metrics.task_stopped("the flow exporter", &why);
            }
            Some(ended) = task_end(&mut flow_api) => {
                flow_api = None;
                let why = why_ended(ended, "its listener closed");
                error!(why, "the flow API stopped: it answers no more questions");
                daemon.metrics.task_stopped("the flow API", &why);
            }
        }
    }
    match &daemon.config.pin_dir {
        Some(dir) => {
            info!(pin_dir = %dir.display(), "stopping: the pinned programs keep enforcing the last policy")
        }
        None => info!("stopping: detaching from every interface"),
    }
    exporter.abort();
    drop(exporter_thread);
    if let Some(flow_api) = flow_api {
        flow_api.abort();
    }
    if let Some(server) = server {
        server.abort();
    }
    drop(daemon);
    Ok(())
}

/// How often expired conntrack and fragment entries that no packet met are
/// reclaimed (the programs reclaim those they meet). A full conntrack table
/// is 262,144 entries read one by one: every 10 s keeps that cheap.
const SWEEP_INTERVAL: Duration = Duration::from_secs(10);

/// Netlink events come in bursts (a veth brings links, addresses, routes):
/// take them all before reconciling once.
async fn settle(changes: &mut (impl futures::Stream<Item = ()> + Unpin)) {
    while let Ok(Some(())) = tokio::time::timeout(Duration::from_millis(20), changes.next()).await {
    }
}

/// How a task of the daemon ended; `done` when it returned without error.
fn why_ended(ended: Result<std::io::Result<()>, JoinError>, done: &str) -> String {
    match ended {
        Ok(Ok(())) => done.to_owned(),
        Ok(Err(error)) => format!("{:#}", anyhow::Error::from(error)),
        Err(error) => error.to_string(),
    }
}

/// The end of `task`, if there is one (else never).
async fn task_end<T>(task: &mut Option<JoinHandle<T>>) -> Option<Result<T, JoinError>> {
    match task {
        Some(task) => Some(task.await),
        None => std::future::pending().await,
    }
}

async fn next_cni_request(requests: &mut Option<mpsc::Receiver<CniRequest>>) -> Option<CniRequest> {
    match requests {
        Some(requests) => requests.recv().await,
        None => std::future::pending().await,
    }
}

/// Where `--flow-log` points: a file opened for appending that rotates as
/// `rotation` says, or stdout (which never rotates).
pub fn open_flow_log(
    path: Option<&std::path::Path>,
    rotation: Rotation,
) -> anyhow::Result<Box<dyn Write + Send>> {
    // Unbuffered: the flow writer already gathers records into large writes.
    Ok(match path {
        None => Box::new(std::io::stdout()),
        Some(path) if path.as_os_str() == "-" => Box::new(std::io::stdout()),
        Some(path) => Box::new(
            RotatingFile::open(path, rotation)
                .with_context(|| format!("opening flow log {}", path.display()))?,
        ),
    })
}
