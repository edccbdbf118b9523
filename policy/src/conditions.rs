//! The status conditions netseg reports on its cluster-scoped objects,
//! computed from a snapshot. Writing them to the API server is the
//! writer's job, which also sets what a pure function cannot:
//! `lastTransitionTime` (now when the status changed, else kept) and
//! `observedGeneration` (the `metadata.generation` of the object read).
//!
//! | kind | type | status / reason |
//! |---|---|---|
//! | Segment | `Accepted` | True `Valid`; False `Invalid` (message: the field errors) |
//! | SegmentPolicy | `Accepted` | True `Valid`; True `FailsClosed` (message: the rules that fail closed and what they become); False `Invalid` |
//! | SegmentPolicy | `ResolvedRefs` | True `Resolved`; False `UnknownSegment` (message: the Segment names that resolve to no valid Segment, with their fields) |
//! | ClusterNetworkPolicy | `netseg.dev/Accepted` | as `Accepted` of a SegmentPolicy |
//!
//! A rule that fails closed still leaves its object accepted (status True):
//! the object is enforced, the rule the safe way (an Accept rule matches
//! nothing, a Deny or Pass rule denies everything), and the reason says so.
//! ClusterNetworkPolicy is an upstream kind whose status other
//! implementations may write too, hence netseg's own domain in the type.
//! Unknown Segment names in a SegmentPolicy's rules make those rules fail
//! closed too, but are reported by `ResolvedRefs` only, as in Gateway API.

use std::collections::BTreeSet;
use std::fmt;

use netseg_crd::{ClusterNetworkPolicy, Segment, SegmentPolicy, SegmentPolicyPeer};
use serde::{Deserialize, Serialize};

use crate::Snapshot;
use crate::model::{
    Errors, TieredPolicy, parse_cluster_network_policy, parse_segment, parse_segment_policy,
};
use crate::types::{Direction, PolicyKind};
use crate::warnings::fail_closed_effect;

/// The condition type of Segments and SegmentPolicies that says whether
/// netseg enforces the object.
pub const ACCEPTED: &str = "Accepted";
/// The condition type of SegmentPolicies that says whether every Segment
/// name resolves.
pub const RESOLVED_REFS: &str = "ResolvedRefs";
/// [`ACCEPTED`] on ClusterNetworkPolicies, in netseg's domain.
pub const CLUSTER_NETWORK_POLICY_ACCEPTED: &str = "netseg.dev/Accepted";

/// A cluster-scoped object by kind and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ObjectRef {
    pub kind: PolicyKind,
    pub name: String,
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind, self.name)
    }
}

/// One status condition (see the module docs for what its writer adds).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Condition {
    pub type_: &'static str,
    pub status: bool,
    /// CamelCase, as the API requires.
    pub reason: &'static str,
    pub message: String,
}

