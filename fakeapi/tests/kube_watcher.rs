//! The real kube watcher against the fake: the initial list, live events, relists, streaming
//! lists, paging, selectors, dropped streams and errors, as netseg's sources will see them.

mod common;

use std::time::Duration;

use common::{by_verb, client, items_until, next_items, pod};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::watcher::{self, watcher};
use netseg_fake_apiserver::{FakeApiServer, StreamingLists};
use serde_json::json;

fn fake_with_pods(names: &[&str]) -> FakeApiServer {
    let api = FakeApiServer::start().expect("fake starts");
    for name in names {
        api.apply(pod("default", name, json!({"app": "web"}), "node-1"))
            .expect("pod stored");
    }
    api
}

#[tokio::test]
async fn initial_list_then_live_apply_and_delete() {
    let api = fake_with_pods(&["a", "b"]);
    let mut events = watcher(Api::<Pod>::all(client(&api)), watcher::Config::default()).boxed();
    assert_eq!(
        next_items(&mut events, 4).await,
        [
            "Init",
            "InitApply(default/a)",
            "InitApply(default/b)",
            "InitDone"
        ]
    );
    api.apply(pod("default", "c", json!({}), "node-2"))
        .expect("pod stored");
    assert_eq!(next_items(&mut events, 1).await, ["Apply(default/c)"]);
    let deleted = api
        .delete("v1", "Pod", Some("default"), "a")
        .expect("known kind");
    assert!(deleted.is_some(), "pod a existed");
    assert_eq!(next_items(&mut events, 1).await, ["Delete(default/a)"]);
}

#[tokio::test]
async fn expired_watch_makes_the_watcher_relist_once() {
    let api = fake_with_pods(&["a"]);
    let mut events = watcher(Api::<Pod>::all(client(&api)), watcher::Config::default()).boxed();
    next_items(&mut events, 3).await;
    // The watcher opens its watch only while it is polled.
    let expire = async {
        common::wait_for_requests(&api, "watch", 1).await;
        api.expire_watches();
    };
    let (after, ()) = tokio::join!(items_until(&mut events, "InitDone"), expire);
    assert!(
        after[0].contains("too old resource version") && after[0].contains("Expired"),
        "{after:?}"
    );
    assert_eq!(after[1..], ["Init", "InitApply(default/a)", "InitDone"]);
    assert_eq!(
        by_verb(&api.requests(), "list").len(),
        2,
        "{:#?}",
        api.requests()
    );
}

#[tokio::test]
async fn streaming_list_ends_with_init_done_only_when_supported() {
    let api = fake_with_pods(&["a"]);
    let config = watcher::Config::default().streaming_lists();
    let mut events = watcher(Api::<Pod>::all(client(&api)), config.clone()).boxed();
    assert_eq!(
        next_items(&mut events, 3).await,
        ["Init", "InitApply(default/a)", "InitDone"]
    );
    let requests = api.requests();
    assert!(by_verb(&requests, "list").is_empty(), "{requests:#?}");
    assert!(
        by_verb(&requests, "watch")[0]
            .path_and_query
            .contains("sendInitialEvents=true")
    );

    let old_server = fake_with_pods(&["a"]);
    old_server.set_streaming_lists(StreamingLists::Ignored);
    let mut events = watcher(Api::<Pod>::all(client(&old_server)), config).boxed();
    assert_eq!(
        next_items(&mut events, 2).await,
        ["Init", "InitApply(default/a)"]
    );
    old_server
        .apply(pod("default", "b", json!({}), "node-1"))
        .expect("pod stored");
    assert_eq!(next_items(&mut events, 1).await, ["InitApply(default/b)"]);
    let quiet = tokio::time::timeout(Duration::from_millis(500), events.next()).await;
    assert!(
        quiet.is_err(),
        "no InitDone from a server that ignores sendInitialEvents: {:?}",
        quiet.map(|i| i.map(|i| common::describe(&i)))
    );
}

