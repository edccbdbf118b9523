//! `netseg`: the node daemon, the demo and the offline tools.

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand, ValueEnum};
use netseg::{check, cli, daemon, datapath, demo, explain, flows::recent::RecentLimits};
use netseg_contract::{PROTO_ICMP, PROTO_ICMPV6, PROTO_SCTP, PROTO_TCP, PROTO_UDP};
use netseg_policy::{CompileOptions, DefaultAction};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "netseg",
    version,
    about = "Network segmentation enforcer for Kubernetes nodes"
)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, env = "NETSEG_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Enforce the policy of the API server (or of a manifests directory) on this node's pod interfaces.
    // A flag given twice takes its last value, so a wrapper's defaults can
    // be overridden by appending.
    #[command(args_override_self = true)]
    Daemon(Box<DaemonArgs>),
    /// Run the demo: isolated node namespaces with the pods of examples/, the
    /// example policies under default deny, then the zones, conduits and
    /// audit preview of examples/segments/; live traffic and the flow log
    /// (root only).
    Demo,
    /// Explain what the policies of a manifests directory make of one
    /// connection: at each end, the verdict and every step of precedence
    /// met on the way (rules matched or not, Pass, isolation, posture,
    /// default). Exits 0 when the connection is allowed, 1 when it is denied.
    Explain(ExplainArgs),
    /// Read flow records from a flow log (with its rotated files) or from a
    /// running daemon's flow API: filter them, follow them, print them as a
    /// table or JSON lines, or sum them up (top talkers, top denied).
    Flows(Box<cli::flows::FlowsArgs>),
    /// Detach what a daemon run with --pin-dir left enforcing.
    Detach {
        /// The bpffs directory given to the daemon as --pin-dir.
        #[arg(long, env = "NETSEG_PIN_DIR")]
        pin_dir: PathBuf,
    },
    /// Validate a manifests directory offline: one line per problem, then
    /// warnings about valid objects and the status conditions of
    /// ClusterNetworkPolicies, Segments and SegmentPolicies. Exits 1 if
    /// there is any problem (or, with --strict, any warning).
    Check {
        /// The directory of manifests.
        dir: PathBuf,
        /// Fail on warnings too.
        #[arg(long)]
        strict: bool,
    },
    /// Print netseg's version; with --verbose also the SHA-256 of the eBPF
    /// object it embeds and the pinned toolchain that built it
    /// (ebpf/toolchain.txt), to compare with a rebuild from source.
    Version {
        #[arg(long)]
        verbose: bool,
    },
}

#[derive(clap::Args)]
struct ExplainArgs {
    /// The directory of manifests.
    dir: PathBuf,
    /// The client: namespace/pod, or an IP address.
    #[arg(long, required_unless_present = "flow")]
    from: Option<String>,
    /// The server: namespace/pod, or an IP address.
    #[arg(long, required_unless_present = "flow")]
    to: Option<String>,
    #[arg(long, value_enum, default_value_t = ProtocolArg::Tcp)]
    protocol: ProtocolArg,
    /// The destination port (ignored for ICMP).
    #[arg(long, default_value_t = 80)]
    port: u16,
    /// Use the pods' IPv6 addresses.
    #[arg(long)]
    ipv6: bool,
    /// Explain the connection of this flow record (a line of the flow log,
    /// or - to read one from stdin) instead: from its source pod or
    /// address to its destination, by its protocol and destination port.
    #[arg(long, value_name = "RECORD", conflicts_with_all = ["from", "to", "protocol", "port", "ipv6"])]
    flow: Option<String>,
    #[arg(long, value_enum, default_value_t = DefaultActionArg::Deny)]
    default_action: DefaultActionArg,
}

/// A `--flow-update-interval`: a duration of at least a second.
fn update_interval(text: &str) -> Result<std::time::Duration, String> {
    let interval = humantime::parse_duration(text).map_err(|error| error.to_string())?;
    if interval < std::time::Duration::from_secs(1) {
        return Err(format!("{text} is shorter than the shortest interval, 1s"));
    }
    Ok(interval)
}

