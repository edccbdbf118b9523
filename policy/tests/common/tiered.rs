//! Reading verdicts back from compiled maps, and builders for the cluster
//! policy kinds.

use netseg_contract::{PolicyValue, VERDICT_ALLOW, VERDICT_DENY, rule};
use netseg_crd::{ClusterNetworkPolicy, Segment, SegmentPolicy};
use netseg_policy::{Compiled, Decider, Verdict};
use serde_json::{Value, json};

use super::Cluster;

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