#[tokio::test]
async fn pages_of_two_cover_five_pods() {
    let api = fake_with_pods(&["p1", "p2", "p3", "p4", "p5"]);
    let config = watcher::Config::default().page_size(2);
    let mut events = watcher(Api::<Pod>::all(client(&api)), config).boxed();
    let items = next_items(&mut events, 7).await;
    assert_eq!(
        items[1..6],
        [
            "InitApply(default/p1)",
            "InitApply(default/p2)",
            "InitApply(default/p3)",
            "InitApply(default/p4)",
            "InitApply(default/p5)"
        ]
    );
    assert_eq!(items[6], "InitDone");
    let requests = api.requests();
    let lists = by_verb(&requests, "list");
    assert_eq!(lists.len(), 3, "{lists:#?}");
    assert!(lists.iter().all(|r| r.path_and_query.contains("limit=2")));
    assert_eq!(
        lists
            .iter()
            .filter(|r| r.path_and_query.contains("continue="))
            .count(),
        2
    );
}

#[tokio::test]
async fn label_and_field_selectors_filter_lists_and_watches() {
    let api = FakeApiServer::start().expect("fake starts");
    api.apply(pod("default", "web-1", json!({"app": "web"}), "node-1"))
        .expect("stored");
    api.apply(pod("default", "web-2", json!({"app": "web"}), "node-2"))
        .expect("stored");
    api.apply(pod("default", "db-1", json!({"app": "db"}), "node-1"))
        .expect("stored");
    let config = watcher::Config::default()
        .labels("app=web")
        .fields("spec.nodeName=node-1");
    let mut events = watcher(Api::<Pod>::all(client(&api)), config).boxed();
    assert_eq!(
        next_items(&mut events, 3).await,
        ["Init", "InitApply(default/web-1)", "InitDone"]
    );
    api.apply(pod("default", "db-1", json!({"app": "web"}), "node-1"))
        .expect("relabelled into the selection");
    assert_eq!(next_items(&mut events, 1).await, ["Apply(default/db-1)"]);
    api.apply(pod("default", "web-1", json!({"app": "old"}), "node-1"))
        .expect("relabelled out of it");
    assert_eq!(next_items(&mut events, 1).await, ["Delete(default/web-1)"]);
}

#[tokio::test]
async fn dropped_stream_resumes_from_the_last_resource_version_without_a_list() {
    let api = fake_with_pods(&["a"]);
    let mut events = watcher(Api::<Pod>::all(client(&api)), watcher::Config::default()).boxed();
    next_items(&mut events, 3).await;
    let b = api
        .apply(pod("default", "b", json!({}), "node-1"))
        .expect("stored");
    assert_eq!(next_items(&mut events, 1).await, ["Apply(default/b)"]);
    api.drop_watches();
    api.apply(pod("default", "c", json!({}), "node-1"))
        .expect("stored");
    let after = items_until(&mut events, "Apply(default/c)").await;
    assert!(
        after
            .iter()
            .all(|i| i == "Apply(default/c)" || i.starts_with("Err(")),
        "{after:?}"
    );
    let requests = api.requests();
    assert_eq!(by_verb(&requests, "list").len(), 1, "{requests:#?}");
    let watches = by_verb(&requests, "watch");
    let b_rv = b["metadata"]["resourceVersion"]
        .as_str()
        .expect("b has a resourceVersion");
    assert_eq!(watches.len(), 2, "{watches:#?}");
    assert!(
        watches[1]
            .path_and_query
            .contains(&format!("resourceVersion={b_rv}")),
        "{watches:#?}"
    );
}