#[derive(Clone, Copy, ValueEnum)]
enum ProtocolArg {
    Tcp,
    Udp,
    Sctp,
    Icmp,
}

#[derive(Clone, Copy, ValueEnum)]
enum FlowEventsArg {
    /// New allowed connections and denials (within the denial record budgets).
    All,
    /// Only denials.
    Denied,
    /// None: counters and metrics only.
    None,
}

#[derive(Clone, Copy, ValueEnum)]
enum DefaultActionArg {
    /// Zero trust: every pod is isolated in both directions.
    Deny,
    /// Kubernetes: only pods selected by a policy are isolated, per direction.
    Allow,
}

#[derive(clap::Args)]
struct DaemonArgs {
    /// Enforce the objects of this directory of manifests (*.yaml, *.yml, *.json), watched for
    /// changes, instead of watching the Kubernetes API server.
    #[arg(long, env = "NETSEG_MANIFESTS")]
    manifests: Option<PathBuf>,
    /// Without --manifests: the kubeconfig to reach the API server with (default: KUBECONFIG,
    /// ~/.kube/config, or the pod's service account).
    #[arg(long, env = "NETSEG_KUBECONFIG", conflicts_with = "manifests")]
    kubeconfig: Option<PathBuf>,
    /// Without --manifests: the namespace netseg runs in, where the Lease electing the one
    /// node that writes status conditions goes.
    #[arg(long, env = "NETSEG_NAMESPACE", default_value = "kube-system")]
    namespace: String,
    /// This node's name: pods whose spec.nodeName equals it are enforced here.
    #[arg(long, env = "NETSEG_NODE_NAME")]
    node_name: String,
    /// What happens to traffic that no policy decides.
    #[arg(long, env = "NETSEG_DEFAULT_ACTION", value_enum, default_value_t = DefaultActionArg::Deny)]
    default_action: DefaultActionArg,
    /// Deny traffic from the node itself (kubelet probes) to its pods unless a policy allows it.
    #[arg(long, env = "NETSEG_DENY_NODE_TRAFFIC")]
    deny_node_traffic: bool,
    /// Attach to node-namespace interfaces whose name starts with one of these prefixes.
    #[arg(
        long = "interface-prefix",
        env = "NETSEG_INTERFACE_PREFIXES",
        value_delimiter = ',',
        default_value = "veth"
    )]
    interface_prefixes: Vec<String>,
    /// Where flow records go, one JSON object per line ("-" for stdout).
    #[arg(long, env = "NETSEG_FLOW_LOG", default_value = "-")]
    flow_log: PathBuf,
    /// A flow log file is renamed to FILE.1 (older ones to FILE.2 ..) before it grows past this many bytes.
    #[arg(long, env = "NETSEG_FLOW_LOG_MAX_BYTES", default_value_t = 100 << 20)]
    flow_log_max_bytes: u64,
    /// Rotated flow log files kept beside the current one (the oldest beyond are deleted).
    #[arg(long, env = "NETSEG_FLOW_LOG_KEEP", default_value_t = 4)]
    flow_log_keep: u32,
    /// How often a live connection gets an `update` record of its traffic (e.g. 60s, 5m; at least 1s).
    #[arg(long, env = "NETSEG_FLOW_UPDATE_INTERVAL", default_value = "60s", value_parser = update_interval)]
    flow_update_interval: std::time::Duration,
    /// The label keys whose values flow records carry of each pod, comma-separated ("" for none).
    #[arg(long, env = "NETSEG_FLOW_LABELS", value_name = "KEYS", default_value = netseg::flows::FlowLabels::DEFAULT)]
    flow_labels: netseg::flows::FlowLabels,
    /// Denials a second one endpoint (a pod's interface, one direction) reports with a record of
    /// their own; the rest are counted in one aggregated record per endpoint, reason and second.
    #[arg(long, env = "NETSEG_DENY_RECORDS_PER_ENDPOINT", default_value_t = datapath::DenyBudgets::DEFAULT.per_endpoint)]
    deny_records_per_endpoint: u32,
    /// The same budget for all endpoints of the node together.
    #[arg(long, env = "NETSEG_DENY_RECORDS_TOTAL", default_value_t = datapath::DenyBudgets::DEFAULT.total)]
    deny_records_total: u32,
    /// Which flow events the datapath reports (verdicts and counters do not change).
    #[arg(long, env = "NETSEG_FLOW_EVENTS", value_enum, default_value_t = FlowEventsArg::All)]
    flow_events: FlowEventsArg,
    /// A JSON file describing what is enforced, rewritten after every change.
    #[arg(long, env = "NETSEG_STATUS_FILE")]
    status_file: Option<PathBuf>,
    /// Serve Prometheus metrics on /metrics and a health check on /healthz here (e.g. 127.0.0.1:9750).
    #[arg(long, env = "NETSEG_METRICS_ADDR")]
    metrics_addr: Option<std::net::SocketAddr>,
    /// Serve the flow API (GET /api/v1/flows: recent flow records, filtered, and a follow
    /// stream) here, or `off`. Records name pods and their traffic: keep it on localhost.
    #[arg(long, env = "NETSEG_FLOW_API_ADDR", default_value = "127.0.0.1:9091", value_parser = listen_address)]
    flow_api_addr: ListenAddress,
    /// Flow records the flow API keeps in memory for its answers (and never more than 16 MiB).
    #[arg(long, env = "NETSEG_FLOW_API_RECORDS", default_value_t = RecentLimits::DEFAULT.records,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    flow_api_records: usize,
    /// Connections the conntrack map holds; when it is full, new connections are refused.
    #[arg(long, env = "NETSEG_CONNTRACK_ENTRIES", default_value_t = 262_144)]
    conntrack_entries: u32,
    /// Connections one pod may hold in the conntrack map; beyond it its new connections are refused.
    #[arg(long, env = "NETSEG_CONNTRACK_PER_ENDPOINT", default_value_t = 32_768)]
    conntrack_per_endpoint: u32,
    /// Fragmented datagrams in flight one pod may hold; beyond it its fragmented datagrams are refused.
    #[arg(long, env = "NETSEG_FRAGMENTS_PER_ENDPOINT", default_value_t = 1_024)]
    fragments_per_endpoint: u32,
    /// A directory on bpffs: pin the programs' links there so that the last
    /// published policy stays enforced while the daemon is stopped, restarted
    /// or upgraded (`netseg detach` removes them). Without it, the programs
    /// are detached when the daemon exits.
    #[arg(long, env = "NETSEG_PIN_DIR")]
    pin_dir: Option<PathBuf>,
    /// Serve the netseg-cni plugin on this unix socket (e.g. /run/netseg/cni.sock):
    /// a pod's ADD then returns only once its policy is enforced on its
    /// interface. Without it (standalone), new interfaces are found over netlink.
    #[arg(long, env = "NETSEG_CNI_SOCKET")]
    cni_socket: Option<PathBuf>,
    /// Bytes of the flow-event ring buffer (a power of two, at least a page).
    #[arg(long, env = "NETSEG_EVENT_BUFFER_BYTES", default_value_t = 4 << 20)]
    event_buffer_bytes: u32,
}

