//! Scripted watch histories in, objects in force out: no client, no server;
//! then the real kube client against the fake API server.

pub(crate) mod fake_api;
mod trimmed;

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use kube::api::DynamicObject;
use serde_json::json;

use super::judge;
use super::slim::SlimPod;
use super::state::{Judged, KindState};
use crate::sources::object::{Object, ObjectId, ObjectKind};

fn pod_json(name: &str, ip: &str, app: &str) -> serde_json::Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "shop", "uid": format!("uid-{name}-{ip}"),
            "labels": {"app": app}, "annotations": {"big": "x".repeat(1000)},
            "managedFields": [{"manager": "kubelet", "operation": "Update"}],
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "Node", "name": "node-1", "uid": "n"},
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("{app}-5d4f8c9b7"),
                 "uid": format!("rs-{ip}"), "controller": true, "blockOwnerDeletion": true}]},
        "spec": {"nodeName": "node-1", "containers": [{"name": "web", "image": "nginx",
            "ports": [{"name": "http", "containerPort": 80}, {"containerPort": 9090}],
            "env": [{"name": "A", "value": "b"}]}]},
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
            "conditions": [{"type": "Ready", "status": "True"}]}
    })
}

fn pod(name: &str, ip: &str, app: &str) -> (ObjectId, Judged) {
    let slim: SlimPod = serde_json::from_value(pod_json(name, ip, app)).expect("a pod");
    let id = pod_id(name);
    let judged = judge::pod(&id, slim);
    (id, judged)
}

fn pod_id(name: &str) -> ObjectId {
    ObjectId {
        kind: ObjectKind::Pod,
        namespace: Some("shop".into()),
        name: name.into(),
    }
}

fn stored_pod(state: &KindState, name: &str) -> Arc<Pod> {
    match state.current().objects.get(&pod_id(name)) {
        Some(Object::Pod(pod)) => pod.clone(),
        other => panic!("no pod {name}: {other:?}"),
    }
}

fn listed(objects: Vec<(ObjectId, Judged)>) -> KindState {
    let mut state = KindState::default();
    state.init();
    for (id, judged) in objects {
        state.init_apply(id, judged);
    }
    state.init_done();
    state
}

#[test]
fn a_pod_keeps_only_what_policies_read() {
    let state = listed(vec![pod("a", "10.0.0.1", "web")]);
    let pod = stored_pod(&state, "a");
    assert!(pod.metadata.annotations.is_none());
    assert!(pod.metadata.managed_fields.is_none());
    let spec = pod.spec.as_ref().expect("spec");
    assert_eq!(spec.node_name.as_deref(), Some("node-1"));
    let ports = spec.containers[0].ports.as_ref().expect("ports");
    assert_eq!(ports.len(), 1, "only named ports are kept");
    assert!(spec.containers[0].env.is_none());
    let status = pod.status.as_ref().expect("status");
    assert!(status.conditions.is_none());
    assert_eq!(status.pod_ips.as_ref().expect("podIPs")[0].ip, "10.0.0.1");
    let owners = pod
        .metadata
        .owner_references
        .as_ref()
        .expect("the controller");
    let kept: Vec<_> = owners
        .iter()
        .map(|o| {
            (
                o.kind.as_str(),
                o.name.as_str(),
                o.controller,
                o.uid.as_str(),
            )
        })
        .collect();
    assert_eq!(
        kept,
        [("ReplicaSet", "web-5d4f8c9b7", Some(true), "")],
        "only the controller, by kind and name"
    );
}

#[test]
fn a_pod_is_named_by_its_workload_as_in_manifests() {
    let with_hash = |mut pod: serde_json::Value| {
        pod["metadata"]["labels"]["pod-template-hash"] = json!("5d4f8c9b7");
        pod
    };
    let from_api: SlimPod =
        serde_json::from_value(with_hash(pod_json("a", "10.0.0.1", "web"))).expect("a pod");
    let from_manifest: Pod =
        serde_json::from_value(with_hash(pod_json("a", "10.0.0.1", "web"))).expect("a pod");
    let snapshot = |pod: Pod| netseg_policy::Snapshot {
        pods: vec![Arc::new(pod)],
        ..Default::default()
    };
    let options = netseg_policy::CompileOptions::default();
    let workload = |pod: Pod| {
        let compiled = netseg_policy::Compiler::new().compile(&snapshot(pod), &options);
        let party = compiled
            .pod_addresses
            .values()
            .next()
            .expect("the pod's address");
        party.workload.as_ref().map(ToString::to_string)
    };
    assert_eq!(
        workload(from_api.into_pod()).as_deref(),
        Some("Deployment/web")
    );
    assert_eq!(workload(from_manifest).as_deref(), Some("Deployment/web"));
}

