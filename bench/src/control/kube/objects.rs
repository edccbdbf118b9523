//! Pods and Nodes as an API server serves them from a real cluster: a
//! Deployment's pod with its owner, annotations, the managed fields of the
//! controller manager and the kubelet, a container with named ports,
//! probes, resources and the service-account volume, and a status with
//! conditions and a container status (about 4.5 KB of JSON each). The
//! daemon keeps a small part of this; what it is sent is all of it.

use std::net::Ipv4Addr;

use serde_json::{Value, json};

use super::super::scale::pod_labels;

/// Pods per node, as the kubelet's default maximum (110) allows.
pub const PODS_PER_NODE: usize = 110;

const CREATED: &str = "2026-11-30T08:00:00Z";
const STARTED: &str = "2026-11-30T08:00:03Z";

/// Name of the `i`-th node of the cluster other than the benchmark's.
pub fn node_name(i: usize) -> String {
    format!("worker-{i:04}")
}

/// The pod `j` of namespace `namespace`, the `index`-th of the cluster,
/// running on `node_name(index / PODS_PER_NODE)` with a 100.64.0.0/10 address.
pub fn pod(namespace: &str, j: usize, index: usize) -> Value {
    let labels = pod_labels(j);
    let app = labels["app"].as_str().unwrap_or("app").to_owned();
    let hash = format!(
        "{:010x}",
        (index as u64).wrapping_mul(0x9e37_79b9) & 0xff_ffff_ffff
    );
    let name = format!("{app}-{}-{:05x}", &hash[..8], index & 0xfffff);
    let ip = Ipv4Addr::from(0x6440_0000u32 + index as u32 + 1).to_string();
    let node = node_name(index / PODS_PER_NODE);
    let host_ip = node_ip(index / PODS_PER_NODE).to_string();
    let pod_uid = uid(index as u64);
    let mut labels = labels;
    labels["pod-template-hash"] = json!(&hash[..8]);
    labels["app.kubernetes.io/name"] = json!(app);
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": name, "generateName": format!("{app}-{}-", &hash[..8]),
            "namespace": namespace, "uid": pod_uid, "creationTimestamp": CREATED,
            "labels": labels,
            "annotations": {
                "prometheus.io/scrape": "true",
                "prometheus.io/port": "9090",
            },
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("{app}-{}", &hash[..8]),
                "uid": uid(index as u64 / 3 + 1_000_000_000),
                "controller": true, "blockOwnerDeletion": true,
            }],
            "managedFields": [
                {
                    "manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1",
                    "time": CREATED, "fieldsType": "FieldsV1",
                    "fieldsV1": {
                        "f:metadata": {
                            "f:annotations": { ".": {}, "f:prometheus.io/port": {}, "f:prometheus.io/scrape": {} },
                            "f:generateName": {},
                            "f:labels": { ".": {}, "f:app": {}, "f:app.kubernetes.io/name": {},
                                "f:pod-template-hash": {},
                                "f:tier": {}, "f:version": {} },
                            "f:ownerReferences": { ".": {}, "k:{\"uid\":\"owner\"}": {} },
                        },
                        "f:spec": {
                            "f:containers": { "k:{\"name\":\"app\"}": {
                                ".": {}, "f:env": {}, "f:image": {}, "f:imagePullPolicy": {},
                                "f:livenessProbe": {}, "f:name": {},
                                "f:ports": { ".": {}, "k:{\"containerPort\":8080,\"protocol\":\"TCP\"}": {},
                                    "k:{\"containerPort\":9090,\"protocol\":\"TCP\"}": {} },
                                "f:resources": {},
                                "f:terminationMessagePath": {}, "f:terminationMessagePolicy": {},
                            } },
                            "f:dnsPolicy": {}, "f:enableServiceLinks": {}, "f:restartPolicy": {},
                            "f:schedulerName": {}, "f:securityContext": {},
                            "f:terminationGracePeriodSeconds": {},
                        },
                    },
                },
                {
                    "manager": "kubelet", "operation": "Update", "apiVersion": "v1",
                    "time": STARTED, "fieldsType": "FieldsV1", "subresource": "status",
                    "fieldsV1": { "f:status": {
                        "f:conditions": {
                            "k:{\"type\":\"ContainersReady\"}": { ".": {}, "f:lastProbeTime": {}, "f:lastTransitionTime": {}, "f:status": {}, "f:type": {} },
                            "k:{\"type\":\"Initialized\"}": { ".": {}, "f:lastProbeTime": {}, "f:lastTransitionTime": {}, "f:status": {}, "f:type": {} },
                            "k:{\"type\":\"Ready\"}": { ".": {}, "f:lastProbeTime": {}, "f:lastTransitionTime": {}, "f:status": {}, "f:type": {} },
                        },
                        "f:containerStatuses": {}, "f:hostIP": {}, "f:hostIPs": {}, "f:phase": {},
                        "f:podIP": {}, "f:podIPs": { ".": {}, "k:{\"ip\":\"pod\"}": { ".": {}, "f:ip": {} } },
                        "f:startTime": {},
                    } },
                },
            ],
        },
        "spec": {
            "containers": [{
                "name": "app", "image": format!("registry.example.com/{namespace}/{app}:1.4.2"),
                "imagePullPolicy": "IfNotPresent",
                "ports": [
                    { "name": "http", "containerPort": 8080, "protocol": "TCP" },
                    { "name": "metrics", "containerPort": 9090, "protocol": "TCP" },
                ],
                "env": [
                    { "name": "LOG_LEVEL", "value": "info" },
                ],
                "resources": { "limits": { "memory": "256Mi" }, "requests": { "cpu": "100m", "memory": "128Mi" } },
                "livenessProbe": { "httpGet": { "path": "/healthz", "port": "http", "scheme": "HTTP" },
                    "periodSeconds": 10, "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3 },
                "volumeMounts": [{ "name": "kube-api-access", "readOnly": true,
                    "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount" }],
                "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
            }],
            "dnsPolicy": "ClusterFirst", "enableServiceLinks": true, "nodeName": node,
            "preemptionPolicy": "PreemptLowerPriority", "priority": 0, "restartPolicy": "Always",
            "schedulerName": "default-scheduler", "securityContext": {},
            "serviceAccount": "default", "serviceAccountName": "default",
            "terminationGracePeriodSeconds": 30,
            "tolerations": [
                { "effect": "NoExecute", "key": "node.kubernetes.io/not-ready", "operator": "Exists", "tolerationSeconds": 300 },
                { "effect": "NoExecute", "key": "node.kubernetes.io/unreachable", "operator": "Exists", "tolerationSeconds": 300 },
            ],
            "volumes": [{ "name": "kube-api-access", "projected": { "defaultMode": 420, "sources": [
                { "serviceAccountToken": { "expirationSeconds": 3607, "path": "token" } },
                { "configMap": { "name": "kube-root-ca.crt", "items": [{ "key": "ca.crt", "path": "ca.crt" }] } },
                { "downwardAPI": { "items": [{ "path": "namespace",
                    "fieldRef": { "apiVersion": "v1", "fieldPath": "metadata.namespace" } }] } },
            ] } }],
        },
        "status": {
            "phase": "Running", "qosClass": "Burstable", "startTime": STARTED,
            "hostIP": host_ip, "hostIPs": [{ "ip": host_ip }],
            "podIP": ip, "podIPs": [{ "ip": ip }],
            "conditions": conditions(true, STARTED),
            "containerStatuses": [{
                "name": "app", "ready": true, "restartCount": 0, "started": true,
                "image": format!("registry.example.com/{namespace}/{app}:1.4.2"),
                "imageID": format!("registry.example.com/{namespace}/{app}@sha256:{}", "3f2a".repeat(16)),
                "containerID": format!("containerd://{}", "9c1e".repeat(16)),
                "state": { "running": { "startedAt": STARTED } },
                "lastState": {},
            }],
        },
    })
}

