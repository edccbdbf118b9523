//! `netseg daemon`: keeps the datapath enforcing the compiled policy of its
//! source (a manifests directory or the API server) on the pod interfaces
//! of this node namespace.

mod cni_requests;

use std::{
    collections::BTreeMap,
    io::Write,
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    sync::Arc,
    time::Duration,
};

use anyhow::Context as _;
use aya::maps::{MapData, PerCpuArray};
use futures::StreamExt;
use netseg_cni::wire::Reply;
use netseg_policy::{CompileOptions, Compiled, Compiler, LocalEndpoint, PodRef};
use tokio::{
    signal::unix::{SignalKind, signal},
    sync::{mpsc, watch},
};
use tracing::{error, info, instrument, warn};

use crate::{
    cni::{self, CniRegistry, CniRequest},
    datapath::{
        Datapath, DenyBudgets, FlowEvents, KernelMaps, Limits, MapSizes, pins::PinDir,
        publish::Publisher, state::SlotState,
    },
    flows::{self, FlowContext, RotatingFile, Rotation},
    metrics::Metrics,
    node::{self, NodeChange, NodeView},
    sources::{ManifestSource, Source, Update, kube::KubeSource},
    status::{self, InterfaceStatus, Status},
};

/// Everything `netseg daemon` is told on its command line.
pub struct DaemonConfig {
    pub source: SourceConfig,
    pub compile: CompileOptions,
    pub interface_prefixes: Vec<String>,
    pub flow_log: Option<PathBuf>,
    /// When a flow log file (not stdout) rotates.
    pub flow_log_rotation: Rotation,
    pub status_file: Option<PathBuf>,
    pub metrics_addr: Option<SocketAddr>,
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
struct Enforcer {
    config: DaemonConfig,
    datapath: Datapath,
    publisher: Publisher<KernelMaps>,
    counters: PerCpuArray<MapData, u64>,
    /// The objects in force, as of the source's last update.
    snapshot: netseg_policy::Snapshot,
    /// What the source must do to be synced, for messages.
    sync_awaited: &'static str,
    /// Pods the CNI plugin reported, until their interface goes.
    cni: CniRegistry,
    compiler: Compiler,
    /// The last compilation, redone when the objects or node addresses change.
    compiled: Option<Compiled>,
    flow_context: watch::Sender<Arc<FlowContext>>,
    /// Tells the exporter the ifindex of every interface detached.
    detached: mpsc::UnboundedSender<u32>,
    status: Status,
    /// The pod each enforcing interface serves, as last published.
    served: BTreeMap<u32, PodRef>,
    metrics: Arc<Metrics>,
    /// Problems of the source's last update.
    source_problems: Vec<String>,
    /// The warnings of `netseg check` about objects in force whose
    /// enforcement departs from what they say (rules that fail closed,
    /// unknown subject Segments); every warning is logged.
    policy_warnings: Vec<String>,
    publish_problem: Option<String>,
    /// Whether the source has read everything once: before that, the
    /// pinned programs of a previous daemon keep enforcing.
    source_synced: bool,
    /// Why the pinned links were last left to the previous programs.
    take_over_waits_for: Option<&'static str>,
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
    let (handle, mut node_changes) = node::watch().context("watching the node namespace")?;
    let mut source = open_source(&config.source, &config.compile.node_name).await?;
    let mut cni_requests = config.cni_socket.as_deref().map(cni::serve).transpose()?;
    let (flow_context, context) = watch::channel(Arc::new(FlowContext::default()));
    let flow_out = open_flow_log(config.flow_log.as_deref(), config.flow_log_rotation)?;
    let metrics = Arc::new(Metrics::new());
    let (detached, detached_interfaces) = mpsc::unbounded_channel();
    let mut exporter = tokio::spawn(flows::export(
        telemetry.events,
        telemetry.denials,
        detached_interfaces,
        context,
        flow_out,
        metrics.clone(),
    ));
    let server = config.metrics_addr.map(|addr| {
        let metrics = metrics.clone();
        tokio::spawn(async move {
            if let Err(error) = crate::metrics::serve(addr, metrics).await {
                error!(%addr, %error, "serving metrics");
            }
        })
    });
    let mut enforcer = Enforcer {
        config,
        datapath,
        publisher: Publisher::new(maps),
        counters: telemetry.counters,
        snapshot: netseg_policy::Snapshot::default(),
        sync_awaited: source.sync_awaited(),
        cni: CniRegistry::default(),
        compiler: Compiler::new(),
        compiled: None,
        flow_context,
        detached,
        status: Status::default(),
        served: BTreeMap::new(),
        metrics,
        source_problems: Vec::new(),
        policy_warnings: Vec::new(),
        publish_problem: None,
        source_synced: false,
        take_over_waits_for: None,
    };
    enforcer.take_update(source.update(), &source);
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    let mut sweep = tokio::time::interval(SWEEP_INTERVAL);
    let mut exporting = true;
    loop {
        match NodeView::read(&handle).await {
            Ok(view) => enforcer.reconcile(&view),
            Err(error) => error!(error = %anyhow::Error::from(error), "reading the node namespace"),
        }
        tokio::select! {
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
            Some(()) = source.changed() => enforcer.take_update(source.update(), &source),
            Some(change) = node_changes.next() => {
                enforcer.attach_announced(change);
                settle(&mut node_changes, |change| enforcer.attach_announced(change)).await;
            }
            Some(request) = next_cni_request(&mut cni_requests) => {
                let reply = match NodeView::read(&handle).await {
                    Ok(view) => enforcer.answer(request.request, &view),
                    Err(error) => Reply::refused(format!("{:#}", anyhow::Error::from(error))),
                };
                // The plugin may have given up waiting; it then fails the ADD.
                let _ = request.reply.send(reply);
            }
            _ = tick.tick() => {}
            _ = sweep.tick() => enforcer.sweep(),
            ended = &mut exporter, if exporting => {
                exporting = false;
                let why = match ended {
                    Ok(Ok(())) => "its events ended".to_owned(),
                    Ok(Err(error)) => format!("{:#}", anyhow::Error::from(error)),
                    Err(error) => error.to_string(),
                };
                // Enforcement goes on; the records do not, so health says so.
                error!(why, "the flow exporter stopped: no more flow records");
                enforcer.metrics.task_stopped("the flow exporter", &why);
            }
        }
    }
    match &enforcer.config.pin_dir {
        Some(dir) => {
            info!(pin_dir = %dir.display(), "stopping: the pinned programs keep enforcing the last policy")
        }
        None => info!("stopping: detaching from every interface"),
    }
    exporter.abort();
    if let Some(server) = server {
        server.abort();
    }
    drop(enforcer);
    Ok(())
}

/// How often expired conntrack and fragment entries that no packet met are
/// reclaimed (the programs reclaim those they meet). A full conntrack table
/// is 262,144 entries read one by one: every 10 s keeps that cheap.
const SWEEP_INTERVAL: Duration = Duration::from_secs(10);

/// Netlink events come in bursts (a veth brings links, addresses, routes):
/// take them all (each to `each` as it comes) before reconciling once.
async fn settle(
    changes: &mut (impl futures::Stream<Item = NodeChange> + Unpin),
    mut each: impl FnMut(NodeChange),
) {
    while let Ok(Some(change)) =
        tokio::time::timeout(Duration::from_millis(20), changes.next()).await
    {
        each(change);
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

async fn open_source(config: &SourceConfig, node_name: &str) -> anyhow::Result<Source> {
    Ok(match config {
        SourceConfig::Manifests(dir) => {
            Source::Manifests(ManifestSource::open(dir).context("watching the manifests")?)
        }
        SourceConfig::Kubernetes { kubeconfig } => {
            let client = kube_client(kubeconfig.as_deref())
                .await
                .context("configuring the Kubernetes client")?;
            Source::Kube(KubeSource::start(client, node_name))
        }
    })
}

async fn kube_client(kubeconfig: Option<&std::path::Path>) -> anyhow::Result<kube::Client> {
    let config = match kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?
        }
        None => kube::Config::infer().await?,
    };
    Ok(kube::Client::try_from(config)?)
}

impl Enforcer {
    fn take_update(&mut self, update: Update, source: &Source) {
        self.status.reloads += 1;
        self.source_problems = update.problems.iter().map(ToString::to_string).collect();
        for problem in &update.problems {
            warn!(%problem, "source problem; the last good version stays enforced");
        }
        if update.changed {
            self.compiled = None;
            self.snapshot = source.snapshot();
            let warnings = netseg_policy::warnings(&self.snapshot);
            for warning in &warnings {
                warn!(%warning, "policy warning");
            }
            self.policy_warnings = warnings
                .iter()
                .filter(|warning| warning.enforced_otherwise)
                .map(ToString::to_string)
                .collect();
        }
        self.source_synced |= update.synced;
        self.status.synced = self.source_synced;
    }

