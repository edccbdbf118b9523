use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition as ApiCondition, Time};
use k8s_openapi::jiff::Timestamp;
use netseg_policy::{ACCEPTED, Condition, PolicyKind, RESOLVED_REFS, Snapshot};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::{merged_conditions, object_conditions};
use crate::cluster_status::ClusterInputs;

fn at(time: &str) -> Timestamp {
    time.parse().unwrap()
}

fn object<T: DeserializeOwned>(name: &str, generation: i64, spec: Value) -> Arc<T> {
    let value = json!({"metadata": {"name": name, "uid": format!("uid-{name}"),
                                    "generation": generation}, "spec": spec});
    Arc::new(serde_json::from_value(value).unwrap())
}

fn accepted(status: bool, reason: &'static str, message: &str) -> Condition {
    Condition {
        type_: ACCEPTED,
        status,
        reason,
        message: message.to_owned(),
    }
}

fn on_server(
    type_: &str,
    status: &str,
    reason: &str,
    generation: i64,
    since: &str,
) -> ApiCondition {
    ApiCondition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message: String::new(),
        observed_generation: Some(generation),
        last_transition_time: Time(at(since)),
    }
}

#[test]
fn conditions_the_object_carries_are_not_written_again() {
    let existing = [on_server(
        ACCEPTED,
        "True",
        "Valid",
        3,
        "2026-01-01T00:00:00Z",
    )];
    let computed = [accepted(true, "Valid", "")];
    let now = at("2026-02-01T00:00:00Z");
    assert_eq!(merged_conditions(&existing, &computed, Some(3), now), None);
}

#[test]
fn an_unchanged_status_keeps_its_transition_time_and_takes_the_new_generation() {
    let existing = [on_server(
        ACCEPTED,
        "True",
        "Valid",
        3,
        "2026-01-01T00:00:00Z",
    )];
    let computed = [accepted(
        true,
        "FailsClosed",
        "spec.ingress[0]: unknown protocol",
    )];
    let now = at("2026-02-01T00:00:00Z");
    let merged = merged_conditions(&existing, &computed, Some(4), now).unwrap();
    assert_eq!(merged.len(), 1);
    assert_eq!(merged[0].reason, "FailsClosed");
    assert_eq!(merged[0].message, "spec.ingress[0]: unknown protocol");
    assert_eq!(merged[0].observed_generation, Some(4));
    assert_eq!(
        merged[0].last_transition_time,
        Time(at("2026-01-01T00:00:00Z"))
    );
}

#[test]
fn a_changed_status_transitions_now_and_other_writers_conditions_stay() {
    let theirs = on_server(
        "example.com/Ready",
        "True",
        "Programmed",
        3,
        "2025-12-01T00:00:00Z",
    );
    let existing = [
        theirs.clone(),
        on_server(ACCEPTED, "True", "Valid", 3, "2026-01-01T00:00:00Z"),
    ];
    let computed = [
        accepted(
            false,
            "Invalid",
            "spec.priority: must be between 0 and 1000",
        ),
        Condition {
            type_: RESOLVED_REFS,
            status: true,
            reason: "Resolved",
            message: String::new(),
        },
    ];
    let now = at("2026-02-01T00:00:00Z");
    let merged = merged_conditions(&existing, &computed, Some(4), now).unwrap();
    assert_eq!(merged[0], theirs);
    assert_eq!(
        (merged[1].type_.as_str(), merged[1].status.as_str()),
        (ACCEPTED, "False")
    );
    assert_eq!(merged[1].last_transition_time, Time(now));
    assert_eq!(merged[2].type_, RESOLVED_REFS);
    assert_eq!(merged[2].last_transition_time, Time(now));
    assert_eq!(merged.len(), 3);
}

#[test]
fn a_refused_version_is_reported_in_place_of_the_enforced_one() {
    let members = json!({"members": [{"namespaces": {}}]});
    let good_policy = json!({"tier": "Admin", "priority": 10, "subject": {"segments": ["front"]}});
    let bad_policy = json!({"tier": "Admin", "priority": 5000, "subject": {"segments": ["front"]}});
    let inputs = ClusterInputs {
        enforced: Snapshot {
            segments: vec![object("front", 1, members)],
            segment_policies: vec![object("web", 1, good_policy)],
            ..Snapshot::default()
        },
        invalid: Snapshot {
            segment_policies: vec![object("web", 2, bad_policy)],
            ..Snapshot::default()
        },
        ..ClusterInputs::default()
    };
    let reported = object_conditions(&inputs);
    let summary: Vec<(PolicyKind, &str, Option<i64>, String)> = reported
        .iter()
        .flat_map(|o| {
            o.conditions.iter().map(|c| {
                (
                    o.object.kind,
                    o.object.name.as_str(),
                    o.generation,
                    c.to_string(),
                )
            })
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                PolicyKind::Segment,
                "front",
                Some(1),
                "Accepted=True Valid".to_owned()
            ),
            (
                PolicyKind::SegmentPolicy,
                "web",
                Some(2),
                "Accepted=False Invalid: spec.priority: invalid value \"5000\": must be between \
                 0 and 1000, inclusive"
                    .to_owned()
            ),
            (
                PolicyKind::SegmentPolicy,
                "web",
                Some(2),
                "ResolvedRefs=True Resolved".to_owned()
            ),
        ]
    );
}
