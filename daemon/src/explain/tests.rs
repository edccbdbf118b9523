use std::{fs, net::IpAddr};

use netseg_contract::PROTO_TCP;
use netseg_policy::DefaultAction;
use tempfile::TempDir;

use super::{FlowQuestion, Question, RecordQuestionError, explain};
use crate::flows::FlowRecord;

/// A card-holder zone: an Admin ClusterNetworkPolicy passes web traffic on
/// to the NetworkPolicies and denies the rest; db's NetworkPolicy admits
/// only api; the web Segment's posture lets its members send.
const MANIFESTS: &str = "\
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {zone: web}}
---
apiVersion: v1
kind: Namespace
metadata: {name: data, labels: {zone: pci}}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, labels: {app: web}}
spec: {nodeName: node-1, containers: [{name: c, image: i}]}
status: {podIP: 10.0.0.5, podIPs: [{ip: 10.0.0.5}]}
---
apiVersion: v1
kind: Pod
metadata: {name: api, namespace: shop, labels: {app: api}}
spec: {nodeName: node-1, containers: [{name: c, image: i}]}
status: {podIP: 10.0.0.6, podIPs: [{ip: 10.0.0.6}]}
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: data, labels: {app: db}}
spec: {nodeName: node-2, containers: [{name: c, image: i}]}
status: {podIP: 10.0.1.5, podIPs: [{ip: 10.0.1.5}]}
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: guard-pci}
spec:
  tier: Admin
  priority: 10
  subject: {namespaces: {matchLabels: {zone: pci}}}
  ingress:
    - name: web-to-networkpolicies
      action: Pass
      from: [{namespaces: {matchLabels: {zone: web}}}]
      protocols: [{tcp: {destinationPort: {number: 5432}}}]
    - {action: Deny, from: [{namespaces: {}}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-from-api, namespace: data}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress:
    - from: [{namespaceSelector: {}, podSelector: {matchLabels: {app: api}}}]
      ports: [{port: 5432}]
---
apiVersion: netseg.dev/v1alpha1
kind: Segment
metadata: {name: web}
spec:
  members: [{namespaces: {matchLabels: {zone: web}}}]
  posture: {egress: Accept}
";

fn run(from: &str, to: &str, port: u16) -> (bool, String) {
    run_question(&Question {
        from,
        to,
        protocol: PROTO_TCP,
        port,
        ipv6: false,
        default_action: DefaultAction::Deny,
    })
}

fn run_question(question: &Question<'_>) -> (bool, String) {
    let dir = TempDir::new().expect("tempdir");
    fs::write(dir.path().join("all.yaml"), MANIFESTS).expect("write");
    let mut out = Vec::new();
    let allowed = explain(dir.path(), question, &mut out).expect("explained");
    (allowed, String::from_utf8(out).expect("utf-8"))
}

#[test]
fn every_step_to_the_verdict_is_shown_at_each_end() {
    let (allowed, text) = run("shop/web", "data/db", 5432);
    assert!(!allowed);
    assert_eq!(
        text,
        "\
shop/web -> data/db tcp/5432 (10.0.0.5 -> 10.0.1.5)
  egress at shop/web: allowed by Segment web posture.egress (Accept)
    peer 10.0.1.5: pod data/db
     1. posture       Segment web posture.egress (Accept): matches: allow
  ingress at data/db: denied by NetworkPolicy isolation in data (db-from-api), after Pass by ClusterNetworkPolicy guard-pci ingress[0] \"web-to-networkpolicies\" (Pass)
    peer 10.0.0.5: pod shop/web
     1. node          node traffic (the node's own addresses): no match (peer)
     2. admin         ClusterNetworkPolicy guard-pci ingress[0] \"web-to-networkpolicies\" (Pass): matches: Pass, the rest of admin is skipped
     3. admin         ClusterNetworkPolicy guard-pci ingress[1] (Deny): skipped (an earlier Pass left the band)
     4. networkpolicy NetworkPolicy data/db-from-api ingress[0] (Accept): no match (peer)
     5. networkpolicy NetworkPolicy isolation in data (db-from-api): matches: deny
verdict: denied
"
    );
}

#[test]
fn the_networkpolicy_allows_what_the_admin_band_passes_and_not_other_ports() {
    let (allowed, text) = run("shop/api", "data/db", 5432);
    assert!(allowed, "{text}");
    assert!(
        text.contains(
            "  ingress at data/db: allowed by NetworkPolicy data/db-from-api ingress[0] (Accept), \
             after Pass by ClusterNetworkPolicy guard-pci ingress[0] \"web-to-networkpolicies\" \
             (Pass)\n"
        ),
        "{text}"
    );
    let (allowed, text) = run("shop/api", "data/db", 22);
    assert!(!allowed);
    assert!(
        text.contains(
            "     2. admin         ClusterNetworkPolicy guard-pci ingress[0] \
             \"web-to-networkpolicies\" (Pass): no match (protocol or port)\n     3. admin         \
             ClusterNetworkPolicy guard-pci ingress[1] (Deny): matches: deny\n"
        ),
        "{text}"
    );
}

/// The records of `flows/testdata/sample.jsonl` (see `flows::query`'s tests).
fn sample() -> Vec<FlowRecord> {
    include_str!("../flows/testdata/sample.jsonl")
        .lines()
        .map(|line| FlowRecord::parse(line).expect("a sample record"))
        .collect()
}

#[test]
fn a_flow_record_asks_about_its_connection_from_its_source() {
    let records = sample();
    let ssh = FlowQuestion::of_record(&records[4]).expect("a connection");
    assert_eq!(
        ssh,
        FlowQuestion {
            from: "app/web".into(),
            to: "data/db".into(),
            protocol: PROTO_TCP,
            port: 22,
            ipv6: false,
        }
    );
    assert_eq!(
        ssh.command_line("DIR").as_deref(),
        Some("netseg explain DIR --from app/web --to data/db --protocol tcp --port 22")
    );
    let outsider = FlowQuestion::of_record(&records[2]).expect("a connection");
    assert_eq!((&*outsider.from, &*outsider.to), ("203.0.113.7", "data/db"));
    let v6 = FlowQuestion::of_record(&records[7]).expect("a connection");
    assert!(v6.ipv6);
    assert_eq!(
        v6.command_line("m").as_deref(),
        Some("netseg explain m --from app/web --to data/db --protocol tcp --port 5432 --ipv6")
    );
}

#[test]
fn a_record_without_a_connection_is_a_clear_error() {
    let records = sample();
    let error = FlowQuestion::of_record(&records[5]).expect_err("deny-count");
    assert_eq!(
        error.to_string(),
        "a deny-count record counts denials at data/db without their connections: \
         there is no connection to explain"
    );
    let mut odd = records[4].clone();
    odd.protocol = Some("carrier-pigeon".into());
    assert_eq!(
        FlowQuestion::of_record(&odd),
        Err(RecordQuestionError::UnknownProtocol {
            protocol: "carrier-pigeon".into()
        })
    );
    let error = FlowQuestion::read_record("{\"schema\":1", &b""[..]).expect_err("not JSON");
    assert!(
        format!("{error:#}").starts_with("the flow record does not read: "),
        "{error:#}"
    );
    let error = FlowQuestion::read_record("-", &b"\n\n"[..]).expect_err("nothing");
    assert!(
        format!("{error:#}").contains("stdin was empty"),
        "{error:#}"
    );
}

#[test]
fn explaining_a_denied_flow_record_names_the_rule_that_denied_it() {
    // What the daemon would write when data/db refused shop/web, read from stdin.
    let mut record = sample().remove(4);
    record.src.pod = Some("shop/web".into());
    record.src_ip = Some(IpAddr::from([10, 0, 0, 5]));
    record.dst_port = Some(5432);
    let line = serde_json::to_string(&record).expect("a line");
    let stdin = format!("\n{line}\n");
    let asked = FlowQuestion::read_record("-", stdin.as_bytes()).expect("a connection");
    let (allowed, text) = run_question(&asked.question(DefaultAction::Deny));
    assert!(!allowed);
    assert!(
        text.starts_with("shop/web -> data/db tcp/5432 (10.0.0.5 -> 10.0.1.5)\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "  ingress at data/db: denied by NetworkPolicy isolation in data (db-from-api)"
        ),
        "{text}"
    );
    // A source known only by address is the pod that has it.
    record.src.pod = None;
    record.src_ip = Some(IpAddr::from([10, 0, 0, 6]));
    let asked = FlowQuestion::of_record(&record).expect("a connection");
    let (allowed, text) = run_question(&asked.question(DefaultAction::Deny));
    assert!(allowed, "{text}");
    assert!(text.contains("peer 10.0.0.6: pod shop/api"), "{text}");
}
