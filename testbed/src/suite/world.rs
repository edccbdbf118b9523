//! One node with the pods of a [`Layout`] (host-network ones served from
//! the node's namespace), their servers, a manifests directory (with the
//! Node object, if the layout has one) and one running daemon, shared by
//! every case of a group. Cases change it only through manifest files (and
//! daemon flags), and [`World::reset`] puts it back.

use std::collections::BTreeSet;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::case::{Change, Model};
use super::layout::{Labels, Layout, borrowed, overlay};
use crate::daemon::{Daemon, DaemonStatus};
use crate::manifests::Manifests;
use crate::matrix::ServerSet;
use crate::netns::require_root;
use crate::probes::Protocol;
use crate::topology::{Node, Pod};

/// How a group's world is built.
#[derive(Debug, Clone)]
pub struct WorldConfig {
    /// Names the node (and its namespaces).
    pub tag: &'static str,
    pub daemon_args: Vec<&'static str>,
    pub layout: Layout,
    /// Whether every denied cell must be a silent drop (a timeout), never a
    /// refusal.
    pub silent_denials: bool,
}

impl WorldConfig {
    /// Kubernetes semantics: only pods selected by a policy are isolated.
    pub fn allow(tag: &'static str, layout: Layout) -> Self {
        Self {
            tag,
            daemon_args: vec!["--default-action", "allow"],
            layout,
            silent_denials: false,
        }
    }

    /// Zero trust: every pod isolated both ways.
    pub fn deny(tag: &'static str, layout: Layout) -> Self {
        Self {
            daemon_args: vec!["--default-action", "deny"],
            ..Self::allow(tag, layout)
        }
    }

    /// A denial must time out: a TCP RST or an ICMP error fails the cell.
    pub fn requiring_silent_denials(self) -> Self {
        Self {
            silent_denials: true,
            ..self
        }
    }

    pub fn default_allowed(&self) -> bool {
        !self
            .daemon_args
            .windows(2)
            .any(|w| w == ["--default-action", "deny"])
    }
}

/// Fields drop in declaration order: servers before the pods they run in,
/// the daemon before the manifests it reads and the interfaces it holds,
/// the node last (it removes whatever pod namespace is left).
pub struct World {
    pub servers: ServerSet,
    pub daemon: Daemon,
    manifests: Manifests,
    pub pods: Vec<Pod>,
    pub node: Node,
    config: WorldConfig,
    /// What the running daemon was started with.
    daemon_args: Vec<&'static str>,
    /// Policy files written by the running case, by [`policy_key`].
    policies: BTreeSet<String>,
    relabelled_namespaces: BTreeSet<String>,
    relabelled_pods: BTreeSet<String>,
    relabelled_node: bool,
}

impl World {
    pub fn start(config: WorldConfig) -> Result<Self> {
        require_root();
        // On an early return the locals drop in reverse order: daemon,
        // servers, manifests, pods, node.
        let layout = &config.layout;
        let node = Node::new(config.tag)?;
        let pods = layout
            .pods
            .iter()
            .map(|pod| node.add_pod(&pod.name))
            .collect::<Result<Vec<Pod>>>()?;
        let manifests = Manifests::new()?;
        for ns in &layout.namespaces {
            write_namespace(&manifests, layout, &ns.name, &Labels::new())?;
        }
        for pod in &pods {
            write_pod(&manifests, layout, pod, &Labels::new())?;
        }
        write_node(&manifests, layout, &node)?;
        write_host_network_pods(&manifests, layout, &node)?;
        let refs: Vec<&Pod> = pods.iter().collect();
        let mut servers = ServerSet::start(&refs, &layout.tcp_ports, &layout.udp_ports, true)?;
        serve_host_network_pods(&mut servers, layout, &node)?;
        let daemon = start_daemon(&node, &manifests, &config.daemon_args, pods.len())?;
        Ok(Self {
            servers,
            daemon,
            manifests,
            pods,
            node,
            daemon_args: config.daemon_args.clone(),
            config,
            policies: BTreeSet::new(),
            relabelled_namespaces: BTreeSet::new(),
            relabelled_pods: BTreeSet::new(),
            relabelled_node: false,
        })
    }

    pub fn model(&self) -> Model {
        Model {
            pods: self.pods.iter().map(Pod::full_name).collect(),
            default_allowed: self.config.default_allowed(),
            silent_denials: self.config.silent_denials,
            addresses: self
                .pods
                .iter()
                .map(|pod| (pod.full_name(), (pod.ipv4(), pod.ipv6())))
                .collect(),
            node_ipv4: self.node.ipv4(),
            node_ipv6: self.node.ipv6(),
        }
    }

