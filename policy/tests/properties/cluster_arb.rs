//! Random ClusterNetworkPolicies, Segments and SegmentPolicies over the pods
//! and addresses of [`crate::arb`]: both tiers, tied priorities, every action,
//! every peer and protocol kind, names that repeat within and across kinds,
//! and now and then a peer, protocol or Segment name netseg does not know.

use std::sync::Arc;

use netseg_crd::{ClusterNetworkPolicy, Segment, SegmentPolicy};
use proptest::collection::vec;
use proptest::option::weighted;
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{Value, json};

use crate::arb::{
    NS_KEYS, NS_VALUES, POD_KEYS, POD_VALUES, PORTS, RULE_PORT_NAMES, VALID_OPERATORS, from_json,
    selector_of,
};

/// Nested CIDRs around the pod addresses (10.0.x.y, fd00:0:0:x::y, x < 4,
/// 0 < y < 7) and the external ones of [`crate::arb::EXTERNAL`].
const NETWORKS: &[&str] = &[
    "0.0.0.0/0",
    "::/0",
    "10.0.0.0/8",
    "10.0.0.0/22",
    "10.0.1.0/24",
    "10.0.1.0/29",
    "10.0.1.200/32",
    "10.0.2.4/30",
    "8.8.8.0/24",
    "10.200.0.0/16",
    "fd00::/16",
    "fd00:0:0:1::/64",
    "fd00:0:0:2::4/126",
    "2001:db8::/32",
];
/// Names both policy kinds draw from: they repeat within a kind and across.
const POLICY_NAMES: &[&str] = &["a", "b", "c", "d"];
const SEGMENT_NAMES: &[&str] = &["s0", "s1", "s2"];
/// Segment names as policies use them; `gone` names no Segment.
const SEGMENT_REFS: &[&str] = &["s0", "s0", "s0", "s1", "s1", "s1", "s2", "s2", "s2", "gone"];
const PRIORITIES: &[i32] = &[0, 5, 5, 10];
const RULE_NAMES: &[&str] = &["r0", "r1", "r2"];

/// A valid selector: invalid objects of these kinds come from elsewhere.
fn selector(
    keys: &'static [&'static str],
    values: &'static [&'static str],
) -> impl Strategy<Value = Value> {
    selector_of(keys, values, VALID_OPERATORS)
}

fn networks() -> impl Strategy<Value = Value> {
    vec(select(NETWORKS), 1..=2).prop_map(|n| json!(n))
}

fn namespaced_pod() -> impl Strategy<Value = Value> {
    let namespaces = weighted(0.7, selector(NS_KEYS, NS_VALUES));
    (namespaces, selector(POD_KEYS, POD_VALUES)).prop_map(|(namespaces, pods)| {
        let mut value = json!({"podSelector": pods});
        if let Some(namespaces) = namespaces {
            value["namespaceSelector"] = namespaces;
        }
        value
    })
}

/// `{namespaces: ...}` or `{pods: ...}`: a pod peer, a CNP subject, a Segment member.
fn pod_peer() -> impl Strategy<Value = Value> {
    prop_oneof![
        selector(NS_KEYS, NS_VALUES).prop_map(|s| json!({"namespaces": s})),
        namespaced_pod().prop_map(|p| json!({"pods": p})),
    ]
}

/// A peer no field of which netseg implements.
fn unknown_peer() -> impl Strategy<Value = Value> {
    select(vec![json!({}), json!({"domainNames": ["example.com"]})])
}

