//! A cluster-sized manifests directory: namespaces with team/env labels,
//! pods with app/tier labels and named ports (nearly all on other nodes),
//! and NetworkPolicies of the shapes clusters commonly carry: default deny,
//! DNS egress, frontend-to-backend on a named port plus a cross-namespace
//! peer, and egress to the internet except private ranges.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;
use netseg_testbed::Manifests;
use netseg_testbed::daemon::DaemonSource;
use netseg_testbed::manifests::pod_yaml;
use serde_json::{Value, json};

use super::{Timed, end_to_end, timed_delays};
use crate::bed::Bed;
use crate::netseg::NetsegDaemon;

#[derive(Debug, Clone, Copy)]
pub struct Scale {
    pub pods: usize,
    pub namespaces: usize,
    pub policies: usize,
}

/// Pods of the harness that run on the node; the rest are peers elsewhere.
pub(super) const EXTRA_LOCAL_PODS: usize = 4;
/// The namespace whose backend-ingress policy the delay measure edits:
/// `local-1` (a backend on this node) lives there.
pub(super) const EDITED_NS: usize = 2;

pub(super) fn namespace_name(i: usize) -> String {
    format!("ns-{i:03}")
}

pub(super) fn namespace(i: usize) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": { "name": namespace_name(i), "labels": {
            "kubernetes.io/metadata.name": namespace_name(i),
            "team": format!("team-{}", i % 25),
            "env": if i.is_multiple_of(3) { "prod" } else { "staging" },
        }},
    })
}

const TIERS: [&str; 3] = ["frontend", "backend", "db"];

pub(super) fn pod_labels(j: usize) -> Value {
    json!({ "app": format!("app-{}", j % 5), "tier": TIERS[j % 3], "version": "v1" })
}

fn remote_pod(ns: usize, j: usize, index: usize) -> Value {
    let ip = std::net::Ipv4Addr::from(0x6440_0000u32 + index as u32 + 1);
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": { "name": format!("app-{}-{j}", j % 5), "namespace": namespace_name(ns), "labels": pod_labels(j) },
        "spec": {
            "nodeName": format!("other-node-{}", index % 100),
            "containers": [{ "name": "app", "image": "app", "ports": [
                { "name": "http", "containerPort": 8080, "protocol": "TCP" },
                { "name": "metrics", "containerPort": 9090, "protocol": "TCP" },
            ]}],
        },
        "status": { "phase": "Running", "podIP": ip.to_string(), "podIPs": [{ "ip": ip.to_string() }] },
    })
}

pub(super) fn policy(ns: usize, shape: usize, variant: usize) -> Value {
    let meta = |name: &str| json!({ "name": name, "namespace": namespace_name(ns) });
    let spec = match shape % 4 {
        0 => json!({ "podSelector": {}, "policyTypes": ["Ingress", "Egress"] }),
        1 => json!({
            "podSelector": {}, "policyTypes": ["Egress"],
            "egress": [{ "to": [{
                "namespaceSelector": { "matchLabels": { "kubernetes.io/metadata.name": "kube-system" } },
                "podSelector": { "matchLabels": { "k8s-app": "kube-dns" } },
            }], "ports": [{ "protocol": "UDP", "port": 53 }, { "protocol": "TCP", "port": 53 }] }],
        }),
        2 => json!({
            "podSelector": { "matchLabels": { "tier": "backend" } }, "policyTypes": ["Ingress"],
            "ingress": [
                { "from": [{ "podSelector": { "matchLabels": { "tier": "frontend" } } }],
                  "ports": [{ "port": "http" }] },
                { "from": [{
                    "namespaceSelector": { "matchLabels": { "team": format!("team-{}", (ns + 1) % 25) } },
                    "podSelector": { "matchLabels": { "app": "app-1" } },
                  }], "ports": [{ "protocol": "TCP", "port": 8080 + variant % 2 }] },
                { "from": [{ "namespaceSelector": { "matchExpressions": [
                    { "key": "team", "operator": "In", "values": ["team-0", "team-1"] } ] } }],
                  "ports": [{ "port": "metrics" }] },
            ],
        }),
        _ => json!({
            "podSelector": { "matchLabels": { "tier": "frontend" } }, "policyTypes": ["Egress"],
            "egress": [{ "to": [{ "ipBlock": { "cidr": "0.0.0.0/0",
                "except": ["10.0.0.0/8", "100.64.0.0/10", "172.16.0.0/12", "192.168.0.0/16"] } }],
                "ports": [{ "protocol": "TCP", "port": 443 }] }],
        }),
    };
    let names = [
        "default-deny",
        "allow-dns",
        "backend-ingress",
        "frontend-egress",
    ];
    let name = if shape < 4 {
        names[shape].to_owned()
    } else {
        format!("{}-{shape}", names[shape % 4])
    };
    json!({ "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta(&name), "spec": spec })
}

fn list(items: Vec<Value>) -> String {
    json!({ "apiVersion": "v1", "kind": "List", "items": items }).to_string()
}

/// Writes the cluster; returns how many pods are local.
fn write_cluster(
    bed: &Bed,
    local: &[netseg_testbed::Pod],
    manifests: &Manifests,
    scale: &Scale,
) -> Result<usize> {
    let per_ns = scale.pods.div_ceil(scale.namespaces);
    let per_ns_policies = scale.policies.div_ceil(scale.namespaces);
    let mut index = 0;
    let mut policies = 0;
    for ns in 0..scale.namespaces {
        let mut items = vec![namespace(ns)];
        for j in 0..per_ns {
            if index < scale.pods {
                items.push(remote_pod(ns, j, index));
                index += 1;
            }
        }
        for shape in 0..per_ns_policies {
            if policies < scale.policies {
                items.push(policy(ns, shape, 0));
                policies += 1;
            }
        }
        manifests.write(&format!("{}.json", namespace_name(ns)), &list(items))?;
    }
    let dns: Vec<Value> = (0..2)
        .map(|i| {
            let mut pod = remote_pod(0, i, scale.pods + i);
            pod["metadata"]["namespace"] = "kube-system".into();
            pod["metadata"]["name"] = format!("coredns-{i}").into();
            pod["metadata"]["labels"] = json!({ "k8s-app": "kube-dns" });
            pod
        })
        .collect();
    let mut kube_system = vec![
        json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": "kube-system", "labels": { "kubernetes.io/metadata.name": "kube-system" } } }),
    ];
    kube_system.extend(dns);
    manifests.write("kube-system.json", &list(kube_system))?;
    let mut locals = vec![
        yaml_to_json(&pod_yaml(&bed.client, &[("app", "client")], &[])?)?,
        yaml_to_json(&pod_yaml(&bed.server, &[("app", "server")], &[])?)?,
        json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": {
            "name": "bench", "labels": { "kubernetes.io/metadata.name": "bench" } } }),
    ];
    for (j, pod) in local.iter().enumerate() {
        locals.push(local_pod(pod, j)?);
    }
    manifests.write("local.json", &list(locals))?;
    Ok(2 + local.len())
}

