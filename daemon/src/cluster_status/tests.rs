//! The status writer against the fake API server, with the real kube client:
//! one leader among several nodes, a take-over when it stops, conditions and
//! Events written once however often the inputs repeat, and each node's
//! NetsegNode.

use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderValue;
use axum::http::header::USER_AGENT;
use netseg_fake_apiserver::{FakeApiServer, LoggedRequest};
use netseg_policy::{PolicyKind, Snapshot};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::lease::LEASE_NAME;
use super::{ClusterInputs, ClusterStatusConfig, NodeReport, Rejection, run};

const NAMESPACE: &str = "kube-system";
const NETSEG: &str = "netseg.dev/v1alpha1";
const LEASE_DURATION: Duration = Duration::from_secs(2);
const RENEW_INTERVAL: Duration = Duration::from_millis(250);

/// One node's status task, fed through its inputs channel.
struct Writer {
    task: JoinHandle<anyhow::Result<()>>,
    inputs: watch::Sender<Arc<ClusterInputs>>,
}

impl Writer {
    fn start(api: &FakeApiServer, node: &str, inputs: ClusterInputs) -> Writer {
        let mut config = kube::Config::new(api.url().parse().unwrap());
        let agent = HeaderValue::from_str(&user_agent(node)).unwrap();
        config.headers.push((USER_AGENT, agent));
        let client = kube::Client::try_from(config).unwrap();
        let status_config = ClusterStatusConfig {
            lease_duration: LEASE_DURATION,
            renew_interval: RENEW_INTERVAL,
            ..ClusterStatusConfig::new(node, NAMESPACE)
        };
        let (sender, receiver) = watch::channel(Arc::new(inputs));
        Writer {
            task: tokio::spawn(run(client, status_config, receiver)),
            inputs: sender,
        }
    }

    /// Sends `inputs` as a new reconciliation would, in a new `Arc`.
    fn send(&self, inputs: &ClusterInputs) {
        self.inputs.send_replace(Arc::new(inputs.clone()));
    }
}

fn user_agent(node: &str) -> String {
    format!("netseg-test/{node}")
}

/// Applies `object` and reads it back as the source would: with uid and generation.
fn stored<T: DeserializeOwned>(api: &FakeApiServer, object: Value) -> Arc<T> {
    Arc::new(serde_json::from_value(api.apply(object).unwrap()).unwrap())
}

fn segment(api: &FakeApiServer, name: &str) -> Arc<netseg_crd::Segment> {
    stored(
        api,
        json!({"apiVersion": NETSEG, "kind": "Segment", "metadata": {"name": name},
               "spec": {"members": [{"namespaces": {}}]}}),
    )
}

fn segment_policy(
    api: &FakeApiServer,
    name: &str,
    priority: i32,
) -> Arc<netseg_crd::SegmentPolicy> {
    stored(
        api,
        json!({"apiVersion": NETSEG, "kind": "SegmentPolicy", "metadata": {"name": name},
               "spec": {"tier": "Admin", "priority": priority,
                        "subject": {"segments": ["front"]},
                        "ingress": [{"action": "Accept", "from": [{"segments": ["front"]}]}]}}),
    )
}

/// A valid Segment `front` and SegmentPolicy `web`, both enforced.
fn enforced_policy(api: &FakeApiServer) -> ClusterInputs {
    ClusterInputs {
        enforced: Snapshot {
            segments: vec![segment(api, "front")],
            segment_policies: vec![segment_policy(api, "web", 10)],
            ..Snapshot::default()
        },
        ..ClusterInputs::default()
    }
}

fn conditions(api: &FakeApiServer, kind: &str, name: &str) -> Option<Value> {
    let object = api.get(NETSEG, kind, None, name)?;
    object.pointer("/status/conditions").cloned()
}

/// The conditions without `lastTransitionTime`, which each must carry.
fn without_transition_times(mut conditions: Value) -> Value {
    for condition in conditions.as_array_mut().unwrap() {
        let time = condition
            .as_object_mut()
            .unwrap()
            .remove("lastTransitionTime");
        assert!(time.is_some_and(|t| t.is_string()), "{condition}");
    }
    conditions
}