    fn sweep(&mut self) {
        match self.datapath.sweep() {
            Ok(swept) if swept.connections + swept.fragments > 0 => info!(
                connections = swept.connections,
                fragments = swept.fragments,
                "reclaimed expired entries"
            ),
            Ok(_) => {}
            Err(error) => warn!(%error, "reclaiming expired conntrack and fragment entries"),
        }
    }

    #[instrument(skip_all)]
    fn reconcile(&mut self, view: &NodeView) {
        if self.cni.retain_present(view) {
            self.compiled = None;
        }
        if self.config.compile.node_addresses != view.addresses {
            self.config.compile.node_addresses = view.addresses.clone();
            self.compiled = None;
        }
        let compiled = match self.compiled.take() {
            Some(compiled) => compiled,
            None => {
                let snapshot = self
                    .cni
                    .overlay(self.snapshot.clone(), &self.config.compile.node_name);
                self.compiler.compile(&snapshot, &self.config.compile)
            }
        };
        self.attach_pod_interfaces(view, &compiled);
        let (desired, interfaces) = if self.source_synced {
            self.slot_state(&compiled, view)
        } else {
            // A partial read is no policy (a kind not listed yet may deny
            // what the others allow): until the source has read everything
            // once, every pod interface of this daemon denies everything.
            (SlotState::default(), BTreeMap::new())
        };
        self.publish_problem = match self.publisher.publish(&desired) {
            Ok(published) => {
                if published.upserts + published.removals > 0 {
                    info!(
                        revision = published.revision,
                        upserts = published.upserts,
                        removals = published.removals,
                        "published"
                    );
                }
                None
            }
            Err(error) => {
                let error = format!("{:#}", anyhow::Error::from(error));
                error!(
                    error,
                    "publishing the policy; the last good policy stays enforced"
                );
                Some(error)
            }
        };
        self.take_over_when_ready();
        if !self.names_the_same(&compiled, &interfaces) {
            self.publish_flow_context(&compiled, &interfaces);
        }
        self.report(&compiled, &interfaces);
        self.served = interfaces;
        self.compiled = Some(compiled);
    }

