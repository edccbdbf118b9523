//! kubectl (client-go) as a second client: discovery, list and watch framing as the real
//! Kubernetes client library expects them.

use std::path::Path;
use std::process::{Command, Output};

use netseg_fake_apiserver::FakeApiServer;
use serde_json::{Value, json};

fn kubectl(kubeconfig: &Path, args: &[&str]) -> Output {
    let output = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("kubectl cannot run ({e}): run scripts/bootstrap to install it")
        });
    assert!(
        output.status.success(),
        "kubectl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn pod(namespace: &str, name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"namespace": namespace, "name": name}, "spec": {"containers": []}})
}

#[test]
fn kubectl_lists_pods_of_every_namespace() {
    let api = FakeApiServer::start().expect("fake starts");
    api.apply(pod("default", "a")).expect("stored");
    api.apply(pod("kube-system", "b")).expect("stored");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let kubeconfig = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kubeconfig)
        .expect("kubeconfig written");

    let output = kubectl(&kubeconfig, &["get", "pods", "-A", "-o", "json"]);
    let list: Value = serde_json::from_slice(&output.stdout).expect("kubectl prints JSON");
    let names: Vec<(&str, &str)> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|p| {
            let metadata = &p["metadata"];
            (
                metadata["namespace"].as_str().unwrap_or(""),
                metadata["name"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(names, [("default", "a"), ("kube-system", "b")]);
}

#[test]
fn kubectl_streams_watch_events_from_a_resource_version() {
    let api = FakeApiServer::start().expect("fake starts");
    let a = api.apply(pod("default", "a")).expect("stored");
    api.apply(pod("default", "b")).expect("stored");
    api.delete("v1", "Pod", Some("default"), "a")
        .expect("known kind");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let kubeconfig = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kubeconfig)
        .expect("kubeconfig written");

    let rv = a["metadata"]["resourceVersion"]
        .as_str()
        .expect("a resourceVersion");
    let url = format!("/api/v1/pods?watch=true&resourceVersion={rv}&timeoutSeconds=1");
    let output = kubectl(&kubeconfig, &["get", "--raw", &url]);
    let events: Vec<(String, String)> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| {
            let event: Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?} is not JSON: {e}"));
            (
                event["type"].as_str().unwrap_or("").to_string(),
                event["object"]["metadata"]["name"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            )
        })
        .collect();
    assert_eq!(
        events,
        [
            ("ADDED".to_string(), "b".to_string()),
            ("DELETED".to_string(), "a".to_string())
        ]
    );
}

#[test]
fn watches_that_allow_bookmarks_get_them_at_the_set_interval() {
    let api = FakeApiServer::start().expect("fake starts");
    let a = api.apply(pod("default", "a")).expect("stored");
    api.set_bookmark_interval(std::time::Duration::from_millis(300));
    let dir = tempfile::tempdir().expect("a temporary directory");
    let kubeconfig = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kubeconfig)
        .expect("kubeconfig written");

    let rv = a["metadata"]["resourceVersion"]
        .as_str()
        .expect("a resourceVersion");
    let url = format!(
        "/api/v1/pods?watch=true&resourceVersion={rv}&allowWatchBookmarks=true&timeoutSeconds=1"
    );
    let output = kubectl(&kubeconfig, &["get", "--raw", &url]);
    let bookmarks: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?} is not JSON: {e}"))
        })
        .collect();
    assert!((2..=4).contains(&bookmarks.len()), "{bookmarks:?}");
    for bookmark in &bookmarks {
        assert_eq!(bookmark["type"], "BOOKMARK");
        assert_eq!(bookmark["object"]["kind"], "Pod");
        assert_eq!(bookmark["object"]["metadata"]["resourceVersion"], rv);
    }
}
