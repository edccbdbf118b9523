//! The kube source against the fake API server: what it enforces after
//! lists, live changes, refusals and faults.

use std::time::Duration;

use netseg_fake_apiserver::{FakeApiServer, StreamingLists};
use serde_json::{Value, json};

use crate::sources::Update;
use crate::sources::kube::KubeSource;

pub(crate) const NODE: &str = "node-1";

pub(crate) fn client(api: &FakeApiServer) -> kube::Client {
    let url = api.url().parse().expect("the fake's URL");
    kube::Client::try_from(kube::Config::new(url)).expect("a client")
}

fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

pub(crate) fn pod(name: &str, node: &str, ip: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "shop", "labels": {"app": name}},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "i"}]},
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}
    })
}

fn network_policy(name: &str) -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {"podSelector": {"matchLabels": {"app": "db"}}, "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}]}]}
    })
}

fn segment(name: &str, selector_app: &str) -> Value {
    json!({
        "apiVersion": "netseg.dev/v1alpha1", "kind": "Segment",
        "metadata": {"name": name},
        "spec": {"members": [{"pods": {"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": selector_app}}}}]}
    })
}

fn cluster_network_policy(name: &str) -> Value {
    json!({
        "apiVersion": "policy.networking.k8s.io/v1alpha2", "kind": "ClusterNetworkPolicy",
        "metadata": {"name": name},
        "spec": {"tier": "Admin", "priority": 10,
            "subject": {"namespaces": {"matchLabels": {"kubernetes.io/metadata.name": "shop"}}},
            "ingress": [{"name": "no-telnet", "action": "Deny",
                "from": [{"namespaces": {}}], "protocols": [{"tcp": {"destinationPort": {"number": 23}}}]}]}
    })
}

/// A cluster with an object of every kind the source watches.
pub(crate) fn cluster() -> FakeApiServer {
    let api = FakeApiServer::start().expect("the fake API server");
    for object in [
        namespace("shop"),
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE},
            "status": {"addresses": [{"type": "InternalIP", "address": "192.168.0.1"}],
                "images": [{"names": ["a-very-long-image-name"], "sizeBytes": 1}]}}),
        pod("web", NODE, "10.0.0.1"),
        pod("db", "node-2", "10.0.1.1"),
        network_policy("db-from-web"),
        cluster_network_policy("no-telnet"),
        segment("web", "web"),
    ] {
        api.apply(object).expect("a known kind");
    }
    api
}

/// Takes updates until `done` holds, for at most five seconds.
pub(crate) async fn until(source: &mut KubeSource, done: impl Fn(&Update) -> bool) -> Update {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let update = source.update();
        if done(&update) {
            return update;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting; last update: {update:?}"
        );
        let _ = tokio::time::timeout(Duration::from_millis(200), source.changed()).await;
    }
}

/// Initial lists served: list requests, and watches that stream one.
pub(crate) fn lists(api: &FakeApiServer) -> usize {
    api.requests()
        .iter()
        .filter(|r| r.verb == "list" || r.path_and_query.contains("sendInitialEvents=true"))
        .count()
}

