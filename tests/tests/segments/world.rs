//! One node for a Segment case: labelled pods in namespace `app` with echo
//! servers, a manifests directory and one daemon under `--default-action
//! allow`, so that pods outside every Segment visibly keep their traffic.
//! Steps change the world only through manifest files.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use netseg_testbed::{Daemon, Family, Manifests, Node, Pod, ServerSet, require_root};
use serde_json::{Value, json};

use super::traffic::{Host, Traffic};

/// The Kubernetes namespace of every pod.
pub const NAMESPACE: &str = "app";

/// How long a flow record may take to appear.
const FLOW_WAIT: Duration = Duration::from_secs(5);

/// A pod's labels.
pub type Labels<'a> = &'a [(&'a str, &'a str)];

/// A pod to create: its name in [`NAMESPACE`] and its labels.
pub type PodSpec<'a> = (&'a str, Labels<'a>);

/// Fields of a flow record and the values they must have.
pub type Fields = Vec<(&'static str, Value)>;

/// Fields drop in declaration order: servers before the pods they run in,
/// the daemon before the manifests it reads, the node last.
pub struct World {
    _servers: ServerSet,
    pub daemon: Daemon,
    manifests: Manifests,
    pods: Vec<Pod>,
    pub node: Node,
}

impl World {
    /// A node named `tag` with `pods`, each serving TCP on `tcp_ports` and
    /// UDP on `udp_ports`, and the daemon enforcing them.
    pub fn start(
        tag: &str,
        pods: &[PodSpec<'_>],
        tcp_ports: &[u16],
        udp_ports: &[u16],
    ) -> Result<Self> {
        require_root();
        let node = Node::new(tag)?;
        let created = pods
            .iter()
            .map(|(name, _)| node.add_pod(&format!("{NAMESPACE}/{name}")))
            .collect::<Result<Vec<Pod>>>()?;
        let manifests = Manifests::new()?;
        manifests.namespace(NAMESPACE, &[])?;
        for (pod, (_, labels)) in created.iter().zip(pods) {
            manifests.pod(pod, labels, &[])?;
        }
        let refs: Vec<&Pod> = created.iter().collect();
        let servers = ServerSet::start(&refs, tcp_ports, udp_ports, false)?;
        let mut daemon = Daemon::start(&node, manifests.dir(), &["--default-action", "allow"])?;
        daemon.wait_ready(u64::try_from(created.len())?)?;
        Ok(Self {
            _servers: servers,
            daemon,
            manifests,
            pods: created,
            node,
        })
    }

    /// The pod named `name` (without namespace).
    pub fn pod(&self, name: &str) -> &Pod {
        self.pods
            .iter()
            .find(|pod| pod.name() == name)
            .unwrap_or_else(|| panic!("no pod {name} in this world"))
    }

    /// Writes (or rewrites) manifest file `name` with `yaml`, one file so
    /// that the daemon reads every object of a step at once, and waits
    /// until the daemon enforces it.
    pub fn apply(&mut self, name: &str, yaml: &str) -> Result<()> {
        self.apply_reporting(name, yaml, &[])
    }

    /// [`World::apply`], where the daemon must report a problem containing
    /// each of `problems`, and no other.
    pub fn apply_reporting(&mut self, name: &str, yaml: &str, problems: &[&str]) -> Result<()> {
        let reloads = self.reloads()?;
        self.manifests.policy(name, yaml)?;
        self.wait_enforced_reporting(reloads, problems)
    }

    /// Rewrites pod `name`'s manifest with `labels` and waits until the
    /// daemon enforces that.
    pub fn relabel(&mut self, name: &str, labels: Labels<'_>) -> Result<()> {
        let reloads = self.reloads()?;
        self.manifests.pod(self.pod(name), labels, &[])?;
        self.wait_enforced(reloads)
    }

    fn reloads(&self) -> Result<u64> {
        Ok(self.daemon.status()?.map_or(0, |s| s.reloads))
    }

    /// Waits for the reload after `reloads`; a manifest the daemon cannot
    /// read would leave the case testing something else, so it fails here.
    fn wait_enforced(&mut self, reloads: u64) -> Result<()> {
        self.wait_enforced_reporting(reloads, &[])
    }

    fn wait_enforced_reporting(&mut self, reloads: u64, problems: &[&str]) -> Result<()> {
        let status = self.daemon.wait_reload_after(reloads)?;
        let reported = |text: &&str| status.problems.iter().any(|p| p.contains(text));
        let expected = |problem: &String| problems.iter().any(|text| problem.contains(text));
        ensure!(
            problems.iter().all(reported) && status.problems.iter().all(expected),
            "the daemon reports problems {:?}, expected {problems:?}",
            status.problems
        );
        Ok(())
    }

    /// The record of the first packet of `traffic` from `from` to `to` (IPv4),
    /// written where `direction` (`ingress` at `to`, `egress` at `from`)
    /// was decided, with the verdict `verdict` (`allow` or `deny`).
    pub fn record(
        &self,
        from: &dyn Host,
        to: &dyn Host,
        traffic: Traffic,
        direction: &str,
        verdict: &str,
    ) -> Result<Value> {
        let family = Family::V4;
        let (src, dst) = (
            from.address(family).to_string(),
            to.address(family).to_string(),
        );
        let protocol = traffic.record_protocol(family);
        let reason = if verdict == "allow" {
            "new-connection"
        } else {
            "policy-denied"
        };
        self.daemon
            .wait_for_flow(
                |f| {
                    f["src_ip"] == src.as_str()
                        && f["dst_ip"] == dst.as_str()
                        && f["protocol"] == protocol
                        && traffic.port().is_none_or(|port| f["dst_port"] == port)
                        && f["direction"] == direction
                        && f["verdict"] == verdict
                        && f["reason"] == reason
                },
                FLOW_WAIT,
            )
            .with_context(|| {
                format!(
                    "a {verdict} record of {} -> {} {traffic:?} at {direction}",
                    from.label(),
                    to.label()
                )
            })
    }
}

/// Panics unless every field of `record` named in `expected` has the value
/// given (`Value::Null` for a field that must be empty).
pub fn assert_fields(record: &Value, expected: &[(&str, Value)]) {
    let wrong: Vec<String> = expected
        .iter()
        .filter(|(field, value)| record[*field] != *value)
        .map(|(field, value)| format!("{field}: expected {value}, got {}", record[*field]))
        .collect();
    assert!(
        wrong.is_empty(),
        "the flow record differs:\n  {}\nrecord: {record}",
        wrong.join("\n  ")
    );
}

/// The fields that name a deciding rule: band, kind and name of the
/// policy, the rule within it, its action.
pub fn rule_fields((band, kind, name): (&str, &str, &str), rule: &str, action: &str) -> Fields {
    vec![
        ("policy_band", json!(band)),
        ("policy_kind", json!(kind)),
        ("policy_name", json!(name)),
        ("policy_rule", json!(rule)),
        ("policy_action", json!(action)),
    ]
}

/// The fields of a decision by Segment `name`'s posture.
pub fn posture_fields(name: &str, rule: &str, action: &str) -> Fields {
    rule_fields(("posture", "Segment", name), rule, action)
}
