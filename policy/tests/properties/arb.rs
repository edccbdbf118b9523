//! Random small clusters that use every feature the compiler knows.

use std::net::IpAddr;
use std::sync::Arc;

use ipnetwork::IpNetwork;
use netseg_policy::{CompileOptions, DefaultAction, Snapshot};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{Value, json};

pub const LOCAL_NODE: &str = "n1";
pub const NODE_V4: &str = "10.0.9.1";
pub const NODE_V6: &str = "fd00:0:0:9::1";
const NAMESPACES: [&str; 3] = ["ns0", "ns1", "ns2"];
pub const POD_KEYS: &[&str] = &["app", "tier"];
pub const POD_VALUES: &[&str] = &["a", "b"];
pub const NS_KEYS: &[&str] = &["team", "kubernetes.io/metadata.name"];
pub const NS_VALUES: &[&str] = &["a", "b", "ns0", "ns1"];
const PORT_NAMES: &[&str] = &["web", "dns", "nope"];
/// Rules name existing ports more often than not.
pub const RULE_PORT_NAMES: &[&str] = &["web", "web", "dns", "nope"];
pub const PORTS: &[u16] = &[53, 80, 1000, 8080];

/// Addresses that are no pod's: inside and outside the blocks' pool.
pub const EXTERNAL: &[&str] = &[
    "10.0.1.200",
    "10.0.3.7",
    "10.200.0.1",
    "8.8.8.8",
    "fd00:0:0:1::99",
    "2001:db8::1",
];

fn v4(sub: u8, host: u8) -> String {
    format!("10.0.{sub}.{host}")
}

fn v6(sub: u8, host: u8) -> String {
    format!("fd00:0:0:{sub}::{host}")
}

fn labels(
    keys: &'static [&'static str],
    values: &'static [&'static str],
    max: usize,
) -> impl Strategy<Value = Value> {
    btree_map(select(keys), select(values), 0..=max).prop_map(|m| json!(m))
}

/// Label selector operators, one in nine of them invalid.
const OPERATORS: &[&str] = &[
    "In",
    "In",
    "NotIn",
    "NotIn",
    "Exists",
    "Exists",
    "DoesNotExist",
    "DoesNotExist",
    "Equals",
];
/// The valid operators only.
pub const VALID_OPERATORS: &[&str] = &["In", "NotIn", "Exists", "DoesNotExist"];

fn requirement(
    keys: &'static [&'static str],
    values: &'static [&'static str],
    operators: &'static [&'static str],
) -> impl Strategy<Value = Value> {
    (select(keys), select(operators), vec(select(values), 1..=2)).prop_map(|(key, op, values)| {
        match op {
            "In" | "NotIn" => json!({"key": key, "operator": op, "values": values}),
            _ => json!({"key": key, "operator": op}),
        }
    })
}

/// A label selector, now and then with an invalid operator.
pub fn selector(
    keys: &'static [&'static str],
    values: &'static [&'static str],
) -> impl Strategy<Value = Value> {
    selector_of(keys, values, OPERATORS)
}

/// A label selector whose expressions use `operators`.
pub fn selector_of(
    keys: &'static [&'static str],
    values: &'static [&'static str],
    operators: &'static [&'static str],
) -> impl Strategy<Value = Value> {
    (
        labels(keys, values, 1),
        vec(requirement(keys, values, operators), 0..=1),
    )
        .prop_map(
            |(match_labels, exprs)| json!({"matchLabels": match_labels, "matchExpressions": exprs}),
        )
}

fn normalized(addr: &str, len: u8) -> Option<IpNetwork> {
    let net = IpNetwork::new(addr.parse().ok()?, len).ok()?;
    IpNetwork::new(net.network(), len).ok()
}