fn pod_names(source: &KubeSource) -> Vec<String> {
    let mut names: Vec<String> = source
        .snapshot()
        .pods
        .iter()
        .filter_map(|pod| pod.metadata.name.clone())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn every_kind_is_listed_before_the_source_is_synced() {
    let api = cluster();
    let mut source = KubeSource::start(client(&api), NODE);
    let update = until(&mut source, |u| u.synced).await;
    assert!(update.problems.is_empty(), "{:?}", update.problems);
    let snapshot = source.snapshot();
    assert_eq!(pod_names(&source), ["db", "web"], "local and peer pods");
    assert_eq!(snapshot.namespaces.len(), 1);
    assert_eq!(snapshot.nodes.len(), 1);
    let node_status = snapshot.nodes[0].status.as_ref().expect("node status");
    assert!(
        node_status.images.is_none(),
        "a node keeps only its addresses"
    );
    assert_eq!(snapshot.network_policies.len(), 1);
    assert_eq!(snapshot.cluster_network_policies.len(), 1);
    assert_eq!(snapshot.segments.len(), 1);
    let requests = api.requests();
    let local = format!("fieldSelector=spec.nodeName%3D{NODE}");
    let peers = format!("fieldSelector=spec.nodeName%21%3D{NODE}");
    for selector in [&local, &peers] {
        assert!(
            requests
                .iter()
                .any(|r| r.path_and_query.contains("sendInitialEvents=true")
                    && r.path_and_query.contains(selector.as_str())),
            "pods are listed with {selector}"
        );
    }
    assert!(
        requests.iter().all(|r| r.verb != "list"),
        "a server that streams lists is never asked for a paged one"
    );
}

#[tokio::test]
async fn a_server_that_does_not_stream_lists_is_listed_page_by_page() {
    let api = cluster();
    api.set_streaming_lists(StreamingLists::Ignored);
    let mut source = KubeSource::start(client(&api), NODE);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !source.update().synced {
        assert!(tokio::time::Instant::now() < deadline, "never synced");
        let _ = tokio::time::timeout(Duration::from_millis(500), source.changed()).await;
    }
    assert_eq!(pod_names(&source), ["db", "web"]);
    assert!(api.requests().iter().any(|r| r.verb == "list"));
}

#[tokio::test]
async fn a_kind_that_cannot_be_listed_keeps_the_source_unsynced_and_says_why() {
    let api = cluster();
    api.fail("clusternetworkpolicies", Some(403))
        .expect("a plural");
    let mut source = KubeSource::start(client(&api), NODE);
    let update = until(&mut source, |u| {
        u.problems
            .iter()
            .any(|p| p.to_string().contains("watch of clusternetworkpolicies"))
            && u.problems
                .iter()
                .all(|p| !p.to_string().contains("namespaces: listing"))
    })
    .await;
    assert!(
        !update.synced,
        "no policy of that kind is known, so nothing is complete"
    );
    let line = update
        .problems
        .iter()
        .map(ToString::to_string)
        .find(|l| l.contains("clusternetworkpolicies"))
        .expect("the problem");
    assert!(line.contains("403") || line.contains("Forbidden"), "{line}");
    assert!(line.contains("not listed yet"), "{line}");

    api.fail("clusternetworkpolicies", None).expect("a plural");
    until(&mut source, |u| u.synced).await;
    assert_eq!(source.snapshot().cluster_network_policies.len(), 1);
}

#[tokio::test]
async fn after_a_sync_errors_keep_what_was_listed() {
    let api = cluster();
    let mut source = KubeSource::start(client(&api), NODE);
    until(&mut source, |u| u.synced).await;
    api.fail("networkpolicies", Some(404)).expect("a plural");
    api.drop_watches();
    let update = until(&mut source, |u| {
        u.problems
            .iter()
            .any(|p| p.to_string().contains("watch of networkpolicies"))
    })
    .await;
    assert!(update.synced);
    assert!(!update.changed, "an unreadable kind is not an empty kind");
    assert_eq!(source.snapshot().network_policies.len(), 1);
    let line = update
        .problems
        .iter()
        .map(ToString::to_string)
        .find(|l| l.contains("networkpolicies"))
        .expect("the problem");
    assert!(
        line.contains("what it last listed stays enforced"),
        "{line}"
    );
}

#[tokio::test]
async fn live_changes_and_a_relist_after_expiry_converge() {
    let api = cluster();
    let mut source = KubeSource::start(client(&api), NODE);
    until(&mut source, |u| u.synced).await;
    api.apply(pod("cache", "node-2", "10.0.1.2"))
        .expect("a pod");
    until(&mut source, |u| u.changed).await;
    assert_eq!(pod_names(&source), ["cache", "db", "web"]);

    // A deletion while the watches are stalled, then an expired history:
    // the relist brings the deletion in, and never drops what is still there.
    api.stall(true);
    api.delete("v1", "Pod", Some("shop"), "db").expect("a pod");
    api.expire_watches();
    api.stall(false);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let _ = tokio::time::timeout(Duration::from_millis(100), source.changed()).await;
        source.update();
        let names = pod_names(&source);
        assert!(
            names.contains(&"web".to_owned()) && names.contains(&"cache".to_owned()),
            "a relist never empties the store: {names:?}"
        );
        if names == ["cache", "web"] {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{names:?}");
    }
    let lists = lists(&api);
    assert!(lists > 8, "the expired watches relisted ({lists} lists)");
}

#[tokio::test]
async fn a_malformed_custom_object_is_refused_alone_and_its_last_good_version_stays() {
    let api = cluster();
    let mut source = KubeSource::start(client(&api), NODE);
    until(&mut source, |u| u.synced).await;
    // Schema drift: a field of another type than this netseg knows.
    let mut drifted = segment("web", "web");
    drifted["spec"]["members"][0]["pods"]["podSelector"] = json!("app=web");
    api.apply(drifted).expect("a segment");
    api.apply(segment("db", "db")).expect("a segment");
    let update = until(&mut source, |u| u.changed).await;
    let lines: Vec<String> = update.problems.iter().map(ToString::to_string).collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("Segment web: spec.members[0].pods.podSelector")),
        "{lines:?}"
    );
    let snapshot = source.snapshot();
    let names: Vec<_> = snapshot
        .segments
        .iter()
        .filter_map(|s| s.metadata.name.clone())
        .collect();
    assert_eq!(
        names,
        ["db", "web"],
        "the new Segment is in, the drifted one keeps its last good version"
    );
    let web = &snapshot.segments[1];
    assert!(
        serde_json::to_value(&web.spec).unwrap()["members"][0]["pods"]["podSelector"].is_object()
    );
}

