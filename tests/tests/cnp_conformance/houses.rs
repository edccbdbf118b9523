//! The world of the upstream ClusterNetworkPolicy conformance suite
//! (`conformance/base/manifests.yaml`): four houses, each a namespace
//! `network-policy-conformance-<house>` labelled `conformance-house:
//! <house>`, with two pods labelled the same way. Every pod serves TCP 80
//! (declared as `web`) and 8080, UDP 53 (declared as `dns`) and 5353, and
//! receives SCTP (probed at 9003 and 9005).
//!
//! The fifth namespace, `forbidden-forrest`, holds the host-network
//! `centaur` pods the node-peer tests probe. Upstream runs two, one a node;
//! this world has one node, and two host-network pods declaring the same
//! ports cannot share one, so it runs `centaur-1`, the one the tests probe:
//! its address is the node's, and it serves upstream's `HostNetworkPorts`
//! from the node's namespace. The node has a Node object labelled
//! `kubernetes.io/os: linux`, as a kubelet registers it, with the node's
//! addresses.

use std::time::Duration;

use netseg_testbed::suite::{Layout, WorldConfig};
use netseg_testbed::{ContainerPort, Probe, Protocol, Reachability};
use serde_json::{Value, json};

/// How long a probe waits for an answer; a denied cell costs this much.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Upstream's `HostNetworkPorts`: the eight ports from its default range
/// start (34345). Nothing else listens in the node namespace the test
/// creates (the daemon opens no port unless told to), so they are free.
pub const HOST_NETWORK_PORTS: [u16; 8] = [34345, 34346, 34347, 34348, 34349, 34350, 34351, 34352];

/// The namespace of the host-network pods, and their `conformance-house`.
pub const FORBIDDEN_FORREST: &str = "forbidden-forrest";

/// `namespace/name` of the host-network pod the node-peer tests probe.
pub fn centaur() -> String {
    format!("network-policy-conformance-{FORBIDDEN_FORREST}/centaur-1")
}

/// The Node object's labels, as a kubelet on Linux sets the one `nodes`
/// peers select on.
pub const NODE_LABELS: [(&str, &str); 1] = [("kubernetes.io/os", "linux")];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum House {
    Gryffindor,
    Slytherin,
    Hufflepuff,
    Ravenclaw,
}

use House::{Gryffindor, Hufflepuff, Ravenclaw, Slytherin};

pub const HOUSES: [House; 4] = [Gryffindor, Slytherin, Hufflepuff, Ravenclaw];

impl House {
    /// The value of the `conformance-house` label.
    pub fn name(self) -> &'static str {
        match self {
            Gryffindor => "gryffindor",
            Slytherin => "slytherin",
            Hufflepuff => "hufflepuff",
            Ravenclaw => "ravenclaw",
        }
    }

    /// The StatefulSet whose two pods live in the house.
    fn student(self) -> &'static str {
        match self {
            Gryffindor => "harry-potter",
            Slytherin => "draco-malfoy",
            Hufflepuff => "cedric-diggory",
            Ravenclaw => "luna-lovegood",
        }
    }

    pub fn namespace(self) -> String {
        format!("network-policy-conformance-{}", self.name())
    }

    /// `namespace/name` of the house's pod `index` (0 or 1).
    pub fn pod(self, index: u8) -> String {
        format!("{}/{}-{index}", self.namespace(), self.student())
    }

    fn of_namespace(namespace: &str) -> House {
        HOUSES
            .into_iter()
            .find(|house| house.namespace() == namespace)
            .unwrap_or_else(|| panic!("{namespace} is not a house"))
    }
}

/// One end of a connection: a house and which of its two pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct End {
    pub house: House,
    pub index: u8,
}