fn lease_holder(api: &FakeApiServer) -> Option<String> {
    let lease = api.get(
        "coordination.k8s.io/v1",
        "Lease",
        Some(NAMESPACE),
        LEASE_NAME,
    )?;
    lease["spec"]["holderIdentity"].as_str().map(str::to_owned)
}

/// Polls `probe` until it returns something, for at most `limit`.
async fn eventually<T>(limit: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(found) = probe() {
            return Some(found);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn status_patches<'a>(requests: &'a [LoggedRequest], plural: &str) -> Vec<&'a LoggedRequest> {
    requests
        .iter()
        .filter(|r| r.method == "PATCH" && r.path_and_query.contains(&format!("/{plural}/")))
        .filter(|r| r.path_and_query.contains("/status") && r.status == 200)
        .collect()
}

fn from(requests: &[&LoggedRequest], node: &str) -> usize {
    let agent = user_agent(node);
    requests
        .iter()
        .filter(|r| r.user_agent.as_deref() == Some(agent.as_str()))
        .count()
}

#[tokio::test]
async fn of_two_nodes_only_the_lease_holder_writes_conditions() {
    let api = FakeApiServer::start().unwrap();
    let inputs = enforced_policy(&api);
    let a = Writer::start(&api, "node-a", inputs.clone());
    let b = Writer::start(&api, "node-b", inputs.clone());
    let written = eventually(Duration::from_secs(5), || {
        conditions(&api, "SegmentPolicy", "web")
    });
    assert_eq!(
        without_transition_times(written.await.unwrap()),
        json!([
            {"type": "Accepted", "status": "True", "reason": "Valid", "message": "",
             "observedGeneration": 1},
            {"type": "ResolvedRefs", "status": "True", "reason": "Resolved", "message": "",
             "observedGeneration": 1},
        ])
    );
    let leader = lease_holder(&api).unwrap();
    let follower = if leader == "node-a" {
        "node-b"
    } else {
        "node-a"
    };
    for _ in 0..5 {
        a.send(&inputs);
        b.send(&inputs);
        tokio::time::sleep(RENEW_INTERVAL).await;
    }
    assert_eq!(
        lease_holder(&api).unwrap(),
        leader,
        "the leader kept its Lease"
    );
    let requests = api.requests();
    let patches: Vec<_> = ["segments", "segmentpolicies"]
        .iter()
        .flat_map(|plural| status_patches(&requests, plural))
        .collect();
    assert_eq!(
        from(&patches, &leader),
        2,
        "one write per object: {patches:?}"
    );
    assert_eq!(
        from(&patches, follower),
        0,
        "the follower wrote: {patches:?}"
    );
    let follower_agent = user_agent(follower);
    let about_policies: Vec<_> = requests
        .iter()
        .filter(|r| r.user_agent.as_deref() == Some(follower_agent.as_str()))
        .filter(|r| {
            ["/segments", "/segmentpolicies"]
                .iter()
                .any(|p| r.path_and_query.contains(p))
        })
        .collect();
    assert!(
        about_policies.is_empty(),
        "the follower read or wrote policies: {about_policies:?}"
    );
    assert!(conditions(&api, "Segment", "front").is_some());
}

