//! What a reload costs at cluster scale when one file changed: the shape of
//! the control benchmark's cluster (10,000 pods and 2,000 NetworkPolicies in
//! 500 namespace files of JSON lists). Ignored: a measurement, not a check;
//! run it in release (`cargo test --release -p netseg --lib
//! manifests::tests::scale -- --ignored --nocapture`).

use std::path::Path;
use std::time::Duration;

use nix::time::{ClockId, clock_gettime};
use serde_json::{Value, json};
use tempfile::TempDir;

use super::write;
use crate::sources::manifests::ManifestStore;
use crate::sources::manifests::files::list_manifest_files;

const PODS: usize = 10_000;
const NAMESPACES: usize = 500;
const POLICIES: usize = 2_000;
const REPEATS: usize = 41;

fn pod(ns: usize, j: usize) -> Value {
    let tier = ["frontend", "backend", "db"][j % 3];
    let ip = std::net::Ipv4Addr::from(0x6440_0000u32 + (ns * 100 + j) as u32);
    json!({
        "metadata": { "name": format!("app-{}-{j}", j % 5), "namespace": format!("ns-{ns:03}"),
            "labels": { "app": format!("app-{}", j % 5), "tier": tier } },
        "spec": { "nodeName": format!("other-node-{}", j % 100),
            "containers": [{ "name": "app", "image": "app", "ports": [
                { "name": "http", "containerPort": 8080, "protocol": "TCP" },
                { "name": "metrics", "containerPort": 9090, "protocol": "TCP" } ] }] },
        "status": { "phase": "Running", "podIP": ip.to_string(), "podIPs": [{ "ip": ip.to_string() }] },
    })
}

fn policy(ns: usize, shape: usize, port: usize) -> Value {
    json!({
        "metadata": { "name": format!("backend-ingress-{shape}"), "namespace": format!("ns-{ns:03}") },
        "spec": { "podSelector": { "matchLabels": { "tier": "backend" } }, "policyTypes": ["Ingress"],
            "ingress": [{ "from": [{ "podSelector": { "matchLabels": { "tier": "frontend" } } }],
                "ports": [{ "protocol": "TCP", "port": port }] }] },
    })
}

fn write_namespace(dir: &Path, ns: usize, port: usize) {
    let typed = |kind: &str, mut item: Value| {
        item["apiVersion"] = json!(if kind == "Pod" {
            "v1"
        } else {
            "networking.k8s.io/v1"
        });
        item["kind"] = json!(kind);
        item
    };
    let mut items = vec![json!({ "apiVersion": "v1", "kind": "Namespace",
        "metadata": { "name": format!("ns-{ns:03}"), "labels": { "team": format!("team-{}", ns % 25) } } })];
    items.extend((0..PODS / NAMESPACES).map(|j| typed("Pod", pod(ns, j))));
    items.extend(
        (0..POLICIES / NAMESPACES).map(|shape| typed("NetworkPolicy", policy(ns, shape, port))),
    );
    let list = json!({ "apiVersion": "v1", "kind": "List", "items": items });
    write(dir, &format!("ns-{ns:03}.json"), &list.to_string());
}

fn on_cpu(work: impl FnOnce()) -> Duration {
    let clock = || clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID).expect("thread CPU clock");
    let start = clock();
    work();
    Duration::from(clock() - start)
}

#[test]
#[ignore = "a measurement: run it in release with --ignored --nocapture"]
fn reload_after_one_file_changed_at_cluster_scale() {
    let dir = TempDir::new().expect("tempdir");
    for ns in 0..NAMESPACES {
        write_namespace(dir.path(), ns, 8080);
    }
    let mut store = ManifestStore::default();
    let first = on_cpu(|| assert!(store.reload(dir.path()).problems.is_empty()));
    // Past the stamps' racy margin, so that unchanged files count as settled.
    std::thread::sleep(Duration::from_secs(4));
    let settled = on_cpu(|| assert!(!store.reload(dir.path()).changed));
    let mut times: Vec<Duration> = (0..REPEATS)
        .map(|i| {
            write_namespace(dir.path(), 2, 9000 + i);
            on_cpu(|| assert!(store.reload(dir.path()).changed))
        })
        .collect();
    times.sort();
    let mut snapshots: Vec<Duration> = (0..REPEATS)
        .map(|_| on_cpu(|| assert_eq!(store.snapshot().pods.len(), PODS)))
        .collect();
    snapshots.sort();
    let mut listings: Vec<Duration> = (0..REPEATS)
        .map(|_| on_cpu(|| assert_eq!(list_manifest_files(dir.path()).files.len(), NAMESPACES)))
        .collect();
    listings.sort();
    println!(
        "{} objects in {NAMESPACES} files: first reload {first:.1?}, nothing changed {settled:.1?}; \
         one file changed, {REPEATS} reloads: min {:.2?}, median {:.2?}, max {:.2?} (thread CPU time); \
         snapshot: median {:.2?}; listing the directory: median {:.2?}",
        PODS + POLICIES + NAMESPACES,
        times[0],
        times[REPEATS / 2],
        times[REPEATS - 1],
        snapshots[REPEATS / 2],
        listings[REPEATS / 2],
    );
}
