//! Writes through the real kube client: create, replace with optimistic concurrency, and
//! status patches that leave the spec and its generation alone.

mod common;

use common::client;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube::{Api, Error};
use netseg_fake_apiserver::FakeApiServer;
use serde_json::json;

#[tokio::test]
async fn replacing_a_lease_with_a_stale_resource_version_conflicts() {
    let api = FakeApiServer::start().expect("fake starts");
    let leases: Api<Lease> = Api::namespaced(client(&api), "kube-system");
    let lease: Lease = serde_json::from_value(json!({
        "metadata": {"name": "netseg-status-writer"},
        "spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 15},
    }))
    .expect("a Lease");
    let created = leases
        .create(&PostParams::default(), &lease)
        .await
        .expect("created");
    let first_rv = created
        .metadata
        .resource_version
        .clone()
        .expect("a resourceVersion");
    assert!(created.metadata.uid.is_some() && created.metadata.creation_timestamp.is_some());

    let mut taken = created.clone();
    taken.spec.as_mut().expect("spec").holder_identity = Some("node-2".to_string());
    let replaced = leases
        .replace("netseg-status-writer", &PostParams::default(), &taken)
        .await
        .expect("replaced");
    assert_ne!(
        replaced.metadata.resource_version.as_deref(),
        Some(first_rv.as_str())
    );

    let mut stale = created;
    stale.spec.as_mut().expect("spec").holder_identity = Some("node-3".to_string());
    match leases
        .replace("netseg-status-writer", &PostParams::default(), &stale)
        .await
    {
        Err(Error::Api(status)) => {
            assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"))
        }
        other => panic!("expected 409 Conflict for a stale resourceVersion, got {other:?}"),
    }
    let stored = api
        .get(
            "coordination.k8s.io/v1",
            "Lease",
            Some("kube-system"),
            "netseg-status-writer",
        )
        .expect("the lease is stored");
    assert_eq!(
        stored["spec"]["holderIdentity"], "node-2",
        "the stale write changed nothing"
    );
}

#[tokio::test]
async fn status_patches_change_status_but_not_generation() {
    let api = FakeApiServer::start().expect("fake starts");
    api.apply(json!({
        "apiVersion": "netseg.dev/v1alpha1",
        "kind": "Segment",
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}},
    }))
    .expect("segment stored");
    let gvk = GroupVersionKind::gvk("netseg.dev", "v1alpha1", "Segment");
    let segments: Api<DynamicObject> = Api::all_with(
        client(&api),
        &ApiResource::from_gvk_with_plural(&gvk, "segments"),
    );

    let ready = json!({"status": {"conditions": [{"type": "Accepted", "status": "True"}]}});
    let patched = segments
        .patch_status("web", &PatchParams::default(), &Patch::Merge(&ready))
        .await
        .expect("status merge-patched");
    assert_eq!(patched.data["status"]["conditions"][0]["type"], "Accepted");
    assert_eq!(patched.metadata.generation, Some(1));

    let applied = json!({
        "apiVersion": "netseg.dev/v1alpha1", "kind": "Segment", "metadata": {"name": "web"},
        "status": {"observedGeneration": 1},
    });
    segments
        .patch_status(
            "web",
            &PatchParams::apply("netseg"),
            &Patch::Apply(&applied),
        )
        .await
        .expect("status applied");
    let spec_change = json!({"spec": {"selector": {"app": "web2"}}});
    let respecced = segments
        .patch("web", &PatchParams::default(), &Patch::Merge(&spec_change))
        .await
        .expect("spec merge-patched");
    assert_eq!(respecced.metadata.generation, Some(2));

    let stored = api
        .get("netseg.dev/v1alpha1", "Segment", None, "web")
        .expect("stored");
    assert_eq!(
        stored["status"]["conditions"][0]["status"], "True",
        "{stored}"
    );
    assert_eq!(stored["status"]["observedGeneration"], 1, "{stored}");
    assert_eq!(stored["spec"]["selector"]["app"], "web2", "{stored}");
}