#[tokio::test]
async fn when_the_leader_stops_the_other_node_takes_over_within_the_lease_duration() {
    let api = FakeApiServer::start().unwrap();
    let inputs = enforced_policy(&api);
    let a = Writer::start(&api, "node-a", inputs.clone());
    let b = Writer::start(&api, "node-b", inputs.clone());
    let leader = eventually(Duration::from_secs(5), || lease_holder(&api))
        .await
        .unwrap();
    let (stopped, survivor, survivor_name) = match leader.as_str() {
        "node-a" => (a, b, "node-b"),
        _ => (b, a, "node-a"),
    };
    stopped.task.abort();
    let stopped_at = Instant::now();
    let took_over = eventually(LEASE_DURATION * 2, || {
        lease_holder(&api).filter(|holder| holder == survivor_name)
    })
    .await;
    assert!(took_over.is_some(), "the Lease stayed with {leader}");
    let elapsed = stopped_at.elapsed();
    assert!(
        elapsed <= LEASE_DURATION + RENEW_INTERVAL * 2,
        "took over after {elapsed:?}"
    );

    // Conditions resume: a policy created after the take-over gets its conditions.
    let mut more = inputs.clone();
    more.enforced
        .segment_policies
        .push(segment_policy(&api, "api", 20));
    survivor.send(&more);
    let written = eventually(Duration::from_secs(5), || {
        conditions(&api, "SegmentPolicy", "api")
    });
    assert_eq!(written.await.unwrap()[0]["status"], "True");
    let requests = api.requests();
    let patches = status_patches(&requests, "segmentpolicies");
    let new_object: Vec<_> = patches
        .into_iter()
        .filter(|r| r.path_and_query.contains("/segmentpolicies/api/"))
        .collect();
    assert_eq!(from(&new_object, survivor_name), 1);
    assert_eq!(new_object.len(), 1);
}

/// The Rejection the source reports for `invalid`, a SegmentPolicy "web"
/// whose priority is out of range.
fn priority_out_of_range(invalid: &netseg_crd::SegmentPolicy) -> Rejection {
    Rejection {
        kind: PolicyKind::SegmentPolicy,
        namespace: None,
        name: "web".to_owned(),
        uid: invalid.metadata.uid.clone(),
        field: "spec.priority".to_owned(),
        message: "must be between 0 and 1000, inclusive".to_owned(),
    }
}

