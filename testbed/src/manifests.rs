//! A manifests directory for the daemon's `--manifests` source: namespaces,
//! pods (host-network ones included) and the Node object generated from the
//! topology, policies as raw YAML.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::{Map, Value, json};
use tempfile::TempDir;

use crate::probes::Protocol;
use crate::topology::{Node, Pod};

/// A named container port of a pod manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerPort {
    pub name: String,
    pub port: u16,
    pub protocol: Protocol,
}

impl ContainerPort {
    pub fn new(name: &str, port: u16, protocol: Protocol) -> Self {
        Self {
            name: name.to_owned(),
            port,
            protocol,
        }
    }

    /// Named like the upstream e2e tests name their ports: `serve-80-tcp`.
    pub fn tcp(port: u16) -> Self {
        Self::new(&format!("serve-{port}-tcp"), port, Protocol::Tcp)
    }

    pub fn udp(port: u16) -> Self {
        Self::new(&format!("serve-{port}-udp"), port, Protocol::Udp)
    }

    pub fn sctp(port: u16) -> Self {
        Self::new(&format!("serve-{port}-sctp"), port, Protocol::Sctp)
    }
}

/// A temporary manifests directory, deleted on drop. Files are written
/// atomically (a hidden `.<name>.tmp` renamed into place) so the daemon
/// never reads half a file.
#[derive(Debug)]
pub struct Manifests {
    dir: TempDir,
}

impl Manifests {
    pub fn new() -> Result<Self> {
        Ok(Self {
            dir: tempfile::Builder::new()
                .prefix("netseg-manifests-")
                .tempdir()?,
        })
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, file_name: &str, content: &str) -> Result<PathBuf> {
        let path = self.dir().join(file_name);
        let staging = self.dir().join(format!(".{file_name}.tmp"));
        fs::write(&staging, content).with_context(|| format!("writing {}", staging.display()))?;
        fs::rename(&staging, &path).with_context(|| format!("renaming to {}", path.display()))?;
        Ok(path)
    }

    pub fn remove(&self, file_name: &str) -> Result<()> {
        let path = self.dir().join(file_name);
        fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))
    }

    /// Writes `namespace-<name>.yaml`.
    pub fn namespace(&self, name: &str, labels: &[(&str, &str)]) -> Result<PathBuf> {
        self.write(
            &format!("namespace-{name}.yaml"),
            &namespace_yaml(name, labels)?,
        )
    }

    /// Writes `pod-<namespace>-<name>.yaml` for a pod of the topology.
    pub fn pod(
        &self,
        pod: &Pod,
        labels: &[(&str, &str)],
        ports: &[ContainerPort],
    ) -> Result<PathBuf> {
        self.write(
            &Self::pod_file(pod.namespace(), pod.name()),
            &pod_yaml(pod, labels, ports)?,
        )
    }

    /// Writes `pod-<namespace>-<name>.yaml` for a pod scheduled on `node`
    /// whose sandbox does not exist yet: no status, so no address.
    pub fn scheduled_pod(
        &self,
        namespace: &str,
        name: &str,
        node: &str,
        labels: &[(&str, &str)],
    ) -> Result<PathBuf> {
        let manifest = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": { "name": name, "namespace": namespace, "labels": label_map(labels) },
            "spec": {
                "nodeName": node,
                "containers": [{ "name": "main", "image": "netseg-tests/none" }],
            },
        });
        self.write(
            &format!("pod-{namespace}-{name}.yaml"),
            &serde_saphyr::to_string(&manifest)?,
        )
    }

    /// Writes `pod-<namespace>-<name>.yaml` for a pod with `hostNetwork:
    /// true` on `node`: its addresses are the node's.
    pub fn host_network_pod(
        &self,
        node: &Node,
        full_name: &str,
        labels: &[(&str, &str)],
        ports: &[ContainerPort],
    ) -> Result<PathBuf> {
        let (namespace, name) = full_name.split_once('/').unwrap_or(("default", full_name));
        self.write(
            &format!("pod-{namespace}-{name}.yaml"),
            &host_network_pod_yaml(node, namespace, name, labels, ports)?,
        )
    }

    /// Writes `node-<name>.yaml`: the Node object of `node`, with these
    /// labels and the node's two addresses as InternalIPs.
    pub fn node(&self, node: &Node, labels: &[(&str, &str)]) -> Result<PathBuf> {
        self.write(
            &format!("node-{}.yaml", node.name()),
            &node_yaml(node, labels)?,
        )
    }

    pub fn remove_pod(&self, pod: &Pod) -> Result<()> {
        self.remove(&Self::pod_file(pod.namespace(), pod.name()))
    }

    /// Removes the manifest of a pod whose namespace is gone already.
    pub fn remove_pod_named(&self, namespace: &str, name: &str) -> Result<()> {
        self.remove(&Self::pod_file(namespace, name))
    }

    /// Writes `policy-<name>.yaml` with the YAML as given.
    pub fn policy(&self, name: &str, yaml: &str) -> Result<PathBuf> {
        self.write(&format!("policy-{name}.yaml"), yaml)
    }

    pub fn remove_policy(&self, name: &str) -> Result<()> {
        self.remove(&format!("policy-{name}.yaml"))
    }

    fn pod_file(namespace: &str, name: &str) -> String {
        format!("pod-{namespace}-{name}.yaml")
    }
}