    pub fn pod_refs(&self) -> Vec<&Pod> {
        self.pods.iter().collect()
    }

    /// Stops the daemon and starts it again with other flags, on the same
    /// manifests; the old one detaches before the new one attaches.
    fn restart_daemon(&mut self, args: Vec<&'static str>) -> Result<()> {
        self.daemon.stop()?;
        self.daemon = start_daemon(&self.node, &self.manifests, &args, self.pods.len())?;
        self.daemon_args = args;
        Ok(())
    }

    /// Applies `changes` at once and waits until the daemon has read and
    /// enforced them, reporting exactly the `expected_problems`.
    pub fn apply(&mut self, changes: &[Change], expected_problems: &[String]) -> Result<()> {
        let mut pending = None;
        for change in changes {
            if let Change::DaemonArgs(args) = change {
                if let Some(before) = pending.take() {
                    self.wait_enforced(before, &[])?;
                }
                self.restart_daemon(args.clone())?;
            } else {
                if pending.is_none() {
                    pending = Some(self.reloads()?);
                }
                self.write(change)?;
            }
        }
        match pending {
            Some(before) => self.wait_enforced(before, expected_problems),
            None if expected_problems.is_empty() => Ok(()),
            None => check_problems(
                &self.daemon.status()?.unwrap_or_default(),
                expected_problems,
            ),
        }
    }

    /// Removes every policy the case wrote, restores the layout's labels
    /// and the group's daemon arguments.
    pub fn reset(&mut self) -> Result<()> {
        if self.daemon_args != self.config.daemon_args {
            self.restart_daemon(self.config.daemon_args.clone())?;
        }
        if self.policies.is_empty()
            && self.relabelled_namespaces.is_empty()
            && self.relabelled_pods.is_empty()
            && !self.relabelled_node
        {
            return Ok(());
        }
        let before = self.reloads()?;
        self.remove_all_policies()?;
        for ns in std::mem::take(&mut self.relabelled_namespaces) {
            write_namespace(&self.manifests, &self.config.layout, &ns, &Labels::new())?;
        }
        for pod in std::mem::take(&mut self.relabelled_pods) {
            write_pod(
                &self.manifests,
                &self.config.layout,
                self.pod(&pod)?,
                &Labels::new(),
            )?;
        }
        if std::mem::take(&mut self.relabelled_node) {
            write_node(&self.manifests, &self.config.layout, &self.node)?;
        }
        self.wait_enforced(before, &[])
    }

    /// Whether the daemon still runs.
    pub fn daemon_alive(&mut self) -> bool {
        matches!(self.daemon.try_exit(), Ok(None))
    }

