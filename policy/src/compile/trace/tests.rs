use std::net::IpAddr;

use serde_json::json;

use crate::fixtures::{NODE, cnp, network_policy, segment, segment_policy, shop};
use crate::trace::{Connection, StepOutcome, Trace};
use crate::types::{Direction, PodRef};
use crate::{CompileOptions, Compiler, DefaultAction, Snapshot, lookup};

const TCP: u8 = 6;
const UDP: u8 = 17;
const ICMP: u8 = 1;

fn options(default_action: DefaultAction) -> CompileOptions {
    CompileOptions {
        node_name: NODE.to_string(),
        default_action,
        ..CompileOptions::default()
    }
}

/// Admin: into data, Pass from shop on tcp/5432, else Deny. NetworkPolicy:
/// db admits app=api on 5432. Segment data: ingress Deny, egress Accept.
/// Baseline: shop web may reach everything over udp.
fn layered() -> Snapshot {
    let mut snapshot = shop();
    snapshot.cluster_network_policies = vec![
        cnp(
            "guard-data",
            json!({"tier": "Admin", "priority": 10,
            "subject": {"namespaces": {"matchLabels": {"zone": "data"}}},
            "ingress": [
                {"name": "shop-to-np", "action": "Pass",
                 "from": [{"namespaces": {"matchLabels": {"zone": "shop"}}}],
                 "protocols": [{"tcp": {"destinationPort": {"number": 5432}}}]},
                {"action": "Deny", "from": [{"namespaces": {}}]},
            ]}),
        ),
        cnp(
            "web-udp",
            json!({"tier": "Baseline", "priority": 0,
                   "subject": {"pods": {"podSelector": {"matchLabels": {"app": "web"}}}},
                   "egress": [{"action": "Accept", "to": [{"networks": ["0.0.0.0/0"]}],
                               "protocols": [{"udp": {"destinationPort": {"range": {"start": 1, "end": 65535}}}}]}]}),
        ),
    ];
    snapshot.network_policies = vec![network_policy(
        "data",
        "db-from-api",
        json!({"podSelector": {"matchLabels": {"app": "db"}},
               "ingress": [{"from": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "api"}}}],
                            "ports": [{"port": 5432}]}]}),
    )];
    snapshot.segments = vec![segment(
        "data",
        json!({"members": [{"namespaces": {"matchLabels": {"zone": "data"}}}],
               "posture": {"ingress": "Deny", "egress": "Accept"}}),
    )];
    snapshot
}

/// Audit, fail-closed and Segment peers: an Audit SegmentPolicy denying
/// shop egress to data, and an enforced one whose Pass rule names an
/// unknown Segment (so it denies all shop ingress).
fn audited() -> Snapshot {
    let mut snapshot = layered();
    snapshot.segments.push(segment(
        "front",
        json!({"members": [{"namespaces": {"matchLabels": {"zone": "shop"}}}],
               "posture": {"ingress": "Accept", "egress": "Accept"}}),
    ));
    snapshot.segment_policies = vec![
        segment_policy(
            "would-deny",
            json!({"tier": "Admin", "priority": 1, "mode": "Audit", "subject": {"segments": ["front"]},
                   "egress": [{"action": "Deny", "to": [{"segments": ["data"]}]}]}),
        ),
        segment_policy(
            "missing",
            json!({"tier": "Baseline", "priority": 1, "subject": {"segments": ["front"]},
                   "ingress": [{"action": "Pass", "from": [{"segments": ["nowhere"]}]}]}),
        ),
    ];
    snapshot
}

/// Named ports: they resolve on the peer for egress, on the endpoint for
/// ingress. db calls 5432 `postgres`, api calls 8080 `postgres` too.
fn named_ports() -> Snapshot {
    let mut snapshot = shop();
    let with_port = |ns: &str, name: &str, app: &str, ip: &str, port: u16| {
        crate::fixtures::object(json!({
            "metadata": {"namespace": ns, "name": name, "labels": {"app": app}},
            "spec": {"nodeName": NODE, "containers": [{"name": "c", "image": "i",
                     "ports": [{"name": "postgres", "containerPort": port}]}]},
            "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]},
        }))
    };
    snapshot.pods[1] = with_port("shop", "api", "api", "10.0.0.2", 8080);
    snapshot.pods[2] = with_port("data", "db", "db", "10.0.1.1", 5432);
    snapshot.cluster_network_policies = vec![cnp(
        "postgres-only",
        json!({"tier": "Admin", "priority": 1, "subject": {"namespaces": {}},
               "egress": [{"action": "Accept", "to": [{"namespaces": {}}],
                           "protocols": [{"destinationNamedPort": "postgres"}]},
                          {"action": "Deny", "to": [{"networks": ["0.0.0.0/0"]}]}],
               "ingress": [{"action": "Deny", "from": [{"namespaces": {}}],
                            "protocols": [{"destinationNamedPort": "postgres"}]}]}),
    )];
    snapshot
}

fn trace(snapshot: &Snapshot, connection: Connection, default_action: DefaultAction) -> Trace {
    Compiler::new()
        .trace(snapshot, &options(default_action), &connection)
        .expect("a local endpoint")
}

fn connection(
    endpoint: (&str, &str),
    direction: Direction,
    peer: &str,
    protocol: u8,
    port: u16,
) -> Connection {
    Connection {
        endpoint: PodRef::new(endpoint.0, endpoint.1),
        direction,
        peer: peer.parse().expect("address"),
        protocol,
        port,
    }
}

