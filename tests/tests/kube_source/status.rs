//! What the daemon writes back to the API server: its own NetsegNode, and,
//! as the only node and so the holder of the Lease, the conditions of the
//! policies and an Event about the one it refuses.

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use serde_json::{Value, json};

use super::cluster::KubeWorld;

/// A SegmentPolicy whose priority is out of range.
fn invalid_segment_policy() -> Value {
    json!({
        "apiVersion": "netseg.dev/v1alpha1", "kind": "SegmentPolicy",
        "metadata": {"name": "too-high"},
        "spec": {"tier": "Admin", "priority": 5000, "subject": {"segments": ["web"]},
            "ingress": [{"name": "all", "action": "Accept", "from": [{"segments": ["web"]}]}]}
    })
}

/// Polls `read` until it yields something, for at most `within`.
fn eventually<T>(within: Duration, mut read: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = read() {
            return Some(value);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_daemon_reports_its_node_and_the_leader_reports_what_it_refuses() -> Result<()> {
    let w = KubeWorld::start("kube-status", &["--namespace=netseg"], |_| Ok(()))?;
    let api = &w.cluster.api;
    let revision = w.daemon.status()?.map(|s| s.revision).unwrap_or_default();
    ensure!(revision > 0, "the daemon published");
    let node = eventually(Duration::from_secs(10), || {
        let nodes = api.list("netseg.dev/v1alpha1", "NetsegNode");
        nodes
            .into_iter()
            .find(|n| n["status"]["ready"] == json!(true))
    });
    let node = node.expect("the daemon's NetsegNode, ready");
    assert_eq!(node["status"]["revision"], json!(revision), "{node}");
    let maps = node["status"]["maps"].as_array().expect("map pressure");
    assert!(
        maps.iter()
            .any(|m| m["name"] == "policy" && m["capacity"].as_u64() > Some(0)),
        "{node}"
    );
    let lease = api.get(
        "coordination.k8s.io/v1",
        "Lease",
        Some("netseg"),
        "netseg-status-writer",
    );
    assert!(lease.is_some(), "the only node holds the Lease");

    api.apply(invalid_segment_policy())?;
    let accepted = eventually(Duration::from_secs(15), || {
        let policy = api.get("netseg.dev/v1alpha1", "SegmentPolicy", None, "too-high")?;
        let conditions = policy["status"]["conditions"].as_array()?.clone();
        conditions.into_iter().find(|c| c["type"] == "Accepted")
    })
    .expect("the leader wrote the Accepted condition");
    assert_eq!(accepted["status"], "False");
    assert_eq!(accepted["reason"], "Invalid");
    assert!(
        accepted["message"]
            .as_str()
            .unwrap_or_default()
            .contains("spec.priority"),
        "{accepted}"
    );
    let event = eventually(Duration::from_secs(10), || {
        api.list("events.k8s.io/v1", "Event").into_iter().next()
    })
    .expect("an Event about the refused policy");
    assert_eq!(event["metadata"]["namespace"], "default");
    assert_eq!(event["regarding"]["name"], "too-high");
    Ok(())
}