    /// The last `lines` lines of the daemon's log.
    pub fn daemon_log_tail(&self, lines: usize) -> String {
        let log = self.daemon.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    fn reloads(&self) -> Result<u64> {
        Ok(self.daemon.status()?.map_or(0, |s| s.reloads))
    }

    fn wait_enforced(&mut self, before: u64, expected_problems: &[String]) -> Result<()> {
        let status: DaemonStatus = self.daemon.wait_reload_after(before)?;
        check_problems(&status, expected_problems)
    }

    fn pod(&self, full_name: &str) -> Result<&Pod> {
        self.pods
            .iter()
            .find(|p| p.full_name() == full_name)
            .with_context(|| format!("no pod {full_name} in the world"))
    }

    fn write(&mut self, change: &Change) -> Result<()> {
        let layout = &self.config.layout;
        match change {
            Change::Policy(policy) => {
                let key = policy_key(policy)?;
                self.manifests
                    .policy(&file_stem(&key), &serde_saphyr::to_string(policy)?)?;
                self.policies.insert(key);
            }
            Change::DeletePolicy { namespace, name } => {
                let key = format!("{namespace}/{name}");
                if !self.policies.remove(&key) {
                    bail!("the case deletes policy {key}, which it never created");
                }
                self.manifests.remove_policy(&file_stem(&key))?;
            }
            Change::DeleteAllPolicies => self.remove_all_policies()?,
            Change::LabelNamespace { namespace, labels } => {
                write_namespace(&self.manifests, layout, namespace, labels)?;
                self.relabelled_namespaces.insert(namespace.clone());
            }
            Change::LabelPod { pod, labels } => {
                write_pod(&self.manifests, layout, self.pod(pod)?, labels)?;
                self.relabelled_pods.insert(pod.clone());
            }
            Change::LabelNode { labels } => {
                if layout.node_labels.is_none() {
                    bail!("the case relabels the Node object, which the layout does not have");
                }
                self.manifests.node(&self.node, &borrowed(labels))?;
                self.relabelled_node = true;
            }
            Change::DaemonArgs(_) => bail!("a daemon restart is not a manifest change"),
        }
        Ok(())
    }

    fn remove_all_policies(&mut self) -> Result<()> {
        for key in std::mem::take(&mut self.policies) {
            self.manifests.remove_policy(&file_stem(&key))?;
        }
        Ok(())
    }
}

/// Writes a namespace of the layout with `extra` labels over its own.
fn write_namespace(
    manifests: &Manifests,
    layout: &Layout,
    name: &str,
    extra: &Labels,
) -> Result<()> {
    let ns = layout
        .namespace_named(name)
        .with_context(|| format!("no namespace {name} in the layout"))?;
    manifests.namespace(name, &overlay(&ns.labels, extra))?;
    Ok(())
}

/// Writes a pod of the layout with `extra` labels over its own.
fn write_pod(manifests: &Manifests, layout: &Layout, pod: &Pod, extra: &Labels) -> Result<()> {
    let spec = layout
        .pod_named(&pod.full_name())
        .with_context(|| format!("no pod {} in the layout", pod.full_name()))?;
    manifests.pod(pod, &overlay(&spec.labels, extra), &spec.ports)?;
    Ok(())
}

/// Writes the Node object with the layout's labels, if it has one.
fn write_node(manifests: &Manifests, layout: &Layout, node: &Node) -> Result<()> {
    if let Some(labels) = &layout.node_labels {
        manifests.node(node, &borrowed(labels))?;
    }
    Ok(())
}

fn write_host_network_pods(manifests: &Manifests, layout: &Layout, node: &Node) -> Result<()> {
    for pod in &layout.host_network_pods {
        manifests.host_network_pod(node, &pod.name, &borrowed(&pod.labels), &pod.ports)?;
    }
    Ok(())
}

/// Starts each host-network pod's servers in the node's namespace: TCP and
/// UDP on the ports it declares, and an SCTP receiver.
fn serve_host_network_pods(servers: &mut ServerSet, layout: &Layout, node: &Node) -> Result<()> {
    for pod in &layout.host_network_pods {
        let declared = |protocol| -> Vec<u16> {
            let ports = pod.ports.iter().filter(|p| p.protocol == protocol);
            ports.map(|p| p.port).collect()
        };
        let (tcp, udp) = (declared(Protocol::Tcp), declared(Protocol::Udp));
        servers
            .start_in(&pod.name, node, &tcp, &udp, true)
            .with_context(|| format!("serving host-network pod {}", pod.name))?;
    }
    Ok(())
}

fn start_daemon(node: &Node, manifests: &Manifests, args: &[&str], pods: usize) -> Result<Daemon> {
    let mut daemon = Daemon::start(node, manifests.dir(), args)?;
    daemon.wait_ready(pods as u64)?;
    Ok(daemon)
}

/// Every problem the daemon reports must be expected, and every expected
/// one reported.
fn check_problems(status: &DaemonStatus, expected: &[String]) -> Result<()> {
    let unexpected: Vec<&String> = status
        .problems
        .iter()
        .filter(|problem| !expected.iter().any(|e| problem.contains(e.as_str())))
        .collect();
    let missing: Vec<&String> = expected
        .iter()
        .filter(|e| !status.problems.iter().any(|p| p.contains(e.as_str())))
        .collect();
    if unexpected.is_empty() && missing.is_empty() {
        return Ok(());
    }
    bail!(
        "the daemon reports manifest problems {:?}; expected problems mentioning {expected:?}",
        status.problems
    )
}

/// `<namespace>/<name>` for namespaced objects, `<Kind>/<name>` for
/// cluster-scoped ones (no namespace is spelled with capitals).
fn policy_key(policy: &Value) -> Result<String> {
    let meta = &policy["metadata"];
    let scope = meta["namespace"].as_str().or(policy["kind"].as_str());
    match (scope, meta["name"].as_str()) {
        (Some(scope), Some(name)) => Ok(format!("{scope}/{name}")),
        _ => bail!("a policy without namespace (or kind) or name: {policy}"),
    }
}

fn file_stem(key: &str) -> String {
    key.replace('/', "-").to_lowercase()
}