/// An address to listen on, or none (`off`).
#[derive(Clone, Copy)]
struct ListenAddress(Option<std::net::SocketAddr>);

fn listen_address(text: &str) -> Result<ListenAddress, String> {
    match text {
        "off" => Ok(ListenAddress(None)),
        text => text
            .parse()
            .map(|addr| ListenAddress(Some(addr)))
            .map_err(|_| {
                format!("expected an address and port (127.0.0.1:9091) or off, not {text:?}")
            }),
    }
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_env("NETSEG_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

impl DefaultActionArg {
    fn action(self) -> DefaultAction {
        match self {
            DefaultActionArg::Deny => DefaultAction::Deny,
            DefaultActionArg::Allow => DefaultAction::Allow,
        }
    }
}

fn explain(args: &ExplainArgs) -> ExitCode {
    let protocol = match (args.protocol, args.ipv6) {
        (ProtocolArg::Tcp, _) => PROTO_TCP,
        (ProtocolArg::Udp, _) => PROTO_UDP,
        (ProtocolArg::Sctp, _) => PROTO_SCTP,
        (ProtocolArg::Icmp, false) => PROTO_ICMP,
        (ProtocolArg::Icmp, true) => PROTO_ICMPV6,
    };
    let asked = match (&args.flow, &args.from, &args.to) {
        (Some(record), _, _) => explain::FlowQuestion::read_record(record, std::io::stdin().lock()),
        (None, Some(from), Some(to)) => Ok(explain::FlowQuestion {
            from: from.clone(),
            to: to.clone(),
            protocol,
            port: args.port,
            ipv6: args.ipv6,
        }),
        _ => Err(anyhow::anyhow!("give --from and --to, or --flow")),
    };
    let asked = match asked {
        Ok(asked) => asked,
        Err(error) => {
            eprintln!("netseg explain: {error:#}");
            return ExitCode::from(2);
        }
    };
    let question = asked.question(args.default_action.action());
    match explain::explain(&args.dir, &question, &mut std::io::stdout().lock()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("netseg explain: {error:#}");
            ExitCode::from(2)
        }
    }
}

impl DaemonArgs {
    fn into_config(self) -> daemon::DaemonConfig {
        daemon::DaemonConfig {
            source: match self.manifests {
                Some(dir) => daemon::SourceConfig::Manifests(dir),
                None => daemon::SourceConfig::Kubernetes {
                    kubeconfig: self.kubeconfig,
                },
            },
            namespace: self.namespace,
            compile: CompileOptions {
                node_name: self.node_name,
                default_action: self.default_action.action(),
                deny_node_traffic: self.deny_node_traffic,
                node_addresses: Vec::new(),
            },
            interface_prefixes: self.interface_prefixes,
            flow_log: Some(self.flow_log),
            flow_log_rotation: netseg::flows::Rotation {
                max_bytes: self.flow_log_max_bytes,
                keep: self.flow_log_keep,
            },
            flow_update_interval: self.flow_update_interval,
            flow_labels: self.flow_labels,
            deny_budgets: datapath::DenyBudgets {
                per_endpoint: self.deny_records_per_endpoint,
                total: self.deny_records_total,
            },
            status_file: self.status_file,
            metrics_addr: self.metrics_addr,
            flow_api_addr: self.flow_api_addr.0,
            flow_api_limits: RecentLimits {
                records: self.flow_api_records,
                ..RecentLimits::DEFAULT
            },
            sizes: datapath::MapSizes {
                conntrack: self.conntrack_entries,
                events_bytes: self.event_buffer_bytes,
            },
            limits: datapath::Limits {
                conntrack_per_endpoint: self.conntrack_per_endpoint,
                fragments_per_endpoint: self.fragments_per_endpoint,
            },
            flow_events: match self.flow_events {
                FlowEventsArg::All => datapath::FlowEvents::All,
                FlowEventsArg::Denied => datapath::FlowEvents::Denied,
                FlowEventsArg::None => datapath::FlowEvents::None,
            },
            pin_dir: self.pin_dir,
            cni_socket: self.cni_socket,
        }
    }
}

fn check(dir: &std::path::Path, strict: bool) -> ExitCode {
    match check::check(dir, strict, &mut std::io::stdout().lock()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("netseg check: {error}");
            ExitCode::from(2)
        }
    }
}

