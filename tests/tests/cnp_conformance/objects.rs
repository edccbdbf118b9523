//! ClusterNetworkPolicy objects (`policy.networking.k8s.io/v1alpha2`) as the
//! upstream manifests write them, plus the netseg Segment the Baseline Pass
//! case hands over to.

use netseg_testbed::{Probe, Protocol};
use serde_json::{Map, Value, json};

use super::houses::{House, house_label};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    Admin,
    Baseline,
}

impl Tier {
    fn name(self) -> &'static str {
        match self {
            Tier::Admin => "Admin",
            Tier::Baseline => "Baseline",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    /// The spec field: `ingress` or `egress`.
    pub fn field(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }

    /// The rule field holding the peers, also how upstream names rules
    /// (`allow-from-...`, `deny-to-...`).
    pub fn peers_field(self) -> &'static str {
        match self {
            Direction::Ingress => "from",
            Direction::Egress => "to",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Accept,
    Deny,
    Pass,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::Accept => "Accept",
            Action::Deny => "Deny",
            Action::Pass => "Pass",
        }
    }
}

/// One entry of a rule's `protocols`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortMatch {
    Number(Protocol, u16),
    /// `destinationPort.range`: `start` to `end`, both included.
    Range(Protocol, u16, u16),
    /// `destinationNamedPort`; every pod of the houses declares the same
    /// names, so each resolves to one protocol and number.
    Named(&'static str),
}

impl PortMatch {
    pub fn tcp(port: u16) -> Self {
        PortMatch::Number(Protocol::Tcp, port)
    }

    pub fn udp(port: u16) -> Self {
        PortMatch::Number(Protocol::Udp, port)
    }

    pub fn sctp(port: u16) -> Self {
        PortMatch::Number(Protocol::Sctp, port)
    }

    /// Whether traffic of `probe` goes to this port.
    pub fn matches(self, probe: &Probe) -> bool {
        let (protocol, start, end) = match self {
            PortMatch::Number(protocol, port) => (protocol, port, port),
            PortMatch::Range(protocol, start, end) => (protocol, start, end),
            PortMatch::Named("web") => (Protocol::Tcp, 80, 80),
            PortMatch::Named("dns") => (Protocol::Udp, 53, 53),
            PortMatch::Named(other) => panic!("no pod of the houses declares a port {other}"),
        };
        probe.protocol == protocol && (start..=end).contains(&probe.port)
    }

    /// `80`, `53`, `web`: how upstream's rule names spell the port.
    pub fn label(self) -> String {
        match self {
            PortMatch::Number(_, port) => port.to_string(),
            PortMatch::Range(_, start, end) => format!("{start}-{end}"),
            PortMatch::Named(name) => name.to_owned(),
        }
    }

    fn to_json(self) -> Value {
        match self {
            PortMatch::Number(protocol, port) => {
                let key = protocol.k8s_name().to_lowercase();
                json!({ key: { "destinationPort": { "number": port } } })
            }
            PortMatch::Range(protocol, start, end) => {
                let key = protocol.k8s_name().to_lowercase();
                json!({ key: { "destinationPort": { "range": { "start": start, "end": end } } } })
            }
            PortMatch::Named(name) => json!({ "destinationNamedPort": name }),
        }
    }
}

/// A ClusterNetworkPolicy; a direction without rules is left out of the
/// spec entirely, as the directional-isolation manifests do.
pub fn cnp(
    name: &str,
    tier: Tier,
    priority: u32,
    subject: Value,
    ingress: Vec<Value>,
    egress: Vec<Value>,
) -> Value {
    let mut spec = Map::new();
    spec.insert("tier".into(), tier.name().into());
    spec.insert("priority".into(), priority.into());
    spec.insert("subject".into(), subject);
    if !ingress.is_empty() {
        spec.insert("ingress".into(), ingress.into());
    }
    if !egress.is_empty() {
        spec.insert("egress".into(), egress.into());
    }
    json!({
        "apiVersion": "policy.networking.k8s.io/v1alpha2",
        "kind": "ClusterNetworkPolicy",
        "metadata": { "name": name },
        "spec": spec,
    })
}

/// A rule of `direction`; no `protocols` when `ports` is empty.
pub fn rule(
    direction: Direction,
    name: &str,
    action: Action,
    peers: Vec<Value>,
    ports: &[PortMatch],
) -> Value {
    let mut rule = Map::new();
    rule.insert("name".into(), name.into());
    rule.insert("action".into(), action.name().into());
    rule.insert(direction.peers_field().into(), peers.into());
    if !ports.is_empty() {
        let protocols: Vec<Value> = ports.iter().map(|p| p.to_json()).collect();
        rule.insert("protocols".into(), protocols.into());
    }
    Value::Object(rule)
}

/// Subject or peer: the namespaces `selector` selects.
pub fn namespaces(selector: Value) -> Value {
    json!({ "namespaces": selector })
}

/// Subject or peer: the pods labelled with the house in namespaces
/// labelled with it.
pub fn house_pods(house: House) -> Value {
    json!({ "pods": { "namespaceSelector": house_label(house), "podSelector": house_label(house) } })
}

/// Egress peer: these CIDRs.
pub fn networks(cidrs: &[String]) -> Value {
    json!({ "networks": cidrs })
}

/// Egress peer of the experimental channel: the addresses of the Node
/// objects `selector` selects.
pub fn nodes(selector: Value) -> Value {
    json!({ "nodes": selector })
}

/// Egress peer of the experimental channel that netseg does not implement.
pub fn domain_names(names: &[&str]) -> Value {
    json!({ "domainNames": names })
}

/// A netseg Segment of the house's namespace with a posture per direction.
pub fn segment(name: &str, house: House, ingress: Action, egress: Action) -> Value {
    json!({
        "apiVersion": "netseg.dev/v1alpha1",
        "kind": "Segment",
        "metadata": { "name": name },
        "spec": {
            "members": [{ "namespaces": house_label(house) }],
            "posture": { "ingress": ingress.name(), "egress": egress.name() },
        },
    })
}