/// A Namespace. Like an API server, it adds the immutable label
/// `kubernetes.io/metadata.name` that namespace selectors often use.
pub fn namespace_yaml(name: &str, labels: &[(&str, &str)]) -> Result<String> {
    let mut all = label_map(labels);
    all.insert("kubernetes.io/metadata.name".into(), name.into());
    let manifest = json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": { "name": name, "labels": all },
    });
    Ok(serde_saphyr::to_string(&manifest)?)
}

/// A running Pod on the topology's node, with its addresses in the status.
pub fn pod_yaml(pod: &Pod, labels: &[(&str, &str)], ports: &[ContainerPort]) -> Result<String> {
    let ports = container_ports(ports);
    let manifest = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod.name(),
            "namespace": pod.namespace(),
            "labels": label_map(labels),
        },
        "spec": {
            "nodeName": pod.node_name(),
            "containers": [{ "name": "server", "image": "netseg-tests/none", "ports": ports }],
        },
        "status": {
            "phase": "Running",
            "podIP": pod.ipv4().to_string(),
            "podIPs": [{ "ip": pod.ipv4().to_string() }, { "ip": pod.ipv6().to_string() }],
        },
    });
    Ok(serde_saphyr::to_string(&manifest)?)
}

/// A running host-network Pod on `node`: as the API server shows one, its
/// pod and host addresses are the node's.
pub fn host_network_pod_yaml(
    node: &Node,
    namespace: &str,
    name: &str,
    labels: &[(&str, &str)],
    ports: &[ContainerPort],
) -> Result<String> {
    let (v4, v6) = (node.ipv4().to_string(), node.ipv6().to_string());
    let manifest = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": name, "namespace": namespace, "labels": label_map(labels) },
        "spec": {
            "nodeName": node.name(),
            "hostNetwork": true,
            "containers": [{
                "name": "server", "image": "netseg-tests/none", "ports": container_ports(ports),
            }],
        },
        "status": {
            "phase": "Running",
            "hostIP": v4,
            "podIP": v4,
            "podIPs": [{ "ip": v4 }, { "ip": v6 }],
        },
    });
    Ok(serde_saphyr::to_string(&manifest)?)
}

/// The Node object of `node`, as the kubelet registers one: labels, and its
/// addresses in `status.addresses`.
pub fn node_yaml(node: &Node, labels: &[(&str, &str)]) -> Result<String> {
    let manifest = json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": { "name": node.name(), "labels": label_map(labels) },
        "status": {
            "addresses": [
                { "type": "InternalIP", "address": node.ipv4().to_string() },
                { "type": "InternalIP", "address": node.ipv6().to_string() },
                { "type": "Hostname", "address": node.name() },
            ],
        },
    });
    Ok(serde_saphyr::to_string(&manifest)?)
}

fn container_ports(ports: &[ContainerPort]) -> Vec<Value> {
    ports
        .iter()
        .map(|p| json!({ "name": p.name, "containerPort": p.port, "protocol": p.protocol.k8s_name() }))
        .collect()
}

fn label_map(labels: &[(&str, &str)]) -> Map<String, Value> {
    labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Value::from(*v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_carries_its_name_label() {
        let yaml = namespace_yaml("x", &[("team", "a")]).expect("yaml");
        let parsed: Value = serde_saphyr::from_str(&yaml).expect("parses");
        assert_eq!(parsed["kind"], "Namespace");
        assert_eq!(parsed["metadata"]["labels"]["team"], "a");
        assert_eq!(
            parsed["metadata"]["labels"]["kubernetes.io/metadata.name"],
            "x"
        );
    }

    #[test]
    fn files_are_written_and_removed() {
        let manifests = Manifests::new().expect("temp dir");
        let path = manifests
            .policy("deny", "kind: NetworkPolicy\n")
            .expect("write");
        assert_eq!(
            fs::read_to_string(&path).expect("read"),
            "kind: NetworkPolicy\n"
        );
        let names: Vec<_> = fs::read_dir(manifests.dir())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["policy-deny.yaml"]);
        manifests.remove_policy("deny").expect("remove");
        assert!(!path.exists());
    }
}
