//! One node with the nine model pods, their servers, a manifests directory
//! and one running daemon, shared by every case of a group. Cases change it
//! only through manifest files, and [`World::reset`] puts it back.

use std::collections::BTreeSet;

use anyhow::{Context, Result, bail};
use netseg_testbed::{
    ContainerPort, Daemon, DaemonStatus, Manifests, Node, Pod, ServerSet, require_root,
};
use serde_json::Value;

use super::case::{Change, Model, NAMESPACES, model_pod_names};

/// The ports every model pod serves and declares, named like upstream's
/// `model.go` names them (`serve-80-tcp`).
pub const MODEL_PORTS: [u16; 2] = [80, 81];

/// How a group's world is built.
#[derive(Debug, Clone)]
pub struct WorldConfig {
    /// Names the node (and its namespaces).
    pub tag: &'static str,
    pub daemon_args: Vec<&'static str>,
    /// TCP and UDP ports served by every pod, beyond [`MODEL_PORTS`].
    pub extra_server_ports: Vec<u16>,
    /// Container ports declared by one pod only, beyond the model's.
    pub extra_container_ports: Vec<(&'static str, ContainerPort)>,
}

impl WorldConfig {
    /// Kubernetes semantics: only pods selected by a policy are isolated.
    pub fn allow(tag: &'static str) -> Self {
        Self {
            tag,
            daemon_args: vec!["--default-action", "allow"],
            extra_server_ports: Vec::new(),
            extra_container_ports: Vec::new(),
        }
    }

    /// Zero trust: every pod isolated both ways.
    pub fn deny(tag: &'static str) -> Self {
        Self {
            daemon_args: vec!["--default-action", "deny"],
            ..Self::allow(tag)
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
    /// Policy files written by the running case, by `<namespace>/<name>`.
    policies: BTreeSet<String>,
    relabelled_namespaces: BTreeSet<String>,
    relabelled_pods: BTreeSet<String>,
}

impl World {
    pub fn start(config: WorldConfig) -> Result<Self> {
        require_root();
        // On an early return the locals drop in reverse order: daemon,
        // servers, manifests, pods, node.
        let node = Node::new(config.tag)?;
        let pods = model_pod_names()
            .iter()
            .map(|name| node.add_pod(name))
            .collect::<Result<Vec<Pod>>>()?;
        let manifests = Manifests::new()?;
        for ns in NAMESPACES {
            manifests.namespace(ns, &[("ns", ns)])?;
        }
        for pod in &pods {
            manifests.pod(pod, &[("pod", pod.name())], &container_ports(&config, pod))?;
        }
        let refs: Vec<&Pod> = pods.iter().collect();
        let ports: Vec<u16> = MODEL_PORTS
            .iter()
            .chain(&config.extra_server_ports)
            .copied()
            .collect();
        let servers = ServerSet::start(&refs, &ports, &ports, true)?;
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
        })
    }

    pub fn model(&self) -> Model {
        Model {
            pods: self.pods.iter().map(Pod::full_name).collect(),
            default_allowed: self.config.default_allowed(),
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
    /// enforced them.
    pub fn apply(&mut self, changes: &[Change]) -> Result<()> {
        let mut pending = None;
        for change in changes {
            if let Change::DaemonArgs(args) = change {
                if let Some(before) = pending.take() {
                    self.wait_enforced(before)?;
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
            Some(before) => self.wait_enforced(before),
            None => Ok(()),
        }
    }

    /// Removes every policy the case wrote, restores the model labels and
    /// the group's daemon arguments.
    pub fn reset(&mut self) -> Result<()> {
        if self.daemon_args != self.config.daemon_args {
            self.restart_daemon(self.config.daemon_args.clone())?;
        }
        if self.policies.is_empty()
            && self.relabelled_namespaces.is_empty()
            && self.relabelled_pods.is_empty()
        {
            return Ok(());
        }
        let before = self.reloads()?;
        self.remove_all_policies()?;
        for ns in std::mem::take(&mut self.relabelled_namespaces) {
            self.manifests.namespace(&ns, &[("ns", &ns)])?;
        }
        for pod in std::mem::take(&mut self.relabelled_pods) {
            self.write_pod(&pod, &[])?;
        }
        self.wait_enforced(before)
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

    fn wait_enforced(&mut self, before: u64) -> Result<()> {
        let status: DaemonStatus = self.daemon.wait_reload_after(before)?;
        if !status.problems.is_empty() {
            bail!(
                "the daemon reports manifest problems: {:?}",
                status.problems
            );
        }
        Ok(())
    }

    fn write(&mut self, change: &Change) -> Result<()> {
        match change {
            Change::Policy(policy) => {
                let key = policy_key(policy)?;
                self.manifests
                    .policy(&file_stem(&key), &serde_yaml::to_string(policy)?)?;
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
                let mut all = vec![("ns", namespace.as_str())];
                all.extend(labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                self.manifests.namespace(namespace, &all)?;
                self.relabelled_namespaces.insert(namespace.clone());
            }
            Change::LabelPod { pod, labels } => {
                let extra: Vec<(&str, &str)> = labels
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                self.write_pod(pod, &extra)?;
                self.relabelled_pods.insert(pod.clone());
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

    fn write_pod(&self, full_name: &str, extra_labels: &[(&str, &str)]) -> Result<()> {
        let pod = self
            .pods
            .iter()
            .find(|p| p.full_name() == full_name)
            .with_context(|| format!("no pod {full_name} in the model"))?;
        let mut labels = vec![("pod", pod.name())];
        labels.extend_from_slice(extra_labels);
        self.manifests
            .pod(pod, &labels, &container_ports(&self.config, pod))?;
        Ok(())
    }
}

/// The model's named ports (`serve-80-tcp`, ..., `serve-81-sctp`) plus the
/// pod's extra ones.
fn container_ports(config: &WorldConfig, pod: &Pod) -> Vec<ContainerPort> {
    let mut ports: Vec<ContainerPort> = MODEL_PORTS
        .iter()
        .flat_map(|&p| {
            [
                ContainerPort::tcp(p),
                ContainerPort::udp(p),
                ContainerPort::sctp(p),
            ]
        })
        .collect();
    ports.extend(
        config
            .extra_container_ports
            .iter()
            .filter(|(name, _)| *name == pod.full_name())
            .map(|(_, port)| port.clone()),
    );
    ports
}

fn start_daemon(node: &Node, manifests: &Manifests, args: &[&str], pods: usize) -> Result<Daemon> {
    let mut daemon = Daemon::start(node, manifests.dir(), args)?;
    daemon.wait_ready(pods as u64)?;
    Ok(daemon)
}

fn policy_key(policy: &Value) -> Result<String> {
    let meta = &policy["metadata"];
    match (meta["namespace"].as_str(), meta["name"].as_str()) {
        (Some(ns), Some(name)) => Ok(format!("{ns}/{name}")),
        _ => bail!("a policy without namespace or name: {policy}"),
    }
}

fn file_stem(key: &str) -> String {
    key.replace('/', "-")
}
