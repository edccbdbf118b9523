//! What the source trims away is never read: a cluster of objects as the
//! API server sends them (managed fields, annotations, every container
//! field, status) compiles to the same maps trimmed as whole.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use netseg_policy::{CompileOptions, Compiled, Compiler, DefaultAction, Snapshot};
use serde_json::{Value, json};

use crate::sources::kube::slim::{SlimPod, slim_namespace, slim_network_policy, slim_node};

const NODE: &str = "node-1";

/// A Deployment's pod as the API server serves it: owners, annotations,
/// managed fields, an app container with named and unnamed ports, env,
/// probes and volumes, a sidecar without ports, an init container, and a
/// status with conditions and container statuses.
fn full_pod(namespace: &str, name: &str, node: &str, ips: &[&str], labels: Value) -> Value {
    let pod_ips: Vec<Value> = ips.iter().map(|ip| json!({ "ip": ip })).collect();
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": name, "namespace": namespace, "generateName": "web-7c9f8d6b5-",
            "uid": format!("uid-{name}"), "resourceVersion": "48213", "generation": 1,
            "creationTimestamp": "2026-11-30T08:00:00Z",
            "labels": labels,
            "annotations": { "prometheus.io/scrape": "true", "kubectl.kubernetes.io/restartedAt": "2026-11-30T07:59:00Z" },
            "ownerReferences": [
                { "apiVersion": "v1", "kind": "Node", "name": node, "uid": "node-uid" },
                { "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7c9f8d6b5",
                  "uid": "rs-uid", "controller": true, "blockOwnerDeletion": true },
            ],
            "finalizers": ["example.com/drain"],
            "managedFields": [{
                "manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1",
                "time": "2026-11-30T08:00:00Z", "fieldsType": "FieldsV1",
                "fieldsV1": { "f:metadata": { "f:labels": { ".": {}, "f:app": {} } } },
            }],
        },
        "spec": {
            "nodeName": node, "serviceAccountName": "web", "restartPolicy": "Always",
            "dnsPolicy": "ClusterFirst", "priority": 0, "terminationGracePeriodSeconds": 30,
            "initContainers": [{ "name": "migrate", "image": "registry.example.com/migrate:1",
                "ports": [{ "name": "init-http", "containerPort": 7000 }] }],
            "containers": [
                { "name": "app", "image": "registry.example.com/web:1.4.2",
                  "ports": [
                      { "name": "http", "containerPort": 8080, "protocol": "TCP" },
                      { "containerPort": 8081, "protocol": "TCP" },
                      { "name": "dns", "containerPort": 5353, "protocol": "UDP" },
                  ],
                  "env": [{ "name": "LOG_LEVEL", "value": "info" },
                          { "name": "POD_IP", "valueFrom": { "fieldRef": { "fieldPath": "status.podIP" } } }],
                  "resources": { "limits": { "memory": "256Mi" }, "requests": { "cpu": "100m" } },
                  "livenessProbe": { "httpGet": { "path": "/healthz", "port": "http" }, "periodSeconds": 10 },
                  "volumeMounts": [{ "name": "token", "mountPath": "/var/run/secrets/token", "readOnly": true }] },
                { "name": "proxy", "image": "registry.example.com/proxy:2", "args": ["--listen", ":15001"] },
                { "name": "metrics", "image": "registry.example.com/exporter:3",
                  "ports": [{ "name": "metrics", "containerPort": 9090 }] },
            ],
            "tolerations": [{ "key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300 }],
            "volumes": [{ "name": "token", "projected": { "sources": [
                { "serviceAccountToken": { "expirationSeconds": 3607, "path": "token" } }] } }],
        },
        "status": {
            "phase": "Running", "qosClass": "Burstable", "hostIP": "172.20.0.1",
            "podIP": ips.first(), "podIPs": pod_ips, "startTime": "2026-11-30T08:00:03Z",
            "conditions": [{ "type": "Ready", "status": "True", "lastTransitionTime": "2026-11-30T08:00:05Z" }],
            "containerStatuses": [{ "name": "app", "ready": true, "restartCount": 2, "image": "x", "imageID": "y",
                "state": { "running": { "startedAt": "2026-11-30T08:00:04Z" } } }],
        },
    })
}