impl End {
    fn of_pod(full_name: &str) -> End {
        let (namespace, pod) = full_name
            .split_once('/')
            .unwrap_or_else(|| panic!("{full_name} is not namespace/name"));
        let index = pod
            .rsplit_once('-')
            .and_then(|(_, n)| n.parse().ok())
            .unwrap_or_else(|| panic!("{pod} has no ordinal"));
        End {
            house: House::of_namespace(namespace),
            index,
        }
    }
}

/// The four houses, two pods each, as the upstream base manifests declare
/// them.
pub fn layout() -> Layout {
    let mut layout = Layout::default()
        .serving_tcp(&[80, 8080])
        .serving_udp(&[53, 5353]);
    for house in HOUSES {
        let label = [("conformance-house", house.name())];
        layout = layout.namespace(&house.namespace(), &label);
        for index in 0..2 {
            let ports = vec![
                ContainerPort::new("web", 80, Protocol::Tcp),
                ContainerPort::new("dns", 53, Protocol::Udp),
            ];
            layout = layout.pod(&house.pod(index), &label, ports);
        }
    }
    with_centaur(layout).node_object(&NODE_LABELS)
}

/// Forbidden-forrest and its host-network centaur, declaring upstream's
/// ports: TCP on `HostNetworkPorts[0]` and `[1]`, UDP on `[2]` and `[4]`
/// (SCTP, which upstream serves on `[6]` and `[7]` without declaring it, is
/// received on every port).
fn with_centaur(layout: Layout) -> Layout {
    let label = [("conformance-house", FORBIDDEN_FORREST)];
    let [tcp_a, tcp_b, udp_a, _, udp_b, ..] = HOST_NETWORK_PORTS;
    let ports = vec![
        ContainerPort::new(&format!("web-{tcp_a}"), tcp_a, Protocol::Tcp),
        ContainerPort::new(&format!("web-{tcp_b}"), tcp_b, Protocol::Tcp),
        ContainerPort::new(&format!("dns-{udp_a}"), udp_a, Protocol::Udp),
        ContainerPort::new(&format!("dns-{udp_b}"), udp_b, Protocol::Udp),
    ];
    layout
        .namespace(
            &format!("network-policy-conformance-{FORBIDDEN_FORREST}"),
            &label,
        )
        .host_network_pod(&centaur(), &label, ports)
}

/// Upstream's default: no policy means allowed; and a denial must be a
/// silent drop, as upstream's probe requires a timeout.
pub fn config(tag: &'static str) -> WorldConfig {
    WorldConfig::allow(tag, layout()).requiring_silent_denials()
}

pub fn tcp(port: u16) -> Probe {
    Probe::tcp(port).timeout(PROBE_TIMEOUT)
}

pub fn udp(port: u16) -> Probe {
    Probe::udp(port).timeout(PROBE_TIMEOUT)
}

pub fn sctp(port: u16) -> Probe {
    Probe::sctp(port).timeout(PROBE_TIMEOUT)
}

/// The two ports of each protocol every pod serves.
pub fn tcp_probes() -> Vec<Probe> {
    vec![tcp(80), tcp(8080)]
}

pub fn udp_probes() -> Vec<Probe> {
    vec![udp(53), udp(5353)]
}

pub fn sctp_probes() -> Vec<Probe> {
    vec![sctp(9003), sctp(9005)]
}

/// Sets every pair of the matrix to `allowed(from, to)`.
pub fn expect_pairs(reach: &mut Reachability, allowed: impl Fn(End, End) -> bool) {
    for (from, to) in reach.pairs() {
        let verdict = allowed(End::of_pod(&from), End::of_pod(&to));
        reach.expect(&from, &to, verdict);
    }
}

/// Selects the house's namespace by the label the API server sets.
pub fn namespace_named(house: House) -> Value {
    json!({ "matchLabels": { "kubernetes.io/metadata.name": house.namespace() } })
}

/// Selects the house's namespace (or pods) by `conformance-house`.
pub fn house_label(house: House) -> Value {
    json!({ "matchLabels": { "conformance-house": house.name() } })
}