#[test]
fn an_unchanged_object_keeps_its_identity_across_updates_and_relists() {
    let mut state = listed(vec![pod("a", "10.0.0.1", "web")]);
    let before = stored_pod(&state, "a");
    // A status-only update (conditions) trims to the same object.
    let (id, judged) = pod("a", "10.0.0.1", "web");
    assert!(
        !state.apply(id, judged),
        "nothing the compiler reads changed"
    );
    assert!(Arc::ptr_eq(&before, &stored_pod(&state, "a")));
    state.init();
    let (id, judged) = pod("a", "10.0.0.1", "web");
    state.init_apply(id, judged);
    assert!(
        !state.init_done(),
        "a relist of the same objects changes nothing"
    );
    assert!(Arc::ptr_eq(&before, &stored_pod(&state, "a")));
}

#[test]
fn a_relist_replaces_the_kind_only_when_it_completes() {
    let mut state = listed(vec![
        pod("a", "10.0.0.1", "web"),
        pod("b", "10.0.0.2", "db"),
    ]);
    state.init();
    let (id, judged) = pod("a", "10.0.0.1", "web");
    state.init_apply(id, judged);
    assert_eq!(
        state.current().objects.len(),
        2,
        "a relist in progress leaves everything in force"
    );
    assert!(
        state.init_done(),
        "b, deleted during the gap, goes at the end"
    );
    assert_eq!(state.current().objects.len(), 1);
    assert!(state.current().objects.contains_key(&pod_id("a")));
}

#[test]
fn a_refused_update_keeps_the_last_good_version_and_a_delete_removes_both() {
    let mut state = listed(vec![pod("a", "10.0.0.1", "web")]);
    let (id, judged) = pod("a", "not-an-ip", "web");
    assert!(matches!(judged, Judged::Refused { .. }));
    assert!(!state.apply(id.clone(), judged));
    let kept = stored_pod(&state, "a");
    assert_eq!(
        kept.status.as_ref().unwrap().pod_ip.as_deref(),
        Some("10.0.0.1")
    );
    let refusal = &state.current().refused[&id];
    assert_eq!(
        refusal.problems[0].to_string(),
        "Pod shop/a: status.podIPs[0].ip: invalid value \"not-an-ip\": must be a valid IP address"
    );
    assert!(state.delete(&id));
    assert!(state.current().objects.is_empty());
    assert!(state.current().refused.is_empty());
}

#[test]
fn a_new_object_that_is_refused_is_not_enforced() {
    let state = listed(vec![pod("a", "not-an-ip", "web")]);
    assert!(state.current().objects.is_empty());
    assert_eq!(state.current().refused.len(), 1);
}

fn segment_policy(spec: serde_json::Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "netseg.dev/v1alpha1", "kind": "SegmentPolicy",
        "metadata": {"name": "web-to-db", "generation": 3, "resourceVersion": "7",
            "managedFields": [{"manager": "kubectl", "operation": "Apply"}]},
        "spec": spec,
        "status": {"conditions": [{"type": "Accepted", "status": "True", "reason": "Valid",
            "message": "", "lastTransitionTime": "2026-11-30T00:00:00Z"}]}
    }))
    .expect("a dynamic object")
}

fn segment_policy_id() -> ObjectId {
    ObjectId {
        kind: ObjectKind::SegmentPolicy,
        namespace: None,
        name: "web-to-db".into(),
    }
}

#[test]
fn custom_objects_are_judged_as_strictly_as_manifests() {
    let valid = segment_policy(json!({
        "tier": "Admin", "priority": 10, "subject": {"segments": ["db"]},
        "ingress": [{"name": "web", "action": "Accept", "from": [{"segments": ["web"]}]}]
    }));
    let judged = judge::custom(&segment_policy_id(), valid);
    assert!(
        matches!(judged, Judged::Valid(Object::SegmentPolicy(_))),
        "{judged:?}"
    );

    let misspelt = segment_policy(json!({
        "tier": "Admin", "priority": 10, "subject": {"segmentz": ["db"]},
        "ingress": []
    }));
    let Judged::Refused { problems, .. } = judge::custom(&segment_policy_id(), misspelt) else {
        panic!("a misspelt field is refused");
    };
    let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("SegmentPolicy web-to-db: spec.subject")),
        "{lines:?}"
    );
}
