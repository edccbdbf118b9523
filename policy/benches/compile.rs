//! The compiler at cluster scale: a full compile of 10,000 pods in 500
//! namespaces with 2,000 NetworkPolicies of realistic shapes, and the
//! recompile after one pod relabel and after one policy edit.
//! `cargo bench -p netseg-policy --bench compile`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;

use common::{namespace, pod, policy, with_ports};
use criterion::{Criterion, criterion_group, criterion_main};
use netseg_policy::{CompileOptions, Compiler, DefaultAction, Snapshot, diff_maps};
use serde_json::json;

const NAMESPACES: usize = 500;
const PODS_PER_NAMESPACE: usize = 20;
const NODES: usize = 100;
const APPS: [&str; 5] = ["web", "api", "worker", "db", "cache"];

fn pod_ip(n: usize) -> String {
    format!("10.{}.{}.{}", 1 + n / 65_536, (n / 256) % 256, n % 256)
}

fn cluster() -> Snapshot {
    let mut snapshot = Snapshot::default();
    for i in 0..NAMESPACES {
        let ns = format!("ns-{i}");
        let env = if i % 2 == 0 { "prod" } else { "staging" };
        snapshot
            .namespaces
            .push(namespace(&ns, json!({"team": format!("team-{}", i % 50), "env": env})).into());
        for k in 0..PODS_PER_NAMESPACE {
            let n = i * PODS_PER_NAMESPACE + k;
            let app = APPS[k % APPS.len()];
            let labels = json!({"app": app, "tier": if k % 2 == 0 { "frontend" } else { "backend" }, "version": format!("v{}", k % 3)});
            let node = format!("node-{}", n % NODES);
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
            .extend(namespace_policies(i).into_iter().map(Into::into));
    }
    snapshot
}

fn namespace_policies(i: usize) -> Vec<k8s_openapi::api::networking::v1::NetworkPolicy> {
    let ns = format!("ns-{i}");
    let next = format!("ns-{}", (i + 1) % NAMESPACES);
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
            "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": format!("team-{}", (i + 7) % 50)}}},
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

fn options() -> CompileOptions {
    CompileOptions {
        node_name: "node-0".into(),
        default_action: DefaultAction::Deny,
        deny_node_traffic: false,
        node_addresses: vec!["192.168.0.1".parse().expect("address")],
    }
}

fn relabelled(snapshot: &Snapshot) -> Snapshot {
    let mut changed = snapshot.clone();
    let labels = std::sync::Arc::make_mut(&mut changed.pods[1])
        .metadata
        .labels
        .get_or_insert_default();
    labels.insert("app".into(), "web".into());
    changed
}

fn edited(snapshot: &Snapshot) -> Snapshot {
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

fn compile(c: &mut Criterion) {
    let snapshot = cluster();
    let options = options();
    let mut compiler = Compiler::new();
    let base = compiler.compile(&snapshot, &options);
    eprintln!(
        "cluster: {} pods, {} namespaces, {} policies; this node: {} endpoints, {} ipcache and {} policy entries",
        snapshot.pods.len(),
        snapshot.namespaces.len(),
        snapshot.network_policies.len(),
        base.endpoints.len(),
        base.ipcache.len(),
        base.policy.len()
    );
    let mut group = c.benchmark_group("compile");
    group.sample_size(10);
    // A fresh compiler: nothing remembered from an earlier compilation.
    group.bench_function("full, 10k pods / 500 namespaces / 2k policies", |b| {
        b.iter(|| black_box(Compiler::new().compile(&snapshot, &options)))
    });
    for (name, changed) in [
        ("after one pod relabel", relabelled(&snapshot)),
        ("after one policy edit", edited(&snapshot)),
    ] {
        let after = compiler.compile(&changed, &options);
        let touched = diff_maps(&base.policy, &after.policy).upserts.len()
            + diff_maps(&base.policy, &after.policy).removals.len()
            + diff_maps(&base.ipcache, &after.ipcache).upserts.len()
            + diff_maps(&base.ipcache, &after.ipcache).removals.len()
            + diff_maps(&base.endpoints, &after.endpoints).upserts.len()
            + diff_maps(&base.endpoints, &after.endpoints).removals.len();
        eprintln!("{name}: the diff touches {touched} entries");
        // Alternate between the two snapshots: every iteration is a recompile after one change.
        let mut flip = false;
        group.bench_function(name, |b| {
            b.iter(|| {
                flip = !flip;
                black_box(compiler.compile(if flip { &changed } else { &snapshot }, &options))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, compile);
criterion_main!(benches);
