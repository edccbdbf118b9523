use serde_json::json;

use super::conditions;
use crate::Snapshot;
use crate::fixtures::{cnp, segment, segment_policy, zones};

/// `Kind name: Type=Status Reason: message` per condition.
fn lines(snapshot: &Snapshot) -> Vec<String> {
    conditions(snapshot)
        .into_iter()
        .flat_map(|(object, conditions)| {
            conditions
                .into_iter()
                .map(move |condition| format!("{object}: {condition}"))
        })
        .collect()
}

#[test]
fn valid_objects_are_accepted_and_resolved() {
    let snapshot = Snapshot {
        segments: zones(),
        segment_policies: vec![segment_policy(
            "front-to-data",
            json!({"tier": "Admin", "priority": 10, "subject": {"segments": ["data"]},
                   "ingress": [{"action": "Accept", "from": [{"segments": ["front"]}]}]}),
        )],
        cluster_network_policies: vec![cnp(
            "baseline-deny",
            json!({"tier": "Baseline", "priority": 0, "subject": {"namespaces": {}},
                   "ingress": [{"action": "Deny", "from": [{"namespaces": {}}]}]}),
        )],
        ..Snapshot::default()
    };
    assert_eq!(
        lines(&snapshot),
        [
            "ClusterNetworkPolicy baseline-deny: netseg.dev/Accepted=True Valid",
            "SegmentPolicy front-to-data: Accepted=True Valid",
            "SegmentPolicy front-to-data: ResolvedRefs=True Resolved",
            "Segment data: Accepted=True Valid",
            "Segment front: Accepted=True Valid",
        ]
    );
}

#[test]
fn invalid_objects_are_not_accepted_and_say_why() {
    let snapshot = Snapshot {
        segments: vec![segment("empty", json!({"members": []}))],
        cluster_network_policies: vec![cnp(
            "too-late",
            json!({"tier": "Admin", "priority": 2000, "subject": {"namespaces": {}}}),
        )],
        ..Snapshot::default()
    };
    assert_eq!(
        lines(&snapshot),
        [
            "ClusterNetworkPolicy too-late: netseg.dev/Accepted=False Invalid: spec.priority: \
             invalid value \"2000\": must be between 0 and 1000, inclusive",
            "Segment empty: Accepted=False Invalid: spec.members: invalid value \"0\": must have \
             at least 1 item(s)",
        ]
    );
}

#[test]
fn unknown_or_invalid_segments_leave_refs_unresolved() {
    let mut segments = zones();
    segments.push(segment("empty", json!({"members": []})));
    let snapshot = Snapshot {
        segments,
        segment_policies: vec![segment_policy(
            "to-billing",
            json!({"tier": "Admin", "priority": 10, "subject": {"segments": ["billing", "data"]},
                   "egress": [{"action": "Deny", "to": [{"segments": ["front", "empty"]}]}]}),
        )],
        ..Snapshot::default()
    };
    let found = lines(&snapshot);
    assert_eq!(
        found[..2],
        [
            "SegmentPolicy to-billing: Accepted=True Valid",
            "SegmentPolicy to-billing: ResolvedRefs=False UnknownSegment: Segments that do not \
             exist or are invalid: \"billing\" (spec.subject.segments[0]), \"empty\" \
             (spec.egress[0].to[0].segments[1]); rules naming them fail closed, subjects select \
             no pods through them",
        ]
    );
}

#[test]
fn a_rule_that_fails_closed_leaves_the_object_accepted_and_says_so() {
    let snapshot = Snapshot {
        cluster_network_policies: vec![cnp(
            "no-dns-egress",
            json!({"tier": "Admin", "priority": 1, "subject": {"namespaces": {}},
            "egress": [
                {"action": "Accept", "to": [{"namespaces": {}}]},
                {"action": "Pass", "to": [{"domainNames": ["*.example.com"]}]},
            ]}),
        )],
        segment_policies: vec![segment_policy(
            "newer-protocol",
            json!({"tier": "Baseline", "priority": 1, "subject": {"segments": ["front"]},
                   "ingress": [{"action": "Accept", "from": [{"namespaces": {}}],
                                "protocols": [{}]}]}),
        )],
        segments: zones(),
        ..Snapshot::default()
    };
    assert_eq!(
        lines(&snapshot)[..3],
        [
            "ClusterNetworkPolicy no-dns-egress: netseg.dev/Accepted=True FailsClosed: \
             spec.egress[1].to[0]: domainNames peers are not implemented (the rule fails closed: \
             this Pass rule becomes Deny and denies all egress traffic of the policy's subjects)",
            "SegmentPolicy newer-protocol: Accepted=True FailsClosed: spec.ingress[0].protocols[0]: \
             sets no protocol field netseg knows (the rule fails closed: this Accept rule matches \
             nothing)",
            "SegmentPolicy newer-protocol: ResolvedRefs=True Resolved",
        ]
    );
}