#[tokio::test]
async fn an_invalid_segment_policy_is_reported_once_however_often_the_inputs_repeat() {
    let api = FakeApiServer::start().unwrap();
    let invalid = segment_policy(&api, "web", 5000);
    let generation = invalid.metadata.generation;
    let inputs = ClusterInputs {
        enforced: Snapshot {
            segments: vec![segment(&api, "front")],
            ..Snapshot::default()
        },
        invalid: Snapshot {
            segment_policies: vec![invalid.clone()],
            ..Snapshot::default()
        },
        rejected: vec![priority_out_of_range(&invalid)],
        ..ClusterInputs::default()
    };
    let writer = Writer::start(&api, "node-a", inputs.clone());
    let written = eventually(Duration::from_secs(5), || {
        conditions(&api, "SegmentPolicy", "web")
    });
    let accepted = written.await.unwrap()[0].clone();
    assert_eq!(accepted["type"], "Accepted");
    assert_eq!(accepted["status"], "False");
    assert_eq!(accepted["reason"], "Invalid");
    assert!(
        accepted["message"]
            .as_str()
            .unwrap()
            .starts_with("spec.priority: invalid value \"5000\""),
        "{accepted}"
    );
    assert_eq!(accepted["observedGeneration"], json!(generation));
    for _ in 0..10 {
        writer.send(&inputs);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(RENEW_INTERVAL * 3).await;
    let requests = api.requests();
    assert_eq!(status_patches(&requests, "segmentpolicies").len(), 1);
    let events = api.list("events.k8s.io/v1", "Event");
    assert_eq!(events.len(), 1, "{events:?}");
    let event = &events[0];
    assert_eq!(
        event["metadata"]["namespace"], "default",
        "where the API server accepts Events about cluster-scoped objects"
    );
    assert_eq!(event["type"], "Warning");
    assert_eq!(event["reason"], "Rejected");
    assert_eq!(event["reportingInstance"], "node-a");
    assert_eq!(
        event["regarding"],
        json!({"apiVersion": NETSEG, "kind": "SegmentPolicy", "name": "web",
               "uid": invalid.metadata.uid})
    );
    assert!(
        event["note"].as_str().unwrap().contains("spec.priority"),
        "{event}"
    );
}

#[tokio::test]
async fn each_node_writes_its_own_netseg_node_when_its_report_changes() {
    let api = FakeApiServer::start().unwrap();
    let report = |revision| ClusterInputs {
        node: NodeReport {
            revision,
            ready: true,
            ..NodeReport::default()
        },
        ..enforced_policy(&api)
    };
    let a = Writer::start(&api, "node-a", report(3));
    let _b = Writer::start(&api, "node-b", report(5));
    let revision = |node: &str| {
        let object = api.get(NETSEG, "NetsegNode", None, node)?;
        object["status"]["revision"].as_u64()
    };
    let written = eventually(Duration::from_secs(5), || {
        Some((revision("node-a")?, revision("node-b")?))
    });
    assert_eq!(written.await, Some((3, 5)));
    let node_a = api.get(NETSEG, "NetsegNode", None, "node-a").unwrap();
    assert_eq!(node_a["status"]["nodeName"], "node-a");
    assert_eq!(node_a["status"]["ready"], true);
    assert_eq!(
        node_a["status"]["enforced"],
        json!([
            {"kind": "SegmentPolicy", "name": "web", "generation": 1},
            {"kind": "Segment", "name": "front", "generation": 1},
        ])
    );

    a.send(&report(4));
    let updated = eventually(Duration::from_secs(5), || {
        revision("node-a").filter(|r| *r == 4)
    });
    assert_eq!(updated.await, Some(4));
    for _ in 0..5 {
        a.send(&report(4));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(RENEW_INTERVAL * 2).await;
    let requests = api.requests();
    let patches = status_patches(&requests, "netsegnodes");
    assert_eq!(from(&patches, "node-a"), 2, "{patches:?}");
    assert_eq!(from(&patches, "node-b"), 1, "{patches:?}");
    assert_eq!(patches.len(), 3, "a node wrote another's NetsegNode");
}

#[tokio::test]
async fn a_refusing_api_server_delays_conditions_until_it_recovers_and_never_the_node_status() {
    let api = FakeApiServer::start().unwrap();
    let inputs = enforced_policy(&api);
    api.fail("segmentpolicies", Some(503)).unwrap();
    let _writer = Writer::start(&api, "node-a", inputs);
    let node_written = eventually(Duration::from_secs(5), || {
        api.get(NETSEG, "NetsegNode", None, "node-a")?["status"]["revision"].as_u64()
    });
    assert_eq!(node_written.await, Some(0));
    let segment_written = eventually(Duration::from_secs(5), || {
        conditions(&api, "Segment", "front")
    });
    assert!(
        segment_written.await.is_some(),
        "one failing kind held back the others"
    );
    assert_eq!(conditions(&api, "SegmentPolicy", "web"), None);

    api.fail("segmentpolicies", None).unwrap();
    // The writer retries after its backoff, which grows with every refusal
    // (to 30 s): on a loaded machine the refusals above can be several.
    let recovered = eventually(Duration::from_secs(35), || {
        conditions(&api, "SegmentPolicy", "web")
    });
    assert_eq!(recovered.await.unwrap()[0]["status"], "True");
    let refused = api
        .requests()
        .iter()
        .filter(|r| r.path_and_query.contains("/segmentpolicies") && r.status == 503)
        .count();
    assert!(refused >= 1);
}

#[tokio::test]
async fn a_new_leader_does_not_repeat_the_events_of_the_previous_one() {
    let api = FakeApiServer::start().unwrap();
    let invalid = segment_policy(&api, "web", 5000);
    let inputs = ClusterInputs {
        invalid: Snapshot {
            segment_policies: vec![invalid.clone()],
            ..Snapshot::default()
        },
        rejected: vec![priority_out_of_range(&invalid)],
        ..ClusterInputs::default()
    };
    let first = Writer::start(&api, "node-a", inputs.clone());
    let reported = eventually(Duration::from_secs(5), || {
        let events = api.list("events.k8s.io/v1", "Event");
        (!events.is_empty()).then_some(events.len())
    });
    assert_eq!(reported.await, Some(1));
    let second = Writer::start(&api, "node-b", inputs.clone());
    first.task.abort();
    let took_over = eventually(LEASE_DURATION * 2, || {
        lease_holder(&api).filter(|holder| holder == "node-b")
    });
    assert!(took_over.await.is_some());
    for _ in 0..3 {
        second.send(&inputs);
        tokio::time::sleep(RENEW_INTERVAL).await;
    }
    let events = api.list("events.k8s.io/v1", "Event");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["reportingInstance"], "node-a");
}
