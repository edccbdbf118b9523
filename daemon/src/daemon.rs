//! `netseg daemon`: keeps the datapath enforcing the compiled policy of the
//! manifests directory on the pod interfaces of this node namespace.

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
use netseg_policy::{CompileOptions, Compiled, Compiler, PodRef};
use tokio::{
    signal::unix::{SignalKind, signal},
    sync::watch,
};
use tracing::{error, info, instrument, warn};

use crate::{
    datapath::{
        Datapath, FlowEvents, KernelMaps, Limits, MapSizes, pins::PinDir, publish::Publisher,
        state::SlotState,
    },
    flows::{self, FlowContext},
    manifests::{self, ManifestStore},
    metrics::Metrics,
    node::{self, NodeView},
    status::{self, InterfaceStatus, Status},
};

/// Everything `netseg daemon` is told on its command line.
pub struct DaemonConfig {
    pub manifests: PathBuf,
    pub compile: CompileOptions,
    pub interface_prefixes: Vec<String>,
    pub flow_log: Option<PathBuf>,
    pub status_file: Option<PathBuf>,
    pub metrics_addr: Option<SocketAddr>,
    pub sizes: MapSizes,
    pub limits: Limits,
    pub flow_events: FlowEvents,
    /// Pin links here so that enforcement outlives the daemon.
    pub pin_dir: Option<PathBuf>,
}

/// The daemon's state between events.
struct Enforcer {
    config: DaemonConfig,
    datapath: Datapath,
    publisher: Publisher<KernelMaps>,
    counters: PerCpuArray<MapData, u64>,
    store: ManifestStore,
    compiler: Compiler,
    /// The last compilation, redone when the manifests or node addresses change.
    compiled: Option<Compiled>,
    flow_context: watch::Sender<Arc<FlowContext>>,
    status: Status,
    metrics: Arc<Metrics>,
    /// Problems of the last manifests reload and of the last publication.
    manifest_problems: Vec<String>,
    publish_problem: Option<String>,
}

