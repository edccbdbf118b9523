//! Conformance cases as data: what each step changes in the running cluster
//! (policies, namespace and pod labels, daemon flags) and the reachability
//! every probe must then observe, written with the upstream DSL
//! (`expect_peer`, `expect_all_ingress`, ...) over every pod of the world.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde_json::Value;

use super::layout::{Labels, owned};
use crate::matrix::Probe;
use crate::probes::Protocol;
use crate::reachability::Reachability;
use crate::topology::Family;

/// What a case may need to know about the world it runs in: the pods, the
/// group's default expectation, and the addresses ipBlock peers are built of.
#[derive(Debug, Clone)]
pub struct Model {
    pub pods: Vec<String>,
    /// What a cell no expectation mentions is: reachable under
    /// `--default-action allow`, unreachable under `deny`.
    pub default_allowed: bool,
    /// Whether a denied cell must be a silent drop, never a refusal.
    pub silent_denials: bool,
    pub addresses: BTreeMap<String, (Ipv4Addr, Ipv6Addr)>,
    pub node_ipv4: Ipv4Addr,
    pub node_ipv6: Ipv6Addr,
}

impl Model {
    pub fn ip(&self, pod: &str, family: Family) -> IpAddr {
        let (v4, v6) = self.addresses[pod];
        match family {
            Family::V4 => v4.into(),
            Family::V6 => v6.into(),
        }
    }

    /// The host route of a pod: `10.k.1.n/32` or `fd00:k:1::n/128`.
    pub fn host_cidr(&self, pod: &str, family: Family) -> String {
        let prefix = match family {
            Family::V4 => 32,
            Family::V6 => 128,
        };
        self.cidr_around(pod, family, prefix)
    }

    /// The network of `prefix` bits that holds the pod's address.
    pub fn cidr_around(&self, pod: &str, family: Family, prefix: u8) -> String {
        cidr_of(self.ip(pod, family), prefix)
    }

    /// The node's own address as a host CIDR.
    pub fn node_cidr(&self, family: Family) -> String {
        match family {
            Family::V4 => format!("{}/32", self.node_ipv4),
            Family::V6 => format!("{}/128", self.node_ipv6),
        }
    }
}

/// `addr/prefix` with the host bits cleared.
pub fn cidr_of(addr: IpAddr, prefix: u8) -> String {
    match addr {
        IpAddr::V4(v4) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            format!("{}/{prefix}", Ipv4Addr::from(u32::from(v4) & mask))
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            format!("{}/{prefix}", Ipv6Addr::from(u128::from(v6) & mask))
        }
    }
}

/// One change to the running cluster, applied by rewriting manifest files.
#[derive(Debug, Clone)]
pub enum Change {
    /// Creates or replaces a policy object: a NetworkPolicy, or a
    /// cluster-scoped object (ClusterNetworkPolicy, Segment, ...).
    Policy(Value),
    DeletePolicy {
        namespace: String,
        name: String,
    },
    DeleteAllPolicies,
    /// Sets labels on a namespace: its layout labels stay unless these
    /// replace them, and so does `kubernetes.io/metadata.name`, as the API
    /// server keeps it.
    LabelNamespace {
        namespace: String,
        labels: Labels,
    },
    /// Sets labels on a pod (its layout labels stay unless replaced, its
    /// ports stay).
    LabelPod {
        pod: String,
        labels: Labels,
    },
    /// Sets the labels of the node's Node object to exactly these (a label
    /// of the layout's that is not listed is removed).
    LabelNode {
        labels: Labels,
    },
    /// Restarts the daemon with these arguments instead of the group's.
    DaemonArgs(Vec<&'static str>),
}

/// One expectation of a step.
#[derive(Debug, Clone)]
pub enum Check {
    /// Every ordered pair of pods except a pod with itself.
    Pods { probe: Probe, reach: Reachability },
    /// From the node namespace to every pod, one expectation per pod.
    Node { probe: Probe, row: Row },
    /// From every pod to a host-network pod (`namespace/name`), that is to
    /// the node's address, one expectation per pod.
    HostNetwork { probe: Probe, pod: String, row: Row },
}

/// The expectations of a check between one end and every pod: `(pod,
/// allowed)`, in the world's pod order.
#[derive(Debug, Clone)]
pub struct Row {
    pub expected: Vec<(String, bool)>,
    /// Whether a denied cell must be a silent drop, never a refusal.
    pub silent_denials: bool,
}

/// Changes, then the probes that must see their effect.
#[derive(Debug, Clone)]
pub struct Step {
    pub what: String,
    pub changes: Vec<Change>,
    pub checks: Vec<Check>,
    /// The daemon must report a problem containing each of these after the
    /// changes, and no other problem.
    pub expected_problems: Vec<String>,
}

impl Step {
    fn new(what: &str) -> Self {
        Self {
            what: what.into(),
            changes: Vec::new(),
            checks: Vec::new(),
            expected_problems: Vec::new(),
        }
    }
}

/// One conformance case: a name that says which upstream (or cyclonus-style)
/// case it is, and its steps.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    pub steps: Vec<Step>,
    pods: Vec<String>,
    default_allowed: bool,
    silent_denials: bool,
}

