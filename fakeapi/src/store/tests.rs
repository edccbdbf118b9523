use serde_json::json;

use super::*;
use crate::resources::by_kind;

fn segment(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "netseg.dev/v1alpha1", "kind": "Segment", "metadata": {"name": name}, "spec": spec})
}

fn segments() -> &'static Resource {
    by_kind("netseg.dev/v1alpha1", "Segment").expect("segments are served")
}

#[test]
fn create_sets_identity_and_drops_status_of_a_status_subresource_kind() {
    let mut store = Store::new();
    let mut object = segment("a", json!({"x": 1}));
    object["status"] = json!({"conditions": []});
    let created = store.create(segments(), object).expect("created");
    assert_eq!(created["metadata"]["generation"], 1);
    assert_eq!(created["metadata"]["resourceVersion"], "2");
    assert!(
        created["metadata"]["uid"]
            .as_str()
            .is_some_and(|u| u.len() == 36)
    );
    assert!(
        created.get("status").is_none(),
        "status ignored on create: {created}"
    );
    let again = store
        .create(segments(), segment("a", json!({})))
        .expect_err("exists");
    assert_eq!((again.code, again.reason), (409, "AlreadyExists"));
}

#[test]
fn generation_follows_spec_changes_and_status_writes_keep_the_spec() {
    let mut store = Store::new();
    store
        .create(segments(), segment("a", json!({"x": 1})))
        .expect("created");
    let mut with_status = segment("a", json!({"x": 999}));
    with_status["status"] = json!({"ready": true});
    let after_status = store
        .update(segments(), with_status, Part::Status)
        .expect("status written");
    assert_eq!(after_status["status"]["ready"], true);
    assert_eq!(
        after_status["spec"]["x"], 1,
        "a status write leaves the spec alone"
    );
    assert_eq!(after_status["metadata"]["generation"], 1);
    let after_spec = store
        .update(segments(), segment("a", json!({"x": 2})), Part::Main)
        .expect("spec written");
    assert_eq!(after_spec["metadata"]["generation"], 2);
    assert_eq!(
        after_spec["status"]["ready"], true,
        "a main write keeps the status"
    );
    let unchanged = store
        .update(segments(), segment("a", json!({"x": 2})), Part::Main)
        .expect("no-op write");
    assert_eq!(
        unchanged["metadata"]["resourceVersion"],
        after_spec["metadata"]["resourceVersion"]
    );
}

#[test]
fn stale_resource_version_conflicts_and_malformed_objects_are_refused() {
    let mut store = Store::new();
    store
        .create(segments(), segment("a", json!({})))
        .expect("created");
    let mut stale = segment("a", json!({"x": 1}));
    stale["metadata"]["resourceVersion"] = json!("1");
    let err = store
        .update(segments(), stale, Part::Main)
        .expect_err("stale");
    assert_eq!((err.code, err.reason), (409, "Conflict"));
    for malformed in [
        json!([1]),
        json!({"metadata": "a"}),
        json!({"metadata": {}}),
    ] {
        assert!(
            store.create(segments(), malformed.clone()).is_err(),
            "{malformed}"
        );
    }
}

#[test]
fn history_replays_changes_after_a_resource_version_until_compacted() {
    let mut store = Store::new();
    store
        .create(segments(), segment("a", json!({})))
        .expect("created");
    let key = (String::new(), "a".to_string());
    store.delete(segments(), &key, None, None).expect("deleted");
    let types: Vec<_> = store
        .history_since(1, segments())
        .map(|e| (e.rv, e.event_type))
        .collect();
    assert_eq!(types, [(2, EventType::Added), (3, EventType::Deleted)]);
    store.compact();
    assert!(!store.can_resume_from(2));
    assert!(store.can_resume_from(3));
    store.rewind();
    assert_eq!(store.resource_version(), 1);
    assert!(
        !store.can_resume_from(3),
        "a resourceVersion from before the rewind is unknown"
    );
}