#[tokio::test]
async fn forbidden_resource_is_an_error_item_until_allowed() {
    let api = fake_with_pods(&["a"]);
    api.fail("pods", Some(403)).expect("pods are served");
    let mut events = watcher(Api::<Pod>::all(client(&api)), watcher::Config::default()).boxed();
    assert_eq!(next_items(&mut events, 1).await, ["Init"]);
    match events.next().await {
        Some(Err(watcher::Error::InitialListFailed(kube::Error::Api(status)))) => {
            assert_eq!((status.code, status.reason.as_str()), (403, "Forbidden"));
        }
        other => panic!(
            "expected a 403 from the initial list, got {:?}",
            other.map(|i| common::describe(&i))
        ),
    }
    api.fail("pods", None).expect("pods are served");
    assert_eq!(
        next_items(&mut events, 3).await,
        ["Init", "InitApply(default/a)", "InitDone"]
    );
}

#[tokio::test]
async fn restart_with_an_older_resource_version_ends_in_a_relist_of_the_current_state() {
    let api = fake_with_pods(&["a"]);
    let mut events = watcher(Api::<Pod>::all(client(&api)), watcher::Config::default()).boxed();
    next_items(&mut events, 3).await;
    api.apply(pod("default", "b", json!({}), "node-1"))
        .expect("stored");
    assert_eq!(next_items(&mut events, 1).await, ["Apply(default/b)"]);
    api.restart(true);
    let after = items_until(&mut events, "InitDone").await;
    let relisted = &after[after.len() - 4..];
    assert_eq!(
        relisted,
        [
            "Init",
            "InitApply(default/a)",
            "InitApply(default/b)",
            "InitDone"
        ],
        "{after:?}"
    );
    let requests = api.requests();
    let lists = by_verb(&requests, "list");
    assert_eq!(lists.len(), 2, "{requests:#?}");
    assert_eq!(lists[1].status, 200);
}

#[tokio::test]
async fn an_expired_continue_token_is_http_410() {
    use kube::api::ListParams;
    let api = fake_with_pods(&["a", "b", "c"]);
    let pods: Api<Pod> = Api::all(client(&api));
    let first = pods
        .list(&ListParams::default().limit(1))
        .await
        .expect("first page");
    let token = first.metadata.continue_.clone().expect("more pages");
    let second = pods
        .list(&ListParams::default().limit(1).continue_token(&token))
        .await
        .expect("second page");
    assert_eq!(second.items[0].metadata.name.as_deref(), Some("b"));
    api.apply(pod("default", "d", json!({}), "node-1"))
        .expect("stored");
    api.expire_watches();
    match pods
        .list(&ListParams::default().limit(1).continue_token(&token))
        .await
    {
        Err(kube::Error::Api(status)) => {
            assert_eq!((status.code, status.reason.as_str()), (410, "Expired"))
        }
        other => panic!("expected 410 Expired for a compacted continue token, got {other:?}"),
    }
}

#[tokio::test]
async fn list_bodies_and_watch_lines_are_counted_in_bytes() {
    let api = fake_with_pods(&["a", "b"]);
    let mut events = watcher(Api::<Pod>::all(client(&api)), watcher::Config::default()).boxed();
    next_items(&mut events, 4).await;
    let list = by_verb(&api.requests(), "list")[0].clone();
    let items = serde_json::to_string(&api.list("v1", "Pod")).expect("pods serialize");
    let body_bytes = list.body_bytes.expect("a list is sent whole");
    assert!(
        body_bytes > items.len() as u64 && body_bytes < items.len() as u64 + 300,
        "a list of {} bytes of pods was sent as {body_bytes} bytes",
        items.len()
    );
    // The watch opens when the watcher is next polled, and replays the change.
    let changed = api
        .apply(pod("default", "a", json!({"app": "db"}), "node-1"))
        .expect("pod stored");
    assert_eq!(next_items(&mut events, 1).await, ["Apply(default/a)"]);
    assert_eq!(
        by_verb(&api.requests(), "watch")[0].body_bytes,
        None,
        "a watch is a stream"
    );
    let line = json!({"type": "MODIFIED", "object": changed}).to_string();
    assert_eq!(api.watch_bytes_sent(), line.len() as u64 + 1);
}