impl Condition {
    fn new(type_: &'static str, status: bool, reason: &'static str, message: String) -> Self {
        Condition {
            type_,
            status,
            reason,
            message,
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = if self.status { "True" } else { "False" };
        write!(f, "{}={status} {}", self.type_, self.reason)?;
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        Ok(())
    }
}

/// The conditions of every ClusterNetworkPolicy, Segment and SegmentPolicy
/// of `snapshot`, invalid ones included, sorted by kind and name.
pub fn conditions(snapshot: &Snapshot) -> Vec<(ObjectRef, Vec<Condition>)> {
    let valid_segments: BTreeSet<String> = snapshot
        .segments
        .iter()
        .filter_map(|s| parse_segment(s, &mut Errors::default()))
        .map(|s| s.name)
        .collect();
    let cnps = snapshot.cluster_network_policies.iter().map(|p| {
        let object = object_ref(PolicyKind::ClusterNetworkPolicy, &p.metadata.name);
        (object, vec![cluster_network_policy_accepted(p)])
    });
    let segments = snapshot.segments.iter().map(|s| {
        let object = object_ref(PolicyKind::Segment, &s.metadata.name);
        (object, vec![segment_accepted(s)])
    });
    let segment_policies = snapshot.segment_policies.iter().map(|p| {
        let object = object_ref(PolicyKind::SegmentPolicy, &p.metadata.name);
        let conditions = vec![
            segment_policy_accepted(p),
            resolved_refs(p, &valid_segments),
        ];
        (object, conditions)
    });
    let mut all: Vec<_> = cnps.chain(segments).chain(segment_policies).collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

fn object_ref(kind: PolicyKind, name: &Option<String>) -> ObjectRef {
    ObjectRef {
        kind,
        name: name.clone().unwrap_or_default(),
    }
}

fn cluster_network_policy_accepted(policy: &ClusterNetworkPolicy) -> Condition {
    let mut errs = Errors::default();
    let model = parse_cluster_network_policy(policy, &mut errs);
    accepted(CLUSTER_NETWORK_POLICY_ACCEPTED, model.as_ref(), errs)
}

fn segment_policy_accepted(policy: &SegmentPolicy) -> Condition {
    let mut errs = Errors::default();
    let model = parse_segment_policy(policy, &mut errs);
    accepted(ACCEPTED, model.as_ref(), errs)
}

fn segment_accepted(segment: &Segment) -> Condition {
    let mut errs = Errors::default();
    match parse_segment(segment, &mut errs) {
        Some(_) => Condition::new(ACCEPTED, true, "Valid", String::new()),
        None => invalid(ACCEPTED, errs),
    }
}

fn accepted(type_: &'static str, model: Option<&TieredPolicy>, errs: Errors) -> Condition {
    let Some(policy) = model else {
        return invalid(type_, errs);
    };
    let failing: Vec<String> = Direction::BOTH
        .into_iter()
        .flat_map(|direction| {
            policy.rules(direction).iter().flat_map(move |rule| {
                rule.fails_closed
                    .iter()
                    .map(move |why| format!("{why} ({})", fail_closed_effect(rule, direction)))
            })
        })
        .collect();
    if failing.is_empty() {
        Condition::new(type_, true, "Valid", String::new())
    } else {
        Condition::new(type_, true, "FailsClosed", failing.join("; "))
    }
}

fn invalid(type_: &'static str, errs: Errors) -> Condition {
    let errors: Vec<String> = errs.0.iter().map(ToString::to_string).collect();
    Condition::new(type_, false, "Invalid", errors.join("; "))
}

/// Every Segment name the policy writes, with its field.
fn segment_names(policy: &SegmentPolicy) -> Vec<(&str, String)> {
    let spec = &policy.spec;
    let mut names: Vec<(&str, String)> = spec
        .subject
        .segments
        .iter()
        .enumerate()
        .map(|(i, name)| (name.as_str(), format!("spec.subject.segments[{i}]")))
        .collect();
    let ingress: Vec<&[SegmentPolicyPeer]> = spec.ingress.iter().map(|r| &r.from[..]).collect();
    let egress: Vec<&[SegmentPolicyPeer]> = spec.egress.iter().map(|r| &r.to[..]).collect();
    for (direction, field, rules) in [("ingress", "from", ingress), ("egress", "to", egress)] {
        for (i, peers) in rules.iter().enumerate() {
            for (j, peer) in peers.iter().enumerate() {
                for (k, name) in peer.segments.iter().flatten().enumerate() {
                    let at = format!("spec.{direction}[{i}].{field}[{j}].segments[{k}]");
                    names.push((name.as_str(), at));
                }
            }
        }
    }
    names
}

fn resolved_refs(policy: &SegmentPolicy, valid: &BTreeSet<String>) -> Condition {
    let unknown: Vec<String> = segment_names(policy)
        .into_iter()
        .filter(|(name, _)| !valid.contains(*name))
        .map(|(name, field)| format!("{name:?} ({field})"))
        .collect();
    if unknown.is_empty() {
        return Condition::new(RESOLVED_REFS, true, "Resolved", String::new());
    }
    let message = format!(
        "Segments that do not exist or are invalid: {}; rules naming them fail closed, \
         subjects select no pods through them",
        unknown.join(", ")
    );
    Condition::new(RESOLVED_REFS, false, "UnknownSegment", message)
}

#[cfg(test)]
mod tests;
