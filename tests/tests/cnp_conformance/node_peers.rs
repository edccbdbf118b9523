//! Upstream's node-peer tests of the experimental profile (feature
//! `ClusterNetworkPolicyEgressNodePeers`): #21 `CNPAdminTierEgressNodePeers`
//! and #24 `CNPBaselineTierEgressNodePeers`, on the manifests
//! `conformance/base/{admin,baseline}_tier/experimental-egress-selector-rules.yaml`.
//! Gryffindor egresses to the host-network `centaur-1`, whose address is the
//! node's, through `nodes` peers that select the node's Node object by
//! `kubernetes.io/os: linux`. Upstream probes from one gryffindor pod; here
//! every pod probes centaur-1 (the other houses are no subject: they show
//! that each port is served), and the pod matrix, which the Deny rules'
//! `0.0.0.0/0` and `::/0` close to gryffindor, is probed after every
//! subtest as everywhere in this suite.
//!
//! Beyond upstream: a relabelled Node leaves the `nodes` peers, and a
//! host-network pod is never a pod or namespace peer.

use netseg_testbed::suite::{Case, Model};
use netseg_testbed::{Probe, Protocol};
use serde_json::{Value, json};

use super::houses::{
    End, FORBIDDEN_FORREST, HOST_NETWORK_PORTS, House, NODE_LABELS, centaur, expect_pairs,
    namespace_named, sctp, tcp, udp,
};
use super::objects::{Action, Direction, PortMatch, Tier, cnp, house_pods, namespaces, networks};
use super::objects::{nodes, rule};

use House::{Gryffindor, Slytherin};

/// `HostNetworkPorts[i]`.
fn port(i: usize) -> u16 {
    HOST_NETWORK_PORTS[i]
}

/// The peer both manifests select the node with.
fn linux_nodes() -> Value {
    nodes(json!({ "matchLabels": { "kubernetes.io/os": "linux" } }))
}

fn internet() -> Value {
    networks(&["0.0.0.0/0".into(), "::/0".into()])
}

fn egress(name: &str, action: Action, peers: Vec<Value>, ports: &[PortMatch]) -> Value {
    rule(Direction::Egress, name, action, peers, ports)
}

fn is_gryffindor(pod: &str) -> bool {
    pod.starts_with(&format!("{}/", Gryffindor.namespace()))
}

/// Every pod reaches centaur-1 with `probe`, except gryffindor's when
/// `gryffindor_allowed` is false.
fn to_centaur(case: Case, probe: Probe, gryffindor_allowed: bool) -> Case {
    case.expect_to_host_network(probe, &centaur(), |client| {
        gryffindor_allowed || !is_gryffindor(client)
    })
}

/// Gryffindor reaches no pod (the Deny rule's networks), everything else
/// is untouched.
fn gryffindor_isolated(case: Case, probe: Probe) -> Case {
    case.expect(probe, |r| {
        expect_pairs(r, |from: End, _| from.house != Gryffindor)
    })
}

const ADMIN_POLICY: &str = "node-and-cidr-as-peers-example";

/// `node-and-cidr-as-peers-example`: Accept TCP `[0]` to nodes, Pass UDP
/// `[2]` to nodes, Deny slytherin's pods, nodes and every address.
fn admin_manifest() -> Value {
    let egress = vec![
        egress(
            &format!("allow-egress-to-{}-on-nodes", port(0)),
            Action::Accept,
            vec![linux_nodes()],
            &[PortMatch::tcp(port(0))],
        ),
        egress(
            &format!("pass-egress-to-{}-on-nodes", port(2)),
            Action::Pass,
            vec![linux_nodes()],
            &[PortMatch::udp(port(2))],
        ),
        egress(
            "deny-egress-to-slytherin-and-nodes-and-internet",
            Action::Deny,
            vec![house_pods(Slytherin), linux_nodes(), internet()],
            &[],
        ),
    ];
    cnp(
        ADMIN_POLICY,
        Tier::Admin,
        75,
        house_pods(Gryffindor),
        vec![],
        egress,
    )
}

/// `default`: Accept the TCP range `[0]`–`[1]` to nodes, Deny nodes and
/// every address.
fn baseline_manifest() -> Value {
    let egress = vec![
        egress(
            &format!("allow-egress-to-{}-on-nodes", port(0)),
            Action::Accept,
            vec![linux_nodes()],
            &[PortMatch::Range(Protocol::Tcp, port(0), port(1))],
        ),
        egress(
            "deny-egress-to-nodes-and-internet",
            Action::Deny,
            vec![linux_nodes(), internet()],
            &[],
        ),
    ];
    let subject = namespaces(namespace_named(Gryffindor));
    cnp("default", Tier::Baseline, 10, subject, vec![], egress)
}