    /// Swaps this daemon's programs into the links a previous daemon pinned,
    /// but only once it enforces a complete policy of its own: until then
    /// the previous programs keep enforcing the previous policy, which an
    /// unread directory or a failed publication would otherwise replace
    /// with nothing (every pinned pod denied, its connections cut).
    fn take_over_when_ready(&mut self) {
        let waits_for = if !self.source_synced {
            Some(self.sync_awaited)
        } else if self.publish_problem.is_some() || self.publisher.revision() == 0 {
            Some("a successful publication")
        } else {
            None
        };
        if waits_for != self.take_over_waits_for {
            if let Some(reason) = waits_for {
                warn!(
                    waits_for = reason,
                    "the previous daemon's pinned programs keep enforcing until then"
                );
            }
            self.take_over_waits_for = waits_for;
            self.status.waiting_for = waits_for;
        }
        if waits_for.is_some() {
            return;
        }
        if let Err(error) = self.datapath.take_over() {
            error!(
                error = format!("{:#}", anyhow::Error::from(error)),
                "taking over the pinned links"
            );
        }
    }

    /// A link named with a pod prefix is attached as soon as rtnetlink
    /// announces it, without waiting for the burst to settle and the
    /// namespace dump: it then denies everything until its pod's policy is
    /// published, where it would pass traffic until the next reconcile.
    fn attach_announced(&mut self, change: NodeChange) {
        let Some(link) = change.link else {
            return;
        };
        let attached = self
            .datapath
            .attached()
            .any(|attached| attached == (link.name.as_str(), link.ifindex));
        if attached || !self.named_as_pod(&link.name) {
            return;
        }
        let waited = change.received.elapsed();
        match self.datapath.attach(&link.name, link.ifindex) {
            Ok(()) => info!(
                interface = link.name,
                ifindex = link.ifindex,
                waited_us = waited.as_micros(),
                since_announced_us = change.received.elapsed().as_micros(),
                "attached as it appeared"
            ),
            Err(error) => error!(
                interface = link.name,
                error = format!("{:#}", anyhow::Error::from(error)),
                "attach"
            ),
        }
    }