/// The daemon waits for [`KubeSource::changed`] in a `select!` among other
/// events (netlink, timers), which drops the wait whenever another event
/// comes first: a wait dropped while the burst settles must not lose the
/// change it was woken for.
#[tokio::test]
async fn a_wait_dropped_while_the_burst_settles_loses_no_change() {
    let api = cluster();
    let mut source = KubeSource::start(client(&api), NODE);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !super::super::Watch::ALL
        .iter()
        .all(|watch| source.shared.lock().get(watch).is_some_and(|s| s.synced))
    {
        assert!(tokio::time::Instant::now() < deadline, "every kind listed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // An update holds the next one back for the settling time: a wait
    // woken by the listing, then dropped within that time, as by another event.
    source.update();
    let cut_short = tokio::time::timeout(Duration::from_millis(10), source.changed()).await;
    assert!(cut_short.is_err(), "the wait settles for longer than 10 ms");
    let again = tokio::time::timeout(Duration::from_secs(2), source.changed()).await;
    assert!(again.is_ok(), "the change is still there to be taken");
    assert!(source.update().synced);
}

/// An API server restored from an older backup: its resource versions go
/// back, so resuming from the last one seen is wrong; the watches relist
/// and follow what the server holds now.
#[tokio::test]
async fn a_server_that_comes_back_with_older_resource_versions_is_followed() {
    let api = cluster();
    let mut source = KubeSource::start(client(&api), NODE);
    until(&mut source, |u| u.synced).await;
    api.restart(true);
    api.delete("v1", "Pod", Some("shop"), "db").expect("a pod");
    api.apply(pod("cache", "node-2", "10.0.1.2"))
        .expect("a pod");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while pod_names(&source) != ["cache", "web"] {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            pod_names(&source)
        );
        let _ = tokio::time::timeout(Duration::from_millis(200), source.changed()).await;
        source.update();
    }
}

#[tokio::test]
async fn a_status_only_pod_update_wakes_nothing_and_a_label_change_does() {
    let api = cluster();
    let mut source = KubeSource::start(client(&api), NODE);
    until(&mut source, |u| u.synced).await;
    // Take the wakes of the initial lists.
    while tokio::time::timeout(Duration::from_millis(300), source.changed())
        .await
        .is_ok()
    {
        source.update();
    }
    let mut flapping = pod("db", "node-2", "10.0.1.1");
    flapping["status"]["conditions"] = json!([{"type": "Ready", "status": "False"}]);
    api.apply(flapping.clone()).expect("a pod");
    assert!(
        tokio::time::timeout(Duration::from_millis(500), source.changed())
            .await
            .is_err(),
        "a readiness flip changes nothing the compiler reads"
    );
    flapping["metadata"]["labels"]["app"] = json!("cache");
    api.apply(flapping).expect("a pod");
    tokio::time::timeout(Duration::from_secs(5), source.changed())
        .await
        .expect("a label change wakes the source");
    assert!(source.update().changed);
}