const ALLOW: &str = "Should support an 'allow-egress' rule policy for egress-node-peer";
const PASS: &str = "Should support a 'pass-egress' rule policy for egress-node-peer";
const DENY: &str = "Should support a 'deny-egress' rule policy for egress-node-peer";

/// #21: Accept TCP `[0]`; the Pass of UDP `[2]` leads to the default allow;
/// TCP `[1]`, UDP `[4]` and SCTP `[6]` fall to the Deny.
pub fn admin(m: &Model, name: &str) -> Case {
    let case = Case::new(m, name).then(ALLOW).policy(admin_manifest());
    let case = to_centaur(case, tcp(port(0)), true);
    let case = gryffindor_isolated(case, tcp(80)).then(PASS);
    let case = to_centaur(case, udp(port(2)), true);
    let case = gryffindor_isolated(case, udp(53)).then(DENY);
    let case = to_centaur(case, tcp(port(1)), false);
    let case = to_centaur(case, udp(port(4)), false);
    let case = to_centaur(case, sctp(port(6)), false);
    gryffindor_isolated(case, sctp(9003))
}

/// #24: Accept the TCP range `[0]`–`[1]`; UDP `[4]` and SCTP `[6]` fall to
/// the Deny.
pub fn baseline(m: &Model, name: &str) -> Case {
    let case = Case::new(m, name).then(ALLOW).policy(baseline_manifest());
    let case = to_centaur(case, tcp(port(0)), true);
    let case = to_centaur(case, tcp(port(1)), true);
    let case = gryffindor_isolated(case, tcp(80)).then(DENY);
    let case = to_centaur(case, udp(port(4)), false);
    let case = to_centaur(case, sctp(port(6)), false);
    let case = gryffindor_isolated(case, udp(53));
    gryffindor_isolated(case, sctp(9003))
}

/// Beyond upstream: the `nodes` peers follow the Node's labels. Without
/// `kubernetes.io/os: linux`, #21's Accept (and Pass) no longer match and
/// the Deny's networks decide; a Deny to nodes alone stops at the Node's
/// addresses and leaves with the label.
pub fn relabelled_node(m: &Model) -> Case {
    let deny_nodes_only = cnp(
        ADMIN_POLICY,
        Tier::Admin,
        75,
        house_pods(Gryffindor),
        vec![],
        vec![egress(
            "deny-egress-to-nodes",
            Action::Deny,
            vec![linux_nodes()],
            &[],
        )],
    );
    let case = Case::new(m, "nodes peers follow the Node's labels")
        .then("#21's policy; the Node loses kubernetes.io/os: the Accept and the Pass to nodes match no more")
        .policy(admin_manifest())
        .label_node(&[]);
    let case = to_centaur(case, tcp(port(0)), false);
    let case = to_centaur(case, udp(port(2)), false)
        .then("the label is back: the Accept matches again")
        .label_node(&NODE_LABELS);
    let case = to_centaur(case, tcp(port(0)), true)
        .then("a Deny to nodes alone: the node's address, no pod")
        .policy(deny_nodes_only);
    let case = to_centaur(case, tcp(port(0)), false)
        .expect(tcp(80), |_| {})
        .then("the Node loses kubernetes.io/os: the Deny matches no more")
        .label_node(&[]);
    to_centaur(case, tcp(port(0)), true)
}

/// Beyond upstream: a host-network pod holds the node's address, not a pod
/// address, so a Deny to its pods and its namespace does not reach it.
pub fn host_network_is_no_pod_peer(m: &Model) -> Case {
    let forrest = json!({ "matchLabels": { "conformance-house": FORBIDDEN_FORREST } });
    let peers = vec![
        json!({ "pods": { "namespaceSelector": forrest, "podSelector": forrest } }),
        namespaces(forrest.clone()),
    ];
    let policy = cnp(
        "deny-to-forbidden-forrest",
        Tier::Admin,
        75,
        house_pods(Gryffindor),
        vec![],
        vec![egress("deny-egress-to-centaurs", Action::Deny, peers, &[])],
    );
    let case = Case::new(m, "a host-network pod is no pod or namespace peer")
        .then("gryffindor denies egress to forbidden-forrest's pods and namespace")
        .policy(policy);
    let case = to_centaur(case, tcp(port(0)), true);
    to_centaur(case, udp(port(2)), true).expect(tcp(80), |_| {})
}