fn detach(pin_dir: &std::path::Path) -> ExitCode {
    match datapath::pins::PinDir::open(pin_dir).and_then(|pins| pins.unpin_all()) {
        Ok(count) => {
            println!("unpinned {count} links from {}", pin_dir.display());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("netseg detach: {:#}", anyhow::Error::from(error));
            ExitCode::FAILURE
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match cli.command {
        Command::Check { dir, strict } => check(&dir, strict),
        Command::Detach { pin_dir } => detach(&pin_dir),
        Command::Version { verbose } => {
            print!("{}", cli::version::report(verbose));
            ExitCode::SUCCESS
        }
        Command::Explain(args) => explain(&args),
        Command::Flows(args) => cli::flows::run(*args).await,
        Command::Demo => match tokio::task::spawn_blocking(demo::run).await {
            Ok(Ok(())) => ExitCode::SUCCESS,
            Ok(Err(error)) => {
                eprintln!("netseg demo: {error:#}");
                ExitCode::FAILURE
            }
            Err(panic) => {
                eprintln!("netseg demo: {panic}");
                ExitCode::FAILURE
            }
        },
        Command::Daemon(args) => match daemon::run(args.into_config()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("netseg daemon: {error:#}");
                ExitCode::FAILURE
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use k8s_openapi::api::apps::v1::DaemonSet;

    use super::{Cli, Command};

    /// The DaemonSet's arguments are ones this netseg accepts (its
    /// environment supplies the node name).
    #[test]
    fn the_daemonset_runs_a_command_line_netseg_accepts() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/daemonset.yaml");
        let text = std::fs::read_to_string(path).expect("deploy/daemonset.yaml");
        let daemonset: DaemonSet = serde_saphyr::from_str(&text).expect("a DaemonSet");
        let spec = daemonset
            .spec
            .expect("spec")
            .template
            .spec
            .expect("pod spec");
        let container = spec
            .containers
            .iter()
            .find(|c| c.name == "netseg")
            .expect("the netseg container");
        let mut argv = vec!["netseg".to_owned()];
        argv.extend(container.args.clone().expect("args"));
        argv.extend(["--node-name".to_owned(), "node-1".to_owned()]);
        let cli = Cli::try_parse_from(&argv).unwrap_or_else(|error| panic!("{error}"));
        let Command::Daemon(args) = cli.command else {
            panic!("the DaemonSet runs `netseg daemon`");
        };
        assert!(args.manifests.is_none(), "Kubernetes mode");
        assert!(args.pin_dir.is_some(), "enforcement outlives the pod");
    }

    fn daemon_args(extra: &[&str]) -> Result<Box<super::DaemonArgs>, clap::Error> {
        let argv = ["netseg", "daemon", "--node-name", "node-1"];
        let cli = Cli::try_parse_from(argv.iter().chain(extra))?;
        match cli.command {
            Command::Daemon(args) => Ok(args),
            _ => panic!("netseg daemon"),
        }
    }

    #[test]
    fn the_flow_api_listens_on_localhost_unless_told_otherwise_or_off() {
        let listens = |extra: &[&str]| daemon_args(extra).map(|args| args.flow_api_addr.0);
        let localhost = "127.0.0.1:9091".parse().ok();
        assert_eq!(listens(&[]).expect("the default"), localhost);
        assert_eq!(listens(&["--flow-api-addr", "off"]).expect("off"), None);
        let error = listens(&["--flow-api-addr", "everywhere"]).expect_err("not an address");
        assert!(
            error.to_string().contains(
                "expected an address and port (127.0.0.1:9091) or off, not \"everywhere\""
            ),
            "{error}"
        );
        let error = daemon_args(&["--flow-api-records", "0"])
            .err()
            .expect("no room");
        assert!(error.to_string().contains("--flow-api-records"), "{error}");
    }
}