/// The cluster: two namespaces, local and peer pods (one on the host's
/// network, one finished, one dual-stack), two nodes, and policies that
/// select by labels and namespaces and allow named ports.
fn cluster() -> (Vec<Value>, Vec<Value>, Vec<Value>, Vec<Value>) {
    let namespaces = ["shop", "ops"]
        .iter()
        .map(|name| {
            json!({
                "apiVersion": "v1", "kind": "Namespace",
                "metadata": { "name": name, "uid": format!("ns-{name}"), "resourceVersion": "7",
                    "labels": { "kubernetes.io/metadata.name": name, "team": format!("team-{name}") },
                    "annotations": { "owner": "platform" },
                    "managedFields": [{ "manager": "kubectl", "operation": "Apply" }] },
                "spec": { "finalizers": ["kubernetes"] },
                "status": { "phase": "Active" },
            })
        })
        .collect();
    let mut host_network = full_pod(
        "ops",
        "agent",
        NODE,
        &["172.20.0.1"],
        json!({ "app": "agent" }),
    );
    host_network["spec"]["hostNetwork"] = json!(true);
    let mut finished = full_pod(
        "shop",
        "job",
        "node-2",
        &["10.0.1.9"],
        json!({ "app": "web" }),
    );
    finished["status"]["phase"] = json!("Succeeded");
    let pods = vec![
        full_pod(
            "shop",
            "web-a",
            NODE,
            &["10.0.0.1"],
            json!({ "app": "web", "tier": "frontend" }),
        ),
        full_pod(
            "shop",
            "api-a",
            NODE,
            &["10.0.0.2", "fd00::2"],
            json!({ "app": "api", "tier": "backend" }),
        ),
        full_pod(
            "shop",
            "web-b",
            "node-2",
            &["10.0.1.1"],
            json!({ "app": "web", "tier": "frontend" }),
        ),
        full_pod(
            "ops",
            "prom",
            "node-2",
            &["10.0.1.2"],
            json!({ "app": "prometheus" }),
        ),
        host_network,
        finished,
    ];
    let nodes = [(NODE, "172.20.0.1"), ("node-2", "172.20.0.2")]
        .iter()
        .map(|(name, ip)| {
            json!({
                "apiVersion": "v1", "kind": "Node",
                "metadata": { "name": name, "labels": { "kubernetes.io/hostname": name },
                    "annotations": { "node.alpha.kubernetes.io/ttl": "0" } },
                "spec": { "podCIDR": "10.0.0.0/24" },
                "status": { "addresses": [{ "type": "InternalIP", "address": ip }, { "type": "Hostname", "address": name }],
                    "capacity": { "cpu": "8" }, "images": [{ "names": ["registry.example.com/web:1.4.2"], "sizeBytes": 1 }],
                    "conditions": [{ "type": "Ready", "status": "True" }] },
            })
        })
        .collect();
    let policy = |name: &str, spec: Value| {
        json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": { "name": name, "namespace": "shop", "uid": format!("np-{name}"), "generation": 3,
                "annotations": { "kubectl.kubernetes.io/last-applied-configuration": "{}" },
                "managedFields": [{ "manager": "kubectl", "operation": "Apply" }] },
            "spec": spec,
        })
    };
    let policies = vec![
        policy(
            "api-from-web",
            json!({
                "podSelector": { "matchLabels": { "tier": "backend" } }, "policyTypes": ["Ingress", "Egress"],
                "ingress": [
                    { "from": [{ "podSelector": { "matchLabels": { "app": "web" } } }], "ports": [{ "port": "http" }, { "port": "dns", "protocol": "UDP" }] },
                    { "from": [{ "namespaceSelector": { "matchLabels": { "team": "team-ops" } } }], "ports": [{ "port": "metrics" }] },
                ],
                "egress": [{ "to": [{ "podSelector": {} }], "ports": [{ "port": "http" }] }],
            }),
        ),
        policy(
            "web-ingress",
            json!({
                "podSelector": { "matchLabels": { "app": "web" } }, "policyTypes": ["Ingress"],
                "ingress": [{ "from": [{ "ipBlock": { "cidr": "172.20.0.0/16" } }], "ports": [{ "port": "init-http" }, { "port": 8081 }] }],
            }),
        ),
    ];
    (namespaces, pods, nodes, policies)
}

