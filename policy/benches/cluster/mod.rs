//! The cluster the compiler benchmarks compile (`benches/compile.rs`,
//! `examples/compile_scale.rs`): namespaces of 20 pods (five apps, named
//! ports) with four NetworkPolicies each (default deny, ingress from
//! another team's namespaces and from pods, an endPort range from `env=prod`
//! workers, egress to the next namespace and to `10.0.0.0/8` except a /16,
//! DNS), spread over nodes; the compiling node is `node-0`.

use std::sync::Arc;

use k8s_openapi::api::networking::v1::NetworkPolicy;
use netseg_policy::{CompileOptions, Compiled, DefaultAction, Snapshot};
use serde_json::json;

use crate::common::{namespace, pod, policy, with_ports};

const PODS_PER_NAMESPACE: usize = 20;
const APPS: [&str; 5] = ["web", "api", "worker", "db", "cache"];
const TEAMS: usize = 50;

/// How big a cluster to build.
#[derive(Clone, Copy, Debug)]
pub struct Scale {
    pub namespaces: usize,
    pub nodes: usize,
}

impl Scale {
    /// 10,000 pods in 500 namespaces, 2,000 policies, 100 nodes.
    pub const DEFAULT: Scale = Scale {
        namespaces: 500,
        nodes: 100,
    };
    /// 100,000 pods in 5,000 namespaces, 20,000 policies, 1,000 nodes (so
    /// that `node-0` holds 100 pods, as at the default scale).
    pub const LARGE: Scale = Scale {
        namespaces: 5_000,
        nodes: 1_000,
    };
}

fn pod_ip(n: usize) -> String {
    format!("10.{}.{}.{}", 1 + n / 65_536, (n / 256) % 256, n % 256)
}

pub fn cluster(scale: Scale) -> Snapshot {
    let mut snapshot = Snapshot::default();
    for i in 0..scale.namespaces {
        let ns = format!("ns-{i}");
        let env = if i % 2 == 0 { "prod" } else { "staging" };
        let team = format!("team-{}", i % TEAMS);
        snapshot
            .namespaces
            .push(namespace(&ns, json!({"team": team, "env": env})).into());
        for k in 0..PODS_PER_NAMESPACE {
            let n = i * PODS_PER_NAMESPACE + k;
            let app = APPS[k % APPS.len()];
            let labels = json!({"app": app, "tier": if k % 2 == 0 { "frontend" } else { "backend" }, "version": format!("v{}", k % 3)});
            let node = format!("node-{}", n % scale.nodes);
            let ip = pod_ip(n);
            let ports = [
                ("http", 8080, "TCP"),
                ("metrics", 9090, "TCP"),
                ("grpc", 9000 + (k % 4) as i32, "TCP"),
            ];
            snapshot.pods.push(
                with_ports(
                    pod(&ns, &format!("{app}-{k}"), labels, &node, &[&ip]),
                    &ports,
                )
                .into(),
            );
        }
        snapshot
            .network_policies
            .extend(namespace_policies(scale, i).into_iter().map(Arc::new));
    }
    snapshot
}

fn namespace_policies(scale: Scale, i: usize) -> Vec<NetworkPolicy> {
    let ns = format!("ns-{i}");
    let next = format!("ns-{}", (i + 1) % scale.namespaces);
    vec![
        policy(
            &ns,
            "default-deny",
            json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
        ),
        policy(
            &ns,
            "web-ingress",
            json!({
            "podSelector": {"matchLabels": {"app": "web"}},
            "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": format!("team-{}", (i + 7) % TEAMS)}}},
                                  {"podSelector": {"matchLabels": {"app": "api"}}}],
                         "ports": [{"port": "http"}]}]}),
        ),
        policy(
            &ns,
            "api-ingress",
            json!({
            "podSelector": {"matchLabels": {"app": "api"}},
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}},
                                  {"namespaceSelector": {"matchLabels": {"env": "prod"}},
                                   "podSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["worker", "cache"]}]}}],
                         "ports": [{"port": 9000, "endPort": 9010}]}]}),
        ),
        policy(
            &ns,
            "egress",
            json!({
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [
                {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": next}}},
                        {"ipBlock": {"cidr": "10.0.0.0/8", "except": [format!("10.{}.0.0/16", 200 + i % 50)]}}],
                 "ports": [{"port": "http"}, {"port": 53, "protocol": "UDP"}]},
                {"ports": [{"port": 53, "protocol": "UDP"}]}]}),
        ),
    ]
}

/// What the cluster holds and what node-0's compile of it gave, in a line.
pub fn summary(snapshot: &Snapshot, compiled: &Compiled) -> String {
    format!(
        "{} pods, {} namespaces, {} policies; node-0: {} endpoints, {} ipcache and {} policy entries",
        snapshot.pods.len(),
        snapshot.namespaces.len(),
        snapshot.network_policies.len(),
        compiled.endpoints.len(),
        compiled.ipcache.len(),
        compiled.policy.len()
    )
}

pub fn options() -> CompileOptions {
    CompileOptions {
        node_name: "node-0".into(),
        default_action: DefaultAction::Deny,
        deny_node_traffic: false,
        node_addresses: vec!["192.168.0.1".parse().expect("address")],
    }
}

/// `snapshot` with one pod (`ns-0/api-1`, on another node) relabelled `app=web`.
pub fn relabelled(snapshot: &Snapshot) -> Snapshot {
    let mut changed = snapshot.clone();
    let labels = Arc::make_mut(&mut changed.pods[1])
        .metadata
        .labels
        .get_or_insert_default();
    labels.insert("app".into(), "web".into());
    changed
}

/// `snapshot` with `ns-0/web-ingress` admitting `app=worker` pods instead.
pub fn edited(snapshot: &Snapshot) -> Snapshot {
    let mut changed = snapshot.clone();
    changed.network_policies[1] = policy(
        "ns-0",
        "web-ingress",
        json!({
        "podSelector": {"matchLabels": {"app": "web"}},
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "worker"}}}], "ports": [{"port": "http"}]}]}),
    )
    .into();
    changed
}
