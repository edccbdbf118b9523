//! Findings about valid objects that are not field errors: what only the
//! objects together, or their meaning, can tell. Each is enforced as
//! written; a warning says where it may not do what its author meant.

mod overlap;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::fmt;

use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};

use crate::Snapshot;
use crate::compile::{Inventory, Models};
use crate::model::{Errors, Subject, TieredPolicy, TieredRule, parse_segment};
use crate::types::{Action, Direction, PolicyKind};

/// One finding about one object.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Warning {
    /// ClusterNetworkPolicy, SegmentPolicy or Segment.
    pub kind: PolicyKind,
    pub name: String,
    /// The path of the field the finding is about (`spec.egress[0].to[1]`).
    pub field: String,
    pub message: String,
    /// Whether enforcement departs from what the object says: a rule that
    /// fails closed, a subject Segment that does not exist. The daemon
    /// reports these among its problems; the rest are advice for `check`.
    pub enforced_otherwise: bool,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}: {}",
            self.kind, self.name, self.field, self.message
        )
    }
}

/// Every warning about the valid ClusterNetworkPolicies, SegmentPolicies
/// and Segments of `snapshot` (invalid objects have field errors instead;
/// see [`crate::validate_cluster_network_policy`] and friends):
///
/// - a rule that fails closed (a peer netseg does not implement:
///   `domainNames`; a peer or protocol entry that sets no field
///   netseg knows; a peer naming a Segment that does not exist or is
///   invalid), saying what the rule becomes;
/// - a SegmentPolicy subject naming such a Segment;
/// - rules of different policies at equal tier and priority whose actions
///   differ and that may match the same traffic (see `overlap` for how
///   "may" is approximated), naming the order netseg applies;
/// - a Segment `networks` member covering pod addresses of the snapshot.
///
/// Sorted by object kind, name, field.
pub fn warnings(snapshot: &Snapshot) -> Vec<Warning> {
    found(snapshot, &mut Models::default())
}

/// [`warnings`], with the objects modelled by `models` (a compiler's, so
/// that only the objects it has not seen are parsed).
pub(crate) fn found(snapshot: &Snapshot, models: &mut Models) -> Vec<Warning> {
    // Every warning is about one of these. Without them, skip modelling
    // the pods (docs/benchmarks.md, "The memory after the sync").
    if snapshot.cluster_network_policies.is_empty()
        && snapshot.segment_policies.is_empty()
        && snapshot.segments.is_empty()
    {
        return Vec::new();
    }
    let inv = Inventory::build(snapshot, models);
    let segments: BTreeSet<&str> = inv.segments.iter().map(|s| s.name.as_str()).collect();
    let mut out = Vec::new();
    for policy in &inv.tiered {
        fail_closed_rules(policy, &segments, &mut out);
        unknown_subject_segments(policy, &segments, &mut out);
    }
    overlap::equal_priority_conflicts(&inv, &mut out);
    segment_networks_covering_pods(snapshot, &inv, &mut out);
    out.sort();
    out
}

fn fail_closed_rules(policy: &TieredPolicy, segments: &BTreeSet<&str>, out: &mut Vec<Warning>) {
    for direction in Direction::BOTH {
        for rule in policy.rules(direction) {
            for reason in rule.fail_closed_reasons(|name| segments.contains(name)) {
                out.push(Warning {
                    kind: policy.kind,
                    name: policy.name.clone(),
                    field: reason.field,
                    message: format!(
                        "{}: {}{}",
                        reason.reason,
                        fail_closed_effect(rule, direction),
                        audit_note(policy)
                    ),
                    enforced_otherwise: true,
                });
            }
        }
    }
}

/// What a rule that fails closed does instead.
pub(crate) fn fail_closed_effect(rule: &TieredRule, direction: Direction) -> String {
    match rule.action {
        Action::Accept => "the rule fails closed: this Accept rule matches nothing".to_string(),
        Action::Deny => format!(
            "the rule fails closed: this Deny rule denies all {direction} traffic of the policy's subjects"
        ),
        Action::Pass => format!(
            "the rule fails closed: this Pass rule becomes Deny and denies all {direction} traffic of the policy's subjects"
        ),
    }
}

fn audit_note(policy: &TieredPolicy) -> &'static str {
    if policy.audit {
        " (mode Audit: in the audit verdict only)"
    } else {
        ""
    }
}

fn unknown_subject_segments(
    policy: &TieredPolicy,
    segments: &BTreeSet<&str>,
    out: &mut Vec<Warning>,
) {
    let Subject::Segments(names) = &policy.subject else {
        return;
    };
    let none_known = names.iter().all(|name| !segments.contains(name.as_str()));
    for (i, name) in names.iter().enumerate() {
        if segments.contains(name.as_str()) {
            continue;
        }
        let effect = if none_known {
            "the policy applies to no pod"
        } else {
            "the policy selects no pods through it"
        };
        out.push(Warning {
            kind: policy.kind,
            name: policy.name.clone(),
            field: format!("spec.subject.segments[{i}]"),
            message: format!("Segment {name:?} does not exist or is invalid: {effect}"),
            enforced_otherwise: true,
        });
    }
}

/// Pods are Segment members by selector only: a `networks` member that
/// covers pod addresses does not make those pods members.
fn segment_networks_covering_pods(snapshot: &Snapshot, inv: &Inventory, out: &mut Vec<Warning>) {
    let pod_addresses: Vec<(std::net::IpAddr, String)> = inv
        .pods
        .iter()
        .flat_map(|pod| pod.ips.iter().map(|ip| (*ip, pod.pod_ref.to_string())))
        .collect();
    for segment in &snapshot.segments {
        if parse_segment(segment, &mut Errors::default()).is_none() {
            continue;
        }
        let name = segment.metadata.name.clone().unwrap_or_default();
        for (i, member) in segment.spec.members.iter().enumerate() {
            for (j, text) in member.networks.iter().flatten().enumerate() {
                let Ok(network) = text.parse::<IpNetwork>() else {
                    continue;
                };
                let covered: Vec<String> = pod_addresses
                    .iter()
                    .filter(|(ip, _)| network.contains(*ip))
                    .map(|(ip, pod)| format!("{pod} ({ip})"))
                    .collect();
                if covered.is_empty() {
                    continue;
                }
                out.push(Warning {
                    kind: PolicyKind::Segment,
                    name: name.clone(),
                    field: format!("spec.members[{i}].networks[{j}]"),
                    message: covering_message(text, &covered),
                    enforced_otherwise: false,
                });
            }
        }
    }
}

fn covering_message(network: &str, covered: &[String]) -> String {
    const SHOWN: usize = 3;
    let mut pods = covered[..covered.len().min(SHOWN)].join(", ");
    if covered.len() > SHOWN {
        pods.push_str(&format!(" and {} more", covered.len() - SHOWN));
    }
    format!(
        "{network} covers the addresses of {} pod(s): {pods}; they are not members through it \
         (networks members are non-pod addresses; pods join a Segment by selector only)",
        covered.len()
    )
}