fn ip_block() -> impl Strategy<Value = Value> {
    let family = any::<bool>();
    let base = (0u8..4, 1u8..7, family);
    let v4_lens = select(&[0u8, 8, 16, 23, 24, 30, 32][..]);
    let v6_lens = select(&[0u8, 16, 64, 127, 128][..]);
    let excepts = vec((0u8..4, 1u8..7, 0u8..=8), 0..=2);
    (base, v4_lens, v6_lens, excepts).prop_map(|((sub, host, is_v4), l4, l6, excepts)| {
        let (addr, len) = if is_v4 {
            (v4(sub, host), l4)
        } else {
            (v6(sub, host), l6)
        };
        let Some(cidr) = normalized(&addr, len) else {
            return json!({"ipBlock": {"cidr": "0.0.0.0/0"}});
        };
        let max = if is_v4 { 32 } else { 128 };
        // Excepts: a pool address at a longer prefix; keep the strict subsets.
        let except: Vec<String> = excepts
            .into_iter()
            .filter_map(|(s, h, extra)| {
                let a = if is_v4 { v4(s, h) } else { v6(s, h) };
                let step = if is_v4 { 3 } else { 16 };
                let l = (u32::from(len) + 1 + u32::from(extra) * step).min(u32::from(max));
                normalized(&a, u8::try_from(l).unwrap_or(max))
                    .filter(|e| len < max && cidr.contains(e.network()))
            })
            .map(|e| e.to_string())
            .collect();
        json!({"ipBlock": {"cidr": cidr.to_string(), "except": except}})
    })
}

fn peer() -> impl Strategy<Value = Value> {
    prop_oneof![
        1 => selector(POD_KEYS, POD_VALUES).prop_map(|s| json!({"podSelector": s})),
        1 => selector(NS_KEYS, NS_VALUES).prop_map(|s| json!({"namespaceSelector": s})),
        1 => (selector(POD_KEYS, POD_VALUES), selector(NS_KEYS, NS_VALUES))
            .prop_map(|(p, n)| json!({"podSelector": p, "namespaceSelector": n})),
        2 => ip_block(),
    ]
}

fn port() -> impl Strategy<Value = Value> {
    let protocol = select(&[None, Some("TCP"), Some("UDP"), Some("SCTP")][..]);
    let with_protocol = |mut v: Value, p: Option<&str>| {
        if let Some(p) = p {
            v["protocol"] = json!(p);
        }
        v
    };
    prop_oneof![
        1 => protocol.clone().prop_map(move |p| with_protocol(json!({}), p)),
        1 => (protocol.clone(), select(PORTS)).prop_map(move |(p, n)| with_protocol(json!({"port": n}), p)),
        1 => (protocol.clone(), select(PORTS), 0u16..3000)
            .prop_map(move |(p, n, extra)| with_protocol(json!({"port": n, "endPort": n + extra}), p)),
        2 => (protocol, select(RULE_PORT_NAMES)).prop_map(move |(p, n)| with_protocol(json!({"port": n}), p)),
    ]
}

fn list(item: impl Strategy<Value = Value>) -> impl Strategy<Value = Option<Vec<Value>>> {
    prop_oneof![1 => Just(None), 1 => Just(Some(Vec::new())), 3 => vec(item, 1..=3).prop_map(Some)]
}

/// One ingress (`from`) or egress (`to`) rule.
pub fn rule(peer_field: &'static str) -> impl Strategy<Value = Value> {
    (list(peer()), list(port())).prop_map(move |(peers, ports)| {
        let mut rule = json!({});
        if let Some(peers) = peers {
            rule[peer_field] = json!(peers);
        }
        if let Some(ports) = ports {
            rule["ports"] = json!(ports);
        }
        rule
    })
}

fn policy_spec() -> impl Strategy<Value = Value> {
    const TYPES: &[Option<&[&str]>] = &[
        None,
        Some(&[]),
        Some(&["Ingress"]),
        Some(&["Egress"]),
        Some(&["Ingress", "Egress"]),
    ];
    let types = select(TYPES);
    let rules = |field| prop_oneof![Just(None), vec(rule(field), 0..=2).prop_map(Some)];
    (
        selector(POD_KEYS, POD_VALUES),
        types,
        rules("from"),
        rules("to"),
    )
        .prop_map(|(sel, types, ingress, egress)| {
            let mut spec = json!({"podSelector": sel});
            if let Some(types) = types {
                spec["policyTypes"] = json!(types);
            }
            if let Some(ingress) = ingress {
                spec["ingress"] = json!(ingress);
            }
            if let Some(egress) = egress {
                spec["egress"] = json!(egress);
            }
            spec
        })
}

