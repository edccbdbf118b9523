//! Builders for test clusters, and checks that run the compiler (through
//! `lookup`) and the reference evaluator side by side.
#![allow(dead_code)]

pub mod tiered;

use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use netseg_policy::{
    CompileOptions, Compiled, Compiler, DefaultAction, Direction, PodRef, Snapshot, Verdict,
    evaluate, lookup,
};
use serde_json::{Value, json};

use tiered::compiled_verdict;

pub const TCP: u8 = 6;
pub const UDP: u8 = 17;
pub const SCTP: u8 = 132;
pub const ICMP: u8 = 1;
pub const NODE: &str = "node-1";
pub const NODE_IP: &str = "192.168.0.10";
pub const NODE_IP6: &str = "fd00:ffff::10";

pub fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

pub fn namespace(name: &str, labels: Value) -> Namespace {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}}))
        .expect("namespace")
}

/// A pod on `node` with labels and IPs (first one also as `podIP`).
pub fn pod(ns: &str, name: &str, labels: Value, node: &str, ips: &[&str]) -> Pod {
    let pod_ips: Vec<Value> = ips.iter().map(|i| json!({"ip": i})).collect();
    serde_json::from_value(json!({
        "metadata": {"namespace": ns, "name": name, "labels": labels},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "i"}]},
        "status": {"phase": "Running", "podIP": ips.first(), "podIPs": pod_ips},
    }))
    .expect("pod")
}

/// Sets the container ports of `pod`: (name, port, protocol).
pub fn with_ports(mut pod: Pod, ports: &[(&str, i32, &str)]) -> Pod {
    let ports: Vec<Value> = ports
        .iter()
        .map(|(n, p, proto)| json!({"name": n, "containerPort": p, "protocol": proto}))
        .collect();
    let container = serde_json::from_value(json!({"name": "c", "image": "i", "ports": ports}))
        .expect("container");
    if let Some(spec) = pod.spec.as_mut() {
        spec.containers = vec![container];
    }
    pod
}

pub fn policy(ns: &str, name: &str, spec: Value) -> NetworkPolicy {
    serde_json::from_value(json!({"metadata": {"namespace": ns, "name": name}, "spec": spec}))
        .expect("policy")
}

/// A cluster whose pods all run on [`NODE`], so that every pod is a local
/// endpoint and a connection can be checked at both ends.
pub struct Cluster {
    pub snapshot: Snapshot,
    pub options: CompileOptions,
}

/// The agnhost ports of the upstream e2e model.
pub fn serve_ports() -> Vec<(&'static str, i32, &'static str)> {
    vec![
        ("serve-80-tcp", 80, "TCP"),
        ("serve-81-tcp", 81, "TCP"),
        ("serve-80-udp", 80, "UDP"),
        ("serve-81-udp", 81, "UDP"),
        ("serve-80-sctp", 80, "SCTP"),
        ("serve-81-sctp", 81, "SCTP"),
    ]
}

impl Cluster {
    pub fn new(default_action: DefaultAction) -> Self {
        Cluster {
            snapshot: Snapshot::default(),
            options: CompileOptions {
                node_name: NODE.into(),
                default_action,
                deny_node_traffic: false,
                node_addresses: vec![ip(NODE_IP), ip(NODE_IP6)],
            },
        }
    }

    /// The upstream model: namespaces x, y, z (labeled `ns`), pods a, b, c
    /// (labeled `pod`) in each, dual-stack, with the agnhost named ports.
    pub fn model_3x3() -> Self {
        let mut cluster = Cluster::new(DefaultAction::Allow);
        for (n, ns) in ["x", "y", "z"].iter().enumerate() {
            cluster
                .snapshot
                .namespaces
                .push(namespace(ns, json!({"ns": ns})).into());
            for (p, name) in ["a", "b", "c"].iter().enumerate() {
                let v4 = format!("10.0.{}.{}", n + 1, p + 1);
                let v6 = format!("fd00::{}:{}", n + 1, p + 1);
                let pod = pod(ns, name, json!({"pod": name}), NODE, &[&v4, &v6]);
                cluster
                    .snapshot
                    .pods
                    .push(with_ports(pod, &serve_ports()).into());
            }
        }
        cluster
    }

    pub fn pod_names(&self) -> Vec<String> {
        self.snapshot
            .pods
            .iter()
            .map(|p| {
                format!(
                    "{}/{}",
                    p.metadata.namespace.as_deref().unwrap_or(""),
                    p.metadata.name.as_deref().unwrap_or("")
                )
            })
            .collect()
    }

    pub fn add(&mut self, ns: &str, name: &str, spec: Value) {
        self.snapshot
            .network_policies
            .push(policy(ns, name, spec).into());
    }

    pub fn remove_policies(&mut self) {
        self.snapshot.network_policies.clear();
    }

    pub fn compile(&self) -> Compiled {
        Compiler::new().compile(&self.snapshot, &self.options)
    }

