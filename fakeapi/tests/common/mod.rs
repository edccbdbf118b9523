//! What the tests share: a kube client for the fake, pods, and a watcher event log.
// Each test binary compiles this module and uses part of it.
#![allow(dead_code)]

use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher::{self, Event};
use netseg_fake_apiserver::{FakeApiServer, LoggedRequest};
use serde_json::{Value, json};

pub fn client(api: &FakeApiServer) -> kube::Client {
    let url = api.url().parse().expect("the fake's URL is a URI");
    kube::Client::try_from(kube::Config::new(url)).expect("a client for plain HTTP")
}

pub fn pod(namespace: &str, name: &str, labels: Value, node: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"namespace": namespace, "name": name, "labels": labels},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]},
    })
}

/// Watcher items as short strings: `Init`, `InitApply(ns/name)`, `InitDone`, `Apply(ns/name)`,
/// `Delete(ns/name)`, `Err(...)`.
pub fn describe(item: &Result<Event<Pod>, watcher::Error>) -> String {
    let name = |pod: &Pod| {
        format!(
            "{}/{}",
            pod.metadata.namespace.as_deref().unwrap_or(""),
            pod.metadata.name.as_deref().unwrap_or("")
        )
    };
    match item {
        Ok(Event::Init) => "Init".to_string(),
        Ok(Event::InitApply(pod)) => format!("InitApply({})", name(pod)),
        Ok(Event::InitDone) => "InitDone".to_string(),
        Ok(Event::Apply(pod)) => format!("Apply({})", name(pod)),
        Ok(Event::Delete(pod)) => format!("Delete({})", name(pod)),
        Err(e) => format!("Err({e})"),
    }
}

/// The next `count` watcher items, described; fails the test after 5 s.
pub async fn next_items<S>(stream: &mut S, count: usize) -> Vec<String>
where
    S: Stream<Item = Result<Event<Pod>, watcher::Error>> + Unpin,
{
    let mut items = Vec::new();
    while items.len() < count {
        match tokio::time::timeout(Duration::from_secs(5), stream.next()).await {
            Ok(Some(item)) => items.push(describe(&item)),
            Ok(None) => panic!("the watcher ended after {items:?}"),
            Err(_) => panic!("no watcher item within 5 s after {items:?}"),
        }
    }
    items
}

/// Items until one equals `wanted` (included); fails the test after 5 s.
pub async fn items_until<S>(stream: &mut S, wanted: &str) -> Vec<String>
where
    S: Stream<Item = Result<Event<Pod>, watcher::Error>> + Unpin,
{
    let mut items = Vec::new();
    while items.last().is_none_or(|last| last != wanted) {
        items.extend(next_items(stream, 1).await);
    }
    items
}

pub fn by_verb<'a>(requests: &'a [LoggedRequest], verb: &str) -> Vec<&'a LoggedRequest> {
    requests.iter().filter(|r| r.verb == verb).collect()
}

/// Waits until the fake has answered `count` requests with `verb`; fails the test after 5 s.
pub async fn wait_for_requests(api: &FakeApiServer, verb: &str, count: usize) {
    for _ in 0..500 {
        if by_verb(&api.requests(), verb).len() >= count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "fewer than {count} {verb} requests within 5 s: {:#?}",
        api.requests()
    );
}