pub async fn run(config: DaemonConfig) -> anyhow::Result<()> {
    let pins = config.pin_dir.as_deref().map(PinDir::open).transpose()?;
    let (datapath, mut maps, telemetry) =
        Datapath::load(config.sizes, pins).context("loading the datapath")?;
    maps.set_flow_events(config.flow_events)
        .context("configuring flow events")?;
    maps.set_limits(config.limits)
        .context("configuring the per-endpoint limits")?;
    let (handle, mut node_changes) = node::watch().context("watching the node namespace")?;
    let mut manifest_changes =
        manifests::watch(&config.manifests).context("watching the manifests")?;
    let (flow_context, context) = watch::channel(Arc::new(FlowContext::default()));
    let flow_out = open_flow_log(config.flow_log.as_deref())?;
    let metrics = Arc::new(Metrics::new());
    let exporter = tokio::spawn(flows::export(
        telemetry.events,
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
        store: ManifestStore::default(),
        compiler: Compiler::new(),
        compiled: None,
        flow_context,
        status: Status::default(),
        metrics,
        manifest_problems: Vec::new(),
        publish_problem: None,
    };
    enforcer.reload_manifests();
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    let mut sweep = tokio::time::interval(SWEEP_INTERVAL);
    loop {
        match NodeView::read(&handle).await {
            Ok(view) => enforcer.reconcile(&view),
            Err(error) => error!(error = %anyhow::Error::from(error), "reading the node namespace"),
        }
        tokio::select! {
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
            Some(()) = manifest_changes.changed() => enforcer.reload_manifests(),
            Some(()) = node_changes.next() => settle(&mut node_changes).await,
            _ = tick.tick() => {}
            _ = sweep.tick() => enforcer.sweep(),
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
/// take them all before reconciling once.
async fn settle(changes: &mut (impl futures::Stream<Item = ()> + Unpin)) {
    while let Ok(Some(())) = tokio::time::timeout(Duration::from_millis(20), changes.next()).await {
    }
}

/// Where `--flow-log` points: a file opened for appending, or stdout.
pub fn open_flow_log(path: Option<&std::path::Path>) -> anyhow::Result<Box<dyn Write + Send>> {
    // Unbuffered: the flow writer already gathers records into large writes.
    Ok(match path {
        None => Box::new(std::io::stdout()),
        Some(path) if path.as_os_str() == "-" => Box::new(std::io::stdout()),
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening flow log {}", path.display()))?;
            Box::new(file)
        }
    })
}

impl Enforcer {
    fn reload_manifests(&mut self) {
        let reload = self.store.reload(&self.config.manifests);
        self.status.reloads += 1;
        self.manifest_problems = reload.problems.iter().map(ToString::to_string).collect();
        for problem in &reload.problems {
            warn!(%problem, "manifest problem; the last good version stays enforced");
        }
        if reload.changed {
            self.compiled = None;
        }
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
        self.attach_pod_interfaces(view);
        if self.config.compile.node_addresses != view.addresses {
            self.config.compile.node_addresses = view.addresses.clone();
            self.compiled = None;
        }
        let compiled = match self.compiled.take() {
            Some(compiled) => compiled,
            None => self
                .compiler
                .compile(&self.store.snapshot(), &self.config.compile),
        };
        let (desired, interfaces) = self.slot_state(&compiled, view);
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
        if let Err(error) = self.datapath.take_over() {
            error!(
                error = format!("{:#}", anyhow::Error::from(error)),
                "taking over the pinned links"
            );
        }
        if !self.names_the_same(&compiled, &interfaces) {
            self.publish_flow_context(&compiled, &interfaces);
        }
        self.report(&compiled, interfaces);
        self.compiled = Some(compiled);
    }

    /// Programs go on every pod interface first: until its pod's policy is
    /// published, the interface has no endpoint and everything is denied.
    fn attach_pod_interfaces(&mut self, view: &NodeView) {
        let is_pod = |name: &str| {
            self.config
                .interface_prefixes
                .iter()
                .any(|p| name.starts_with(p.as_str()))
        };
        let present: BTreeMap<&str, u32> = view
            .links
            .iter()
            .filter(|link| is_pod(&link.name))
            .map(|link| (link.name.as_str(), link.ifindex))
            .collect();
        let live: Vec<u32> = present.values().copied().collect();
        if let Err(error) = self.datapath.sweep_stale_pins(&live) {
            warn!(
                error = format!("{:#}", anyhow::Error::from(error)),
                "removing stale pins"
            );
        }
        let gone: Vec<String> = self
            .datapath
            .attached()
            .filter(|(name, ifindex)| present.get(name) != Some(ifindex))
            .map(|(name, _)| name.to_owned())
            .collect();
        for name in gone {
            self.datapath.detach(&name);
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
            let ip = endpoint
                .ipv4
                .map(IpAddr::V4)
                .or(endpoint.ipv6.map(IpAddr::V6));
            let ifindex = ip
                .and_then(|ip| view.interface_for(ip))
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
            &compiled.rules,
            &self.config.compile.node_addresses,
        )
    }

    fn publish_flow_context(&self, compiled: &Compiled, interfaces: &BTreeMap<u32, PodRef>) {
        let context = FlowContext::new(
            interfaces.clone(),
            &compiled.pod_addresses,
            &compiled.rules,
            self.config.compile.node_addresses.clone(),
        );
        self.flow_context.send_replace(Arc::new(context));
    }

    /// Updates the status (and its file) and the metrics.
    fn report(&mut self, compiled: &Compiled, interfaces: BTreeMap<u32, PodRef>) {
        let served: Vec<&PodRef> = interfaces.values().collect();
        self.status.revision = self.publisher.revision();
        self.status.problems = self
            .manifest_problems
            .iter()
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
        self.status.pods_without_interface = compiled
            .endpoints
            .keys()
            .filter(|pod| !served.contains(pod))
            .map(ToString::to_string)
            .collect();
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