/// (outcome, what the step stands for) of each step.
fn walk(trace: &Trace) -> Vec<(StepOutcome, String)> {
    trace
        .steps
        .iter()
        .map(|step| (step.outcome, step.decider.to_string()))
        .collect()
}

#[test]
fn the_trace_walks_admin_pass_networkpolicy_and_isolation_in_order() {
    let web_to_db = connection(("data", "db"), Direction::Ingress, "10.0.0.1", TCP, 5432);
    let trace = trace(&layered(), web_to_db, DefaultAction::Deny);
    assert_eq!(
        walk(&trace),
        [
            (StepOutcome::PeerNotMatched, "node-traffic".to_string()),
            (
                StepOutcome::Passed,
                "ClusterNetworkPolicy guard-data ingress[0] \"shop-to-np\" (Pass)".to_string()
            ),
            (
                StepOutcome::SkippedByPass,
                "ClusterNetworkPolicy guard-data ingress[1] (Deny)".to_string()
            ),
            (
                StepOutcome::PeerNotMatched,
                "NetworkPolicy data/db-from-api ingress[0] (Accept)".to_string()
            ),
            (
                StepOutcome::Decided,
                "NetworkPolicy isolation in data (db-from-api)".to_string()
            ),
        ]
    );
    assert!(!trace.verdict.allow);
    assert_eq!(trace.verdict.passed_by.len(), 1);
    assert_eq!(trace.peer_identity.to_string(), "pods shop/web");
}

#[test]
fn the_trace_reaches_the_posture_and_names_protocol_misses() {
    let db_out = connection(("data", "db"), Direction::Egress, "10.0.0.1", TCP, 80);
    let trace = trace(&layered(), db_out, DefaultAction::Deny);
    assert_eq!(
        walk(&trace),
        [(
            StepOutcome::Decided,
            "Segment data posture.egress (Accept)".to_string()
        )]
    );
    let web_out = connection(("shop", "web"), Direction::Egress, "10.0.1.1", TCP, 80);
    let trace = self::trace(&layered(), web_out, DefaultAction::Deny);
    assert_eq!(
        walk(&trace),
        [
            (
                StepOutcome::ProtocolNotMatched,
                "ClusterNetworkPolicy web-udp egress[0] (Accept)".to_string()
            ),
            (StepOutcome::Decided, "default-action".to_string()),
        ]
    );
}

#[test]
fn a_rule_that_fails_closed_says_why_in_the_trace() {
    let api_in = connection(("shop", "api"), Direction::Ingress, "10.0.1.1", UDP, 53);
    let trace = trace(&audited(), api_in, DefaultAction::Allow);
    let last = trace.steps.last().expect("a deciding step");
    assert_eq!(
        last.decider.to_string(),
        "SegmentPolicy missing ingress[0] (Deny)"
    );
    assert_eq!(
        last.fails_closed.as_deref(),
        Some(
            "spec.ingress[0].from[0].segments[0]: Segment \"nowhere\" does not exist or is invalid"
        )
    );
    assert!(!trace.verdict.allow);
}

#[test]
fn audit_rules_are_shown_but_not_enforced() {
    let web_out = connection(("shop", "web"), Direction::Egress, "10.0.1.1", TCP, 5432);
    let trace = trace(&audited(), web_out, DefaultAction::Allow);
    assert_eq!(trace.steps[0].outcome, StepOutcome::AuditOnly);
    assert!(trace.verdict.allow, "{}", trace.verdict);
    let audit = trace
        .verdict
        .audit
        .as_ref()
        .expect("the audit verdict differs");
    assert!(!audit.allow);
}

/// Every trace's verdict is the compiled verdict the datapath's lookup finds.
#[test]
fn the_trace_agrees_with_the_compiled_maps() {
    let externals: [IpAddr; 2] = [
        "203.0.113.9".parse().expect("ip"),
        "10.0.0.1".parse().expect("ip"),
    ];
    let probes = [(TCP, 5432), (TCP, 8080), (TCP, 80), (UDP, 53), (ICMP, 0)];
    for snapshot in [layered(), audited(), named_ports()] {
        for default_action in [DefaultAction::Deny, DefaultAction::Allow] {
            let options = options(default_action);
            let compiled = Compiler::new().compile(&snapshot, &options);
            let mut compiler = Compiler::new();
            for endpoint in compiled.endpoints.keys() {
                for peer in compiled.pod_addresses.keys().chain(&externals) {
                    for direction in Direction::BOTH {
                        for (protocol, port) in probes {
                            let connection = Connection {
                                endpoint: endpoint.clone(),
                                direction,
                                peer: *peer,
                                protocol,
                                port,
                            };
                            let trace = compiler
                                .trace(&snapshot, &options, &connection)
                                .expect("a local endpoint");
                            let value =
                                lookup(&compiled, endpoint, direction, *peer, protocol, port)
                                    .expect("every local endpoint has entries");
                            assert_eq!(
                                compiled.verdicts.get(&value.rule),
                                Some(&trace.verdict),
                                "{connection:?}"
                            );
                            let last = trace.steps.last().expect("a deciding step");
                            assert_eq!(last.outcome, StepOutcome::Decided);
                            assert_eq!(last.decider, trace.verdict.decided_by);
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn a_pod_of_another_node_has_no_trace() {
    let db_in = connection(("data", "db"), Direction::Ingress, "10.0.0.1", TCP, 80);
    let elsewhere = CompileOptions {
        node_name: "node-2".to_string(),
        ..CompileOptions::default()
    };
    assert_eq!(Compiler::new().trace(&layered(), &elsewhere, &db_in), None);
}