impl Case {
    pub fn new(model: &Model, name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            steps: vec![Step::new("initial")],
            pods: model.pods.clone(),
            default_allowed: model.default_allowed,
            silent_denials: model.silent_denials,
        }
    }

    fn step_mut(&mut self) -> &mut Step {
        self.steps.last_mut().expect("a case always has a step")
    }

    fn change(mut self, change: Change) -> Self {
        self.step_mut().changes.push(change);
        self
    }

    /// Creates the policy, or replaces the one of the same namespace and name.
    pub fn policy(self, policy: Value) -> Self {
        self.change(Change::Policy(policy))
    }

    pub fn delete_policy(self, namespace: &str, name: &str) -> Self {
        self.change(Change::DeletePolicy {
            namespace: namespace.into(),
            name: name.into(),
        })
    }

    pub fn delete_all_policies(self) -> Self {
        self.change(Change::DeleteAllPolicies)
    }

    pub fn label_namespace(self, namespace: &str, labels: &[(&str, &str)]) -> Self {
        self.change(Change::LabelNamespace {
            namespace: namespace.into(),
            labels: owned(labels),
        })
    }

    pub fn label_pod(self, pod: &str, labels: &[(&str, &str)]) -> Self {
        self.change(Change::LabelPod {
            pod: pod.into(),
            labels: owned(labels),
        })
    }

    /// Sets the labels of the node's Node object to exactly `labels`.
    pub fn label_node(self, labels: &[(&str, &str)]) -> Self {
        self.change(Change::LabelNode {
            labels: owned(labels),
        })
    }

    /// Restarts the daemon with other arguments, on the same manifests; the
    /// reset after the case restores the group's.
    pub fn restart_daemon(self, args: &[&'static str]) -> Self {
        self.change(Change::DaemonArgs(args.to_vec()))
    }

    /// Starts the next step: its changes go to the running daemon after the
    /// probes of the previous step.
    pub fn then(mut self, what: &str) -> Self {
        self.steps.push(Step::new(what));
        self
    }

    /// After this step's changes the daemon reports a problem containing
    /// `text` (e.g. a policy it enforces fail-closed).
    pub fn expect_problem(mut self, text: &str) -> Self {
        self.step_mut().expected_problems.push(text.into());
        self
    }

    /// Probes the whole matrix; `adjust` turns the group's default
    /// reachability into this probe's expectation.
    pub fn expect(mut self, probe: Probe, adjust: impl FnOnce(&mut Reachability)) -> Self {
        let mut reach = Reachability::new(self.pods.clone(), self.default_allowed);
        if self.silent_denials {
            reach = reach.requiring_silent_denials();
        }
        adjust(&mut reach);
        self.step_mut().checks.push(Check::Pods { probe, reach });
        self
    }

    /// The same expectation for several probes (ports, families).
    pub fn expect_each(mut self, probes: &[Probe], adjust: impl Fn(&mut Reachability)) -> Self {
        for probe in probes {
            self = self.expect(*probe, &adjust);
        }
        self
    }

    /// Probes from the node's own address to every pod.
    pub fn expect_from_node(mut self, probe: Probe, allowed: impl Fn(&str) -> bool) -> Self {
        let row = self.row(allowed);
        self.step_mut().checks.push(Check::Node { probe, row });
        self
    }

    /// Probes from every pod to the host-network pod `pod` (`namespace/name`
    /// of the layout's), whose address is the node's; `allowed` is given
    /// each client pod.
    pub fn expect_to_host_network(
        mut self,
        probe: Probe,
        pod: &str,
        allowed: impl Fn(&str) -> bool,
    ) -> Self {
        let row = self.row(allowed);
        let pod = pod.to_owned();
        self.step_mut()
            .checks
            .push(Check::HostNetwork { probe, pod, row });
        self
    }

    fn row(&self, allowed: impl Fn(&str) -> bool) -> Row {
        Row {
            expected: self
                .pods
                .iter()
                .map(|pod| (pod.clone(), allowed(pod)))
                .collect(),
            silent_denials: self.silent_denials,
        }
    }
}

/// `TCP/80 IPv4`, as failure reports name a probe.
pub struct ProbeName<'a>(pub &'a Probe);

impl fmt::Display for ProbeName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let family = match self.0.family {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        };
        match self.0.protocol {
            Protocol::Icmp => write!(f, "ICMP {family}"),
            protocol => write!(f, "{}/{} {family}", protocol.k8s_name(), self.0.port),
        }
    }
}