    /// The addresses of pod `ns/name`.
    pub fn ips(&self, pod: &str) -> Vec<IpAddr> {
        let (ns, name) = pod.split_once('/').expect("ns/name");
        let pod = self
            .snapshot
            .pods
            .iter()
            .find(|p| {
                p.metadata.namespace.as_deref() == Some(ns)
                    && p.metadata.name.as_deref() == Some(name)
            })
            .expect("pod exists");
        let status = pod.status.as_ref().expect("status");
        status.pod_ips.iter().flatten().map(|i| ip(&i.ip)).collect()
    }

    /// The verdict at `endpoint`, from the compiled maps: the verdict id
    /// that `lookup` finds, read back (`None`: no entry, denied). Asserts
    /// that the reference evaluator returns exactly the same verdict.
    pub fn verdict(
        &self,
        compiled: &Compiled,
        endpoint: &str,
        direction: Direction,
        peer: IpAddr,
        protocol: u8,
        port: u16,
    ) -> Option<Verdict> {
        let (ns, name) = endpoint.split_once('/').expect("ns/name");
        let endpoint = PodRef::new(ns, name);
        let value = lookup(compiled, &endpoint, direction, peer, protocol, port);
        let by_maps = compiled_verdict(compiled, value).unwrap_or_else(|e| panic!("{e}"));
        let reference = evaluate(
            &self.snapshot,
            &self.options,
            &endpoint,
            direction,
            peer,
            protocol,
            port,
        );
        assert_eq!(
            by_maps, reference,
            "compiler and evaluator disagree at {endpoint} {direction} peer {peer} proto {protocol} port {port}"
        );
        by_maps
    }

    /// Whether the compiled maps allow the connection (see [`Cluster::verdict`]).
    pub fn allowed(
        &self,
        compiled: &Compiled,
        endpoint: &str,
        direction: Direction,
        peer: IpAddr,
        protocol: u8,
        port: u16,
    ) -> bool {
        self.verdict(compiled, endpoint, direction, peer, protocol, port)
            .is_some_and(|v| v.allow)
    }

    /// Whether `from` can open a connection to `to`: egress at `from` and
    /// ingress at `to`, checked over IPv4 and IPv6 (which must agree).
    pub fn reach(
        &self,
        compiled: &Compiled,
        from: &str,
        to: &str,
        protocol: u8,
        port: u16,
    ) -> bool {
        let verdicts: Vec<bool> = self
            .ips(from)
            .into_iter()
            .zip(self.ips(to))
            .map(|(src, dst)| {
                let egress = self.allowed(compiled, from, Direction::Egress, dst, protocol, port);
                let ingress = self.allowed(compiled, to, Direction::Ingress, src, protocol, port);
                egress && ingress
            })
            .collect();
        assert!(
            verdicts.windows(2).all(|w| w[0] == w[1]),
            "{from} -> {to}: IPv4 and IPv6 differ"
        );
        verdicts[0]
    }

    /// Checks every ordered pair of distinct pods against `expected(from, to)`.
    pub fn expect_matrix(&self, protocol: u8, port: u16, expected: impl Fn(&str, &str) -> bool) {
        let compiled = self.compile();
        let mut wrong = Vec::new();
        for from in self.pod_names() {
            for to in self.pod_names() {
                if from == to {
                    continue; // loopback is not probed upstream either
                }
                let got = self.reach(&compiled, &from, &to, protocol, port);
                if got != expected(&from, &to) {
                    wrong.push(format!("{from} -> {to}: got {got}"));
                }
            }
        }
        assert!(
            wrong.is_empty(),
            "proto {protocol} port {port}:\n{}",
            wrong.join("\n")
        );
    }
}

/// `ns` of a pod name `ns/name`.
pub fn ns_of(pod: &str) -> &str {
    pod.split_once('/').map_or(pod, |(ns, _)| ns)
}

/// The protocol number of `TCP`, `UDP` or `SCTP`.
pub fn ports_protocol(name: &str) -> u8 {
    netseg_policy::protocol_number(name).expect("known protocol")
}

/// The server `x/s` of [`pair`] (10.0.0.1, fd00::1), naming `ports`.
pub fn pair_server(ports: &[(&str, i32, &str)]) -> Pod {
    let server = pod(
        "x",
        "s",
        json!({"app": "server"}),
        NODE,
        &["10.0.0.1", "fd00::1"],
    );
    with_ports(server, ports)
}

/// Server `x/s` (10.0.0.1, fd00::1) and client `x/c` (10.0.0.2, fd00::2) on this node.
pub fn pair(default_action: DefaultAction) -> Cluster {
    let mut c = Cluster::new(default_action);
    let server = pair_server(&[("http", 8080, "TCP"), ("dns", 53, "UDP")]);
    c.snapshot.pods.push(server.into());
    c.snapshot.pods.push(
        pod(
            "x",
            "c",
            json!({"app": "client"}),
            NODE,
            &["10.0.0.2", "fd00::2"],
        )
        .into(),
    );
    c
}