    fn named_as_pod(&self, name: &str) -> bool {
        self.config
            .interface_prefixes
            .iter()
            .any(|prefix| name.starts_with(prefix.as_str()))
    }

    /// Programs go on every pod interface first: until its pod's policy is
    /// published, the interface has no endpoint and everything is denied.
    /// A pod interface is one named with a pod prefix, one the CNI plugin
    /// reported, or one a local pod's address alone is routed to.
    fn attach_pod_interfaces(&mut self, view: &NodeView, compiled: &Compiled) {
        let routed: Vec<u32> = compiled
            .endpoints
            .values()
            .flat_map(endpoint_ips)
            .filter_map(|ip| view.host_route_interface(ip))
            .collect();
        let mut present: BTreeMap<&str, u32> = view
            .links
            .iter()
            .filter(|link| self.named_as_pod(&link.name) || routed.contains(&link.ifindex))
            .map(|link| (link.name.as_str(), link.ifindex))
            .collect();
        present.extend(self.cni.interfaces());
        let live: Vec<u32> = present.values().copied().collect();
        if let Err(error) = self.datapath.sweep_stale_pins(&live) {
            warn!(
                error = format!("{:#}", anyhow::Error::from(error)),
                "removing stale pins"
            );
        }
        let gone: Vec<(String, u32)> = self
            .datapath
            .attached()
            .filter(|(name, ifindex)| present.get(name) != Some(ifindex))
            .map(|(name, ifindex)| (name.to_owned(), ifindex))
            .collect();
        for (name, ifindex) in gone {
            self.datapath.detach(&name);
            // A renamed interface keeps its ifindex, and its programs come back.
            if !live.contains(&ifindex) {
                // The exporter may have stopped; its error is its own to report.
                let _ = self.detached.send(ifindex);
            }
        }
        for (name, ifindex) in present {
            if let Err(error) = self.datapath.attach(name, ifindex) {
                error!(
                    interface = name,
                    error = format!("{:#}", anyhow::Error::from(error)),
                    "attach"
                );
            }
        }
    }