/// The kubelet's conditions of a running pod, ready or not since `since`.
fn conditions(ready: bool, since: &str) -> Value {
    let status = if ready { "True" } else { "False" };
    json!([
        { "type": "Initialized", "status": "True", "lastProbeTime": null, "lastTransitionTime": CREATED },
        { "type": "Ready", "status": status, "lastProbeTime": null, "lastTransitionTime": since },
        { "type": "ContainersReady", "status": status, "lastProbeTime": null, "lastTransitionTime": since },
        { "type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": CREATED },
    ])
}

/// What the kubelet writes when a readiness probe flips: conditions and
/// the container's `ready`, nothing a policy reads.
pub fn set_ready(pod: &mut Value, ready: bool, since: &str) {
    pod["status"]["conditions"] = conditions(ready, since);
    pod["status"]["containerStatuses"][0]["ready"] = json!(ready);
}

/// The `i`-th other node: labels, addresses, capacity and conditions, but
/// not the image list a real kubelet reports (often tens of kilobytes).
pub fn node(i: usize) -> Value {
    let name = node_name(i);
    let ip = node_ip(i).to_string();
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": { "name": name, "uid": uid(2_000_000_000 + i as u64), "labels": {
            "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
            "topology.kubernetes.io/zone": format!("zone-{}", i % 3),
            "node.kubernetes.io/instance-type": "m6i.2xlarge",
        } },
        "spec": { "podCIDR": format!("10.{}.{}.0/24", 100 + i / 256, i % 256) },
        "status": {
            "addresses": [{ "type": "InternalIP", "address": ip }, { "type": "Hostname", "address": name }],
            "capacity": { "cpu": "8", "memory": "32386520Ki", "pods": "110" },
            "allocatable": { "cpu": "7910m", "memory": "31235544Ki", "pods": "110" },
            "conditions": [
                { "type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory" },
                { "type": "DiskPressure", "status": "False", "reason": "KubeletHasNoDiskPressure" },
                { "type": "PIDPressure", "status": "False", "reason": "KubeletHasSufficientPID" },
                { "type": "Ready", "status": "True", "reason": "KubeletReady" },
            ],
            "nodeInfo": { "kubeletVersion": "v1.34.2", "containerRuntimeVersion": "containerd://2.1.4",
                "kernelVersion": "6.12.0", "osImage": "Debian GNU/Linux 13", "architecture": "amd64",
                "operatingSystem": "linux" },
        },
    })
}

fn node_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::from(0xac14_0000u32 + i as u32 + 1)
}

fn uid(n: u64) -> String {
    let hex = format!("{:032x}", u128::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pod_is_as_large_as_a_deployments_pod_and_unique() {
        let pods: Vec<Value> = (0..1000).map(|i| pod("ns-007", i % 20, i)).collect();
        let bytes: usize = pods.iter().map(|p| p.to_string().len()).sum();
        let average = bytes / pods.len();
        assert!((4000..=5000).contains(&average), "{average} bytes per pod");
        let names: std::collections::BTreeSet<&str> = pods
            .iter()
            .map(|p| p["metadata"]["name"].as_str().expect("named"))
            .collect();
        assert_eq!(names.len(), pods.len());
        let mut flipped = pods[0].clone();
        set_ready(&mut flipped, false, "2026-11-30T09:00:00Z");
        assert_eq!(flipped["metadata"], pods[0]["metadata"]);
        assert_eq!(flipped["spec"], pods[0]["spec"]);
        assert_ne!(flipped["status"], pods[0]["status"]);
    }
}
