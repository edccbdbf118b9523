//! Reading verdicts back from compiled maps, and builders and a small
//! cluster for the cluster policy kinds.

use netseg_contract::{PolicyValue, VERDICT_ALLOW, VERDICT_DENY, rule};
use netseg_crd::{ClusterNetworkPolicy, Segment, SegmentPolicy};
use netseg_policy::{Compiled, Decider, DefaultAction, Direction, Verdict};
use serde_json::{Value, json};

use super::{Cluster, NODE, ip, namespace, pod, with_ports};

pub const WEB: &str = "10.1.0.1";
pub const DB: &str = "10.2.0.1";
pub const OTHER: &str = "10.3.0.1";

/// Three pods on this node, each alone in a namespace labeled `zone`: web/w
/// (WEB, label app=web), db/d (DB, app=db; container ports pg 5432/TCP and
/// dns 53/UDP) and other/o (OTHER, app=other).
pub fn zones(default_action: DefaultAction) -> Cluster {
    let mut c = Cluster::new(default_action);
    for (ns, addr) in [("web", WEB), ("db", DB), ("other", OTHER)] {
        c.snapshot
            .namespaces
            .push(namespace(ns, json!({"zone": ns})).into());
        let name = &ns[..1];
        let pod = pod(ns, name, json!({"app": ns}), NODE, &[addr]);
        let ports: &[(&str, i32, &str)] = if ns == "db" {
            &[("pg", 5432, "TCP"), ("dns", 53, "UDP")]
        } else {
            &[]
        };
        c.snapshot.pods.push(with_ports(pod, ports).into());
    }
    c
}

/// What a POLICY value found by `lookup` stands for: the verdict its id names
/// (the reserved ids as the contract defines them); `None` when no entry
/// was found (a denial). An error when the value contradicts its verdict
/// or names no verdict.
pub fn compiled_verdict(
    compiled: &Compiled,
    value: Option<PolicyValue>,
) -> Result<Option<Verdict>, String> {
    let Some(value) = value else {
        return Ok(None);
    };
    let reserved = match value.rule {
        rule::DEFAULT_ALLOW => Some(Verdict::plain(true, Decider::Default)),
        rule::DEFAULT_DENY => Some(Verdict::plain(false, Decider::Default)),
        rule::NODE_TRAFFIC => Some(Verdict::plain(true, Decider::NodeTraffic)),
        _ => None,
    };
    let named = compiled.verdicts.get(&value.rule);
    let verdict = match (reserved, named) {
        (Some(reserved), Some(named)) if reserved != *named => {
            return Err(format!(
                "reserved id {} stands for {named}, not {reserved}",
                value.rule
            ));
        }
        (Some(verdict), _) => verdict,
        (None, Some(named)) => named.clone(),
        (None, None) => return Err(format!("verdict id {} is in no map", value.rule)),
    };
    let expected = if verdict.allow {
        VERDICT_ALLOW
    } else {
        VERDICT_DENY
    };
    if value.verdict != expected {
        return Err(format!(
            "value {value:?} carries verdict {} but its id stands for {verdict}",
            value.verdict
        ));
    }
    Ok(Some(verdict))
}

fn named<T: serde::de::DeserializeOwned>(name: &str, spec: Value) -> T {
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec}))
        .expect("test object deserializes")
}

impl Cluster {
    /// The verdict at `endpoint` as text ([`Verdict`]'s display), checked as
    /// [`Cluster::verdict`] checks it; `not an endpoint` without one.
    pub fn says(
        &self,
        compiled: &Compiled,
        endpoint: &str,
        direction: Direction,
        peer: &str,
        protocol: u8,
        port: u16,
    ) -> String {
        self.verdict(compiled, endpoint, direction, ip(peer), protocol, port)
            .map_or_else(|| "not an endpoint".to_string(), |v| v.to_string())
    }

    /// Adds ClusterNetworkPolicy `name` with `spec`.
    pub fn add_cnp(&mut self, name: &str, spec: Value) {
        let policy: ClusterNetworkPolicy = named(name, spec);
        self.snapshot.cluster_network_policies.push(policy.into());
    }

    /// Adds Segment `name` with `spec`.
    pub fn add_segment(&mut self, name: &str, spec: Value) {
        let segment: Segment = named(name, spec);
        self.snapshot.segments.push(segment.into());
    }

    /// Adds SegmentPolicy `name` with `spec`.
    pub fn add_segment_policy(&mut self, name: &str, spec: Value) {
        let policy: SegmentPolicy = named(name, spec);
        self.snapshot.segment_policies.push(policy.into());
    }
}