    /// The desired slot contents, and which pod each attached interface serves.
    fn slot_state(
        &self,
        compiled: &Compiled,
        view: &NodeView,
    ) -> (SlotState, BTreeMap<u32, PodRef>) {
        let attached: BTreeMap<u32, &str> = self
            .datapath
            .attached()
            .map(|(name, index)| (index, name))
            .collect();
        let mut endpoints = BTreeMap::new();
        let mut interfaces = BTreeMap::new();
        for (pod, endpoint) in &compiled.endpoints {
            let routed = || {
                let ip = endpoint_ips(endpoint).next()?;
                view.interface_for(ip)
            };
            // An interface the plugin reported is that pod's alone, even if
            // a stale Pod object's address still routes there.
            let ifindex = match self.cni.interface_of(pod) {
                Some(reported) => Some(reported),
                None => routed().filter(|i| !self.cni.interfaces().any(|(_, r)| r == *i)),
            }
            .filter(|i| attached.contains_key(i));
            if let Some(ifindex) = ifindex {
                endpoints.insert(ifindex, endpoint.to_contract());
                interfaces.insert(ifindex, pod.clone());
            }
        }
        let state = SlotState {
            endpoints,
            ipcache: compiled.ipcache.clone(),
            policy: compiled.policy.clone(),
        };
        (state, interfaces)
    }

    /// Whether the exporter already names what `compiled` and `interfaces` do.
    fn names_the_same(&self, compiled: &Compiled, interfaces: &BTreeMap<u32, PodRef>) -> bool {
        self.flow_context.borrow().names_the_same(
            interfaces,
            &compiled.pod_addresses,
            &compiled.verdicts,
            &self.config.compile.node_addresses,
        )
    }

    fn publish_flow_context(&self, compiled: &Compiled, interfaces: &BTreeMap<u32, PodRef>) {
        let context = FlowContext::new(
            interfaces.clone(),
            &compiled.pod_addresses,
            &compiled.verdicts,
            self.config.compile.node_addresses.clone(),
        );
        self.flow_context.send_replace(Arc::new(context));
    }

    /// Updates the status (and its file) and the metrics.
    fn report(&mut self, compiled: &Compiled, interfaces: &BTreeMap<u32, PodRef>) {
        let served: Vec<&PodRef> = interfaces.values().collect();
        self.status.revision = self.publisher.revision();
        self.status.problems = self
            .source_problems
            .iter()
            .chain(&self.policy_warnings)
            .chain(&self.publish_problem)
            .cloned()
            .collect();
        self.status.endpoints = interfaces.len();
        self.status.interfaces = self
            .datapath
            .attached()
            .map(|(name, ifindex)| InterfaceStatus {
                name: name.to_owned(),
                ifindex,
                pod: interfaces.get(&ifindex).map(ToString::to_string),
            })
            .collect();
        // Before the source is synced no pod is served, by design.
        let unenforced: Vec<String> = compiled
            .endpoints
            .keys()
            .filter(|pod| self.source_synced && !served.contains(pod))
            .map(ToString::to_string)
            .collect();
        for pod in unenforced
            .iter()
            .filter(|pod| !self.status.pods_without_interface.contains(pod))
        {
            error!(
                pod,
                "local pod NOT enforced: no interface to attach to (its address is not routed to an interface of its own); the daemon reports unready"
            );
        }
        if unenforced.is_empty() && !self.status.pods_without_interface.is_empty() {
            info!("every local pod is enforced again");
        }
        self.status.pods_without_interface = unenforced;
        let counters = status::read_counters(&self.counters);
        self.status.counters = status::named(&counters);
        self.metrics.observe(&self.status, &counters);
        if let Some(path) = &self.config.status_file
            && let Err(error) = status::write(path, &self.status)
        {
            warn!(path = %path.display(), %error, "writing the status file");
        }
    }
}

fn endpoint_ips(endpoint: &LocalEndpoint) -> impl Iterator<Item = IpAddr> {
    let v4 = endpoint.ipv4.map(IpAddr::V4);
    let v6 = endpoint.ipv6.map(IpAddr::V6);
    v4.into_iter().chain(v6)
}