fn pod_json() -> impl Strategy<Value = (usize, Value)> {
    let address = proptest::option::weighted(0.8, (0u8..4, 1u8..7));
    let container_port = (
        select(PORT_NAMES),
        select(&[53i32, 80, 8080][..]),
        select(&["TCP", "TCP", "UDP", "SCTP"][..]),
    );
    let kind = select(
        &[
            "Running",
            "Running",
            "Running",
            "Running",
            "Pending",
            "Succeeded",
            "host",
        ][..],
    );
    (0usize..3, labels(POD_KEYS, POD_VALUES, 2), select(&[LOCAL_NODE, LOCAL_NODE, "n2"][..]), address.clone(), address, kind, vec(container_port, 0..=3))
        .prop_map(|(ns, labels, node, a4, a6, kind, ports)| {
            let mut ips: Vec<String> = a4.map(|(s, h)| v4(s, h)).into_iter().chain(a6.map(|(s, h)| v6(s, h))).collect();
            if kind == "host" {
                ips = vec![NODE_V4.to_string()];
            }
            let ports: Vec<Value> = ports.iter().map(|(n, p, proto)| json!({"name": n, "containerPort": p, "protocol": proto})).collect();
            let pod_ips: Vec<Value> = ips.iter().map(|i| json!({"ip": i})).collect();
            let phase = if kind == "host" { "Running" } else { kind };
            let pod = json!({
                "spec": {"nodeName": node, "hostNetwork": kind == "host", "containers": [{"name": "c", "ports": ports}]},
                "status": {"phase": phase, "podIPs": pod_ips},
                "metadata": {"labels": labels},
            });
            (ns, pod)
        })
}

/// A random cluster and node options.
pub fn cluster() -> impl Strategy<Value = (Snapshot, CompileOptions)> {
    let namespaces = vec(
        proptest::option::weighted(0.8, labels(NS_KEYS, NS_VALUES, 2)),
        3,
    );
    let policies = vec((0usize..3, policy_spec()), 0..=5);
    let options = (any::<bool>(), any::<bool>()).prop_map(|(deny, deny_node)| CompileOptions {
        node_name: LOCAL_NODE.into(),
        default_action: if deny {
            DefaultAction::Deny
        } else {
            DefaultAction::Allow
        },
        deny_node_traffic: deny_node,
        node_addresses: vec![
            NODE_V4.parse().unwrap_or(IpAddr::from([0; 4])),
            NODE_V6.parse().unwrap_or(IpAddr::from([0; 16])),
        ],
    });
    let cluster_policies = crate::cluster_arb::cluster_policies();
    let cluster_policies = (cluster_policies, nodes());
    (namespaces, vec(pod_json(), 1..=8), policies, cluster_policies, options).prop_map(|(namespaces, pods, policies, (cluster_policies, nodes), options)| {
        let mut snapshot = Snapshot {
            cluster_network_policies: cluster_policies.cluster_network_policies,
            segments: cluster_policies.segments,
            segment_policies: cluster_policies.segment_policies,
            nodes,
            ..Snapshot::default()
        };
        for (name, labels) in NAMESPACES.iter().zip(namespaces) {
            if let Some(labels) = labels {
                snapshot.namespaces.push(Arc::new(from_json(json!({"metadata": {"name": name, "labels": labels}}))));
            }
        }
        for (i, (ns, mut pod)) in pods.into_iter().enumerate() {
            pod["metadata"]["namespace"] = json!(NAMESPACES[ns]);
            pod["metadata"]["name"] = json!(format!("p{i}"));
            snapshot.pods.push(Arc::new(from_json(pod)));
        }
        for (i, (ns, spec)) in policies.into_iter().enumerate() {
            let policy = json!({"metadata": {"namespace": NAMESPACES[ns], "name": format!("pol{i}")}, "spec": spec});
            snapshot.network_policies.push(Arc::new(from_json(policy)));
        }
        (snapshot, options)
    })
}

/// Up to three Node objects of zone `a` or `b`, each with an address of
/// this node, of an external host or of a pod (a host-network pod's node).
fn nodes() -> impl Strategy<Value = Vec<Arc<k8s_openapi::api::core::v1::Node>>> {
    let addresses = vec![NODE_V4, NODE_V6, EXTERNAL[0], EXTERNAL[2], "10.0.1.1"];
    vec((select(&["a", "b"][..]), select(addresses)), 0..=3).prop_map(|nodes| {
        nodes
            .into_iter()
            .enumerate()
            .map(|(i, (zone, address))| {
                Arc::new(from_json(json!({
                    "metadata": {"name": format!("node-{i}"), "labels": {"zone": zone}},
                    "status": {"addresses": [{"type": "InternalIP", "address": address}]},
                })))
            })
            .collect()
    })
}

pub fn from_json<T: serde::de::DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).expect("generated objects deserialize")
}