/// A `nodes` peer: every Node, or those of one zone.
fn nodes_peer() -> impl Strategy<Value = Value> {
    select(vec![
        json!({"nodes": {}}),
        json!({"nodes": {"matchLabels": {"zone": "a"}}}),
        json!({"nodes": {"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}}),
    ])
}

fn cnp_ingress_peer() -> impl Strategy<Value = Value> {
    prop_oneof![24 => pod_peer(), 1 => Just(json!({}))]
}

fn cnp_egress_peer() -> impl Strategy<Value = Value> {
    prop_oneof![
        12 => pod_peer(),
        10 => networks().prop_map(|n| json!({"networks": n})),
        3 => nodes_peer(),
        1 => unknown_peer(),
    ]
}

fn segment_policy_peer() -> impl Strategy<Value = Value> {
    prop_oneof![
        8 => vec(select(SEGMENT_REFS), 1..=2).prop_map(|s| json!({"segments": s})),
        8 => pod_peer(),
        6 => networks().prop_map(|n| json!({"networks": n})),
        1 => Just(json!({})),
    ]
}

fn destination_port() -> impl Strategy<Value = Value> {
    prop_oneof![
        select(PORTS).prop_map(|n| json!({"number": n})),
        (select(PORTS), select(&[1u16, 999, 2000][..]))
            .prop_map(|(start, len)| json!({"range": {"start": start, "end": start + len}})),
    ]
}

const PORT_PROTOCOLS: &[&str] = &["tcp", "udp", "sctp"];

/// `{tcp|udp|sctp: {destinationPort: port}}`; `{}` without a port.
fn port_entry(protocol: &str, port: Option<Value>) -> Value {
    let mut entry = json!({});
    entry[protocol] = port.map_or(json!({}), |p| json!({"destinationPort": p}));
    entry
}

fn cnp_protocol() -> impl Strategy<Value = Value> {
    prop_oneof![
        16 => (select(PORT_PROTOCOLS), destination_port()).prop_map(|(p, port)| port_entry(p, Some(port))),
        8 => select(RULE_PORT_NAMES).prop_map(|n| json!({"destinationNamedPort": n})),
        1 => Just(json!({})),
    ]
}

fn segment_policy_protocol() -> impl Strategy<Value = Value> {
    prop_oneof![
        16 => (select(PORT_PROTOCOLS), weighted(0.7, destination_port())).prop_map(|(p, port)| port_entry(p, port)),
        4 => Just(json!({"icmp": {}})),
        4 => Just(json!({"icmpv6": {}})),
        8 => select(RULE_PORT_NAMES).prop_map(|n| json!({"destinationNamedPort": n})),
        1 => Just(json!({})),
    ]
}

/// One rule with peers in `peer_field`. Named ports next to a `networks`
/// peer make the object invalid: they are dropped from most rules.
fn rule(
    peer_field: &'static str,
    peer: impl Strategy<Value = Value>,
    protocol: impl Strategy<Value = Value>,
) -> impl Strategy<Value = Value> {
    let action = select(&["Accept", "Accept", "Deny", "Pass"][..]);
    let name = weighted(0.5, select(RULE_NAMES));
    let protocols = weighted(0.6, vec(protocol, 1..=2));
    let keep_invalid = weighted(0.1, Just(()));
    (name, action, vec(peer, 1..=2), protocols, keep_invalid).prop_map(
        move |(name, action, peers, protocols, keep_invalid)| {
            let networks = peers.iter().any(|p| p.get("networks").is_some());
            let protocols: Vec<Value> = protocols
                .into_iter()
                .flatten()
                .filter(|p| {
                    keep_invalid.is_some() || !networks || p.get("destinationNamedPort").is_none()
                })
                .collect();
            let mut rule = json!({"action": action});
            rule[peer_field] = json!(peers);
            if let Some(name) = name {
                rule["name"] = json!(name);
            }
            if !protocols.is_empty() {
                rule["protocols"] = json!(protocols);
            }
            rule
        },
    )
}

fn tier_and_priority() -> impl Strategy<Value = (&'static str, i32)> {
    (select(&["Admin", "Baseline"][..]), select(PRIORITIES))
}

fn cnp_spec() -> impl Strategy<Value = Value> {
    let ingress = vec(rule("from", cnp_ingress_peer(), cnp_protocol()), 0..=2);
    let egress = vec(rule("to", cnp_egress_peer(), cnp_protocol()), 0..=2);
    (tier_and_priority(), pod_peer(), ingress, egress).prop_map(
        |((tier, priority), subject, ingress, egress)| {
            json!({"tier": tier, "priority": priority, "subject": subject, "ingress": ingress, "egress": egress})
        },
    )
}

fn segment_policy_spec() -> impl Strategy<Value = Value> {
    let mode = select(&[None, Some("Enforce"), Some("Audit"), Some("Audit")][..]);
    let subject = vec(select(SEGMENT_REFS), 1..=2);
    let ingress = vec(
        rule("from", segment_policy_peer(), segment_policy_protocol()),
        0..=2,
    );
    let egress = vec(
        rule("to", segment_policy_peer(), segment_policy_protocol()),
        0..=2,
    );
    (tier_and_priority(), mode, subject, ingress, egress).prop_map(
        |((tier, priority), mode, subject, ingress, egress)| {
            let mut spec = json!({"tier": tier, "priority": priority, "subject": {"segments": subject}, "ingress": ingress, "egress": egress});
            if let Some(mode) = mode {
                spec["mode"] = json!(mode);
            }
            spec
        },
    )
}

fn segment_spec() -> impl Strategy<Value = Value> {
    let member = prop_oneof![
        3 => pod_peer(),
        2 => networks().prop_map(|n| json!({"networks": n})),
    ];
    let posture = weighted(0.6, select(&["Accept", "Accept", "Deny"][..]));
    let postures = weighted(0.8, (posture.clone(), posture));
    (vec(member, 1..=3), postures).prop_map(|(members, postures)| {
        let mut spec = json!({"members": members});
        if let Some((ingress, egress)) = postures {
            let mut posture = json!({});
            if let Some(ingress) = ingress {
                posture["ingress"] = json!(ingress);
            }
            if let Some(egress) = egress {
                posture["egress"] = json!(egress);
            }
            spec["posture"] = posture;
        }
        spec
    })
}

fn named<T: serde::de::DeserializeOwned>(name: &str, spec: Value) -> Arc<T> {
    Arc::new(from_json(json!({"metadata": {"name": name}, "spec": spec})))
}

/// The cluster policy objects of a random cluster.
#[derive(Debug)]
pub struct ClusterPolicies {
    pub cluster_network_policies: Vec<Arc<ClusterNetworkPolicy>>,
    pub segments: Vec<Arc<Segment>>,
    pub segment_policies: Vec<Arc<SegmentPolicy>>,
}

pub fn cluster_policies() -> impl Strategy<Value = ClusterPolicies> {
    (
        vec((select(POLICY_NAMES), cnp_spec()), 0..=3),
        vec((select(SEGMENT_NAMES), segment_spec()), 1..=3),
        vec((select(POLICY_NAMES), segment_policy_spec()), 0..=4),
    )
        .prop_map(|(cnps, segments, segment_policies)| ClusterPolicies {
            cluster_network_policies: cnps.into_iter().map(|(n, s)| named(n, s)).collect(),
            segments: segments.into_iter().map(|(n, s)| named(n, s)).collect(),
            segment_policies: segment_policies
                .into_iter()
                .map(|(n, s)| named(n, s))
                .collect(),
        })
}