/// The `j`-th extra pod of the node, labelled as the `j`-th pod of a namespace.
pub(super) fn local_pod(pod: &netseg_testbed::Pod, j: usize) -> Result<Value> {
    let labels = pod_labels(j);
    let tier = labels["tier"].as_str().unwrap_or("db").to_owned();
    let app = labels["app"].as_str().unwrap_or("app-0").to_owned();
    yaml_to_json(&pod_yaml(
        pod,
        &[("app", &app), ("tier", &tier), ("version", "v1")],
        &[netseg_testbed::ContainerPort::tcp(8080)],
    )?)
}

/// pod_yaml renders YAML; the manifests here are JSON lists.
pub(super) fn yaml_to_json(yaml: &str) -> Result<Value> {
    Ok(serde_saphyr::from_str(yaml)?)
}

/// Starts the daemon on the cluster, reports time to the first publication
/// and memory, then measures the delay of `changes` policy edits: what was
/// measured, the delays, and the memory paragraph.
pub fn run(
    netseg: &Path,
    work: &Path,
    changes: usize,
    scale: &Scale,
) -> Result<(String, Vec<Timed>, String)> {
    let bed = Bed::new("bench-scale")?;
    let local: Vec<netseg_testbed::Pod> = (0..EXTRA_LOCAL_PODS)
        .map(|i| {
            bed.node
                .add_pod(&format!("{}/local-{i}", namespace_name(i + 1)))
        })
        .collect::<Result<_>>()?;
    let manifests = Manifests::new()?;
    let endpoints = write_cluster(&bed, &local, &manifests, scale)?;
    let started = Instant::now();
    let mut daemon = NetsegDaemon::start(
        netseg,
        &bed.node,
        DaemonSource::Manifests(manifests.dir()),
        &work.join("flows-scale.jsonl"),
        work,
        &[],
    )?;
    let status = daemon.wait_for(Duration::from_secs(600), |s| {
        s.endpoints == endpoints as u64 && s.revision > 0
    })?;
    let first = started.elapsed();
    std::thread::sleep(Duration::from_secs(3));
    let (rss, hwm) = daemon.memory_kib()?;
    let cpu = daemon.cpu_seconds()?;
    // ns-002 holds local-1, a backend: its ingress policy is on this node.
    let edited = |i: usize| -> Result<()> {
        let per_ns = scale.pods.div_ceil(scale.namespaces);
        let mut items = vec![namespace(EDITED_NS)];
        items.extend(
            (0..per_ns)
                .map(|j| (j, EDITED_NS * per_ns + j))
                .filter(|(_, index)| *index < scale.pods)
                .map(|(j, index)| remote_pod(EDITED_NS, j, index)),
        );
        for shape in 0..scale.policies.div_ceil(scale.namespaces) {
            items.push(policy(EDITED_NS, shape, if shape == 2 { i + 1 } else { 0 }));
        }
        manifests.write(&format!("{}.json", namespace_name(EDITED_NS)), &list(items))?;
        Ok(())
    };
    let timed = timed_delays(&mut daemon, changes, edited)?;
    let (rss_after, hwm_after) = daemon.memory_kib()?;
    let mut memory = String::new();
    let _ = write!(
        memory,
        "At scale ({} pods, {} namespaces + kube-system, {} NetworkPolicies, {endpoints} local pods, \
         {} problems reported): first publication {:.2} s after start (daemon CPU {:.2} s); \
         VmRSS {:.1} MiB (peak VmHWM {:.1} MiB) 3 s after it; after the {changes} edits VmRSS {:.1} MiB, VmHWM {:.1} MiB.",
        scale.pods,
        scale.namespaces,
        scale.policies,
        status.problems.len(),
        first.as_secs_f64(),
        cpu,
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0,
        rss_after as f64 / 1024.0,
        hwm_after as f64 / 1024.0,
    );
    if !status.problems.is_empty() {
        let _ = write!(
            memory,
            " First problems: {:?}",
            &status.problems[..status.problems.len().min(3)]
        );
    }
    let what = format!(
        "{} pods, {} policies: one policy's port changes",
        scale.pods, scale.policies
    );
    std::fs::write(
        work.join("delays-scale.json"),
        serde_json::to_string(&end_to_end(&timed))?,
    )?;
    drop(daemon);
    drop(local);
    Ok((what, timed, memory))
}