fn decoded<T: serde::de::DeserializeOwned>(value: &Value) -> T {
    serde_json::from_value(value.clone()).expect("an object as the API server sends it")
}

fn snapshot(trimmed: bool) -> Snapshot {
    let (namespaces, pods, nodes, policies) = cluster();
    let pod = |v: &Value| match trimmed {
        true => decoded::<SlimPod>(v).into_pod(),
        false => decoded::<Pod>(v),
    };
    let namespace = |v: &Value| match trimmed {
        true => slim_namespace(decoded::<Namespace>(v)),
        false => decoded::<Namespace>(v),
    };
    let node = |v: &Value| match trimmed {
        true => slim_node(decoded::<Node>(v)),
        false => decoded::<Node>(v),
    };
    let policy = |v: &Value| match trimmed {
        true => slim_network_policy(decoded::<NetworkPolicy>(v)),
        false => decoded::<NetworkPolicy>(v),
    };
    Snapshot {
        namespaces: namespaces.iter().map(|v| Arc::new(namespace(v))).collect(),
        pods: pods.iter().map(|v| Arc::new(pod(v))).collect(),
        nodes: nodes.iter().map(|v| Arc::new(node(v))).collect(),
        network_policies: policies.iter().map(|v| Arc::new(policy(v))).collect(),
        ..Snapshot::default()
    }
}

fn compiled(snapshot: &Snapshot, default_action: DefaultAction) -> Compiled {
    let options = CompileOptions {
        node_name: NODE.into(),
        default_action,
        deny_node_traffic: true,
        node_addresses: vec!["172.20.0.1".parse().expect("an address")],
    };
    Compiler::new().compile(snapshot, &options)
}

#[test]
fn trimmed_objects_compile_to_the_same_maps_as_whole_ones() {
    let whole = snapshot(false);
    let trimmed = snapshot(true);
    for default_action in [DefaultAction::Deny, DefaultAction::Allow] {
        let expected = compiled(&whole, default_action);
        assert_eq!(
            compiled(&trimmed, default_action),
            expected,
            "{default_action:?}"
        );
        // Not vacuous: both local pods with an address are endpoints, every
        // running pod is named, and the policies put entries in the maps
        // that a cluster without them does not have.
        assert_eq!(expected.endpoints.len(), 2, "{default_action:?}");
        assert_eq!(expected.pod_addresses.len(), 5, "{default_action:?}");
        let without_policies = Snapshot {
            network_policies: Vec::new(),
            ..whole.clone()
        };
        assert_ne!(
            compiled(&without_policies, default_action).policy,
            expected.policy,
            "{default_action:?}"
        );
    }
    let pod = &trimmed.pods[1];
    let spec = pod.spec.as_ref().expect("a spec");
    assert!(pod.metadata.managed_fields.is_none() && pod.metadata.annotations.is_none());
    assert!(spec.init_containers.is_none() && spec.volumes.is_none());
    let containers: Vec<&str> = spec.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(containers, ["app", "metrics"], "the sidecar names no port");
    assert!(
        spec.containers
            .iter()
            .all(|c| c.env.is_none() && c.image.is_none())
    );
}
