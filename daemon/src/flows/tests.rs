//! The exact JSON lines analysts and log pipelines parse: field names,
//! order and values are a contract, so these compare whole lines.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use netseg_contract::{
    DIRECTION_EGRESS, DIRECTION_INGRESS, DenyCountKey, FlowEvent, PROTO_ICMP, PROTO_ICMPV6,
    PROTO_TCP, PROTO_UDP, VERDICT_ALLOW, VERDICT_DENY, reason, rule,
};
use netseg_policy::{
    Action, Band, Compiled, Decider, Direction, PodParty, PodRef, PolicyKind, RuleRef,
    SegmentNetworks, Verdict, Workload,
};

use super::{
    FlowContext, FlowLabels, FlowRecord, FlowWriter, Naming, RecordKind,
    recent::{RecentFlows, RecentLimits},
};
use crate::metrics::Metrics;

const NODE: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 10);
const WEB: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const DB: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const DB_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);
const STRANGER_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x99);

/// A pod's party: its workload, labels and Segments.
pub(super) fn party(
    pod: &PodRef,
    workload: Option<(&str, &str)>,
    labels: &[(&str, &str)],
    segments: &[&str],
) -> Arc<PodParty> {
    Arc::new(PodParty {
        pod: pod.clone(),
        workload: workload.map(|(kind, name)| Workload {
            kind: kind.into(),
            name: name.into(),
        }),
        labels: Arc::new(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        segments: segments.iter().map(|&name| name.into()).collect(),
    })
}

/// Pods web (Deployment/web, Segments front and web), db (StatefulSet/db,
/// Segment data, two addresses) and we"ird (nothing); Segment outside holds
/// fd00::80/121, where STRANGER_V6 is.
pub(super) fn compiled() -> Compiled {
    let web = PodRef::new("app", "web");
    let db = PodRef::new("app", "db");
    let web = party(
        &web,
        Some(("Deployment", "web")),
        &[
            ("app", "web"),
            ("pod-template-hash", "5d4f8c9b7"),
            ("team", "shop"),
        ],
        &["front", "web"],
    );
    let db = party(
        &db,
        Some(("StatefulSet", "db")),
        &[("app.kubernetes.io/name", "postgres")],
        &["data"],
    );
    let weird = party(&PodRef::new("app", "we\"ird"), None, &[], &[]);
    let rule = RuleRef {
        kind: PolicyKind::NetworkPolicy,
        band: Band::NetworkPolicy,
        namespace: "app".into(),
        name: "db-from-web".into(),
        direction: Direction::Ingress,
        index: 1,
        rule_name: None,
        action: Action::Accept,
    };
    let allowed = Verdict::plain(true, Decider::Rule(rule));
    let outside = "fd00::80/121".parse().expect("a network");
    Compiled {
        pod_addresses: [
            (IpAddr::V4(WEB), web),
            (IpAddr::V4(DB), db.clone()),
            (IpAddr::V6(DB_V6), db),
            (IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3)), weird),
        ]
        .into(),
        verdicts: [(16, allowed), (17, guarded_after_pass())].into(),
        segment_networks: SegmentNetworks::new(vec![(outside, vec!["outside".into()])]),
        ..Compiled::default()
    }
}

pub(super) fn context() -> FlowContext {
    let endpoints = [
        (7, PodRef::new("app", "web")),
        (8, PodRef::new("app", "db")),
    ]
    .into();
    let naming = Naming {
        endpoints: &endpoints,
        compiled: &compiled(),
        node_addresses: &[IpAddr::V4(NODE)],
        labels: &FlowLabels::default(),
    };
    FlowContext::new(&naming, &FlowContext::default())
}

/// Egress denied by a Baseline SegmentPolicy rule after an Admin
/// ClusterNetworkPolicy passed it on; an Audit-mode policy would accept it.
fn guarded_after_pass() -> Verdict {
    let rule = |kind, band, name: &str, index, rule_name: Option<&str>, action| RuleRef {
        kind,
        band,
        namespace: String::new(),
        name: name.into(),
        direction: Direction::Egress,
        index,
        rule_name: rule_name.map(Into::into),
        action,
    };
    let pass = rule(
        PolicyKind::ClusterNetworkPolicy,
        Band::Admin,
        "platform",
        0,
        Some("to-apps"),
        Action::Pass,
    );
    let deny = rule(
        PolicyKind::SegmentPolicy,
        Band::Baseline,
        "zones",
        2,
        None,
        Action::Deny,
    );
    let preview = rule(
        PolicyKind::SegmentPolicy,
        Band::Admin,
        "preview",
        0,
        Some("db"),
        Action::Accept,
    );
    Verdict {
        allow: false,
        decided_by: Decider::Rule(deny),
        passed_by: vec![pass],
        audit: Some(Box::new(Verdict::plain(true, Decider::Rule(preview)))),
    }
}

fn v4(ip: Ipv4Addr) -> [u8; 16] {
    ip.to_ipv6_mapped().octets()
}

/// A new TCP connection web:40000 -> db:5432 that rule 16 allowed at db.
pub(super) fn allowed() -> FlowEvent {
    FlowEvent {
        // One day, 2 minutes, 3.456789 s after boot.
        timestamp_ns: 86_523_456_789_000,
        ifindex: 8,
        rule: 16,
        revision: 3,
        _pad: 0,
        src: v4(WEB),
        dst: v4(DB),
        src_port: 40_000u16.to_be(),
        dst_port: 5432u16.to_be(),
        protocol: PROTO_TCP,
        direction: DIRECTION_INGRESS,
        verdict: VERDICT_ALLOW,
        reason: reason::NEW_ALLOWED,
    }
}

/// The record a written line reads back as: the typed schema holds every
/// field the writer wrote, in the writer's order.
pub(super) fn read_back(line: &str) -> FlowRecord {
    let record = FlowRecord::parse(line).expect("a flow record");
    assert_eq!(
        serde_json::to_string(&record).expect("a record serializes"),
        line,
        "the schema and the writer disagree"
    );
    record
}

/// The lines `events` become, and the records counted as allowed and denied.
fn lines(events: &[FlowEvent]) -> (String, u64, u64) {
    let metrics = Metrics::new();
    let boot = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let mut out = Vec::new();
    let mut writer = FlowWriter::new(&mut out, boot, Some("node-1"), &metrics);
    let context = context();
    for event in events {
        writer
            .write_event(&context, event)
            .expect("writing to a Vec");
    }
    writer.flush().expect("flushing a Vec");
    drop(writer);
    let count = |verdict| metrics.flow_records(verdict).get();
    let text = String::from_utf8(out).expect("JSON is UTF-8");
    text.lines().for_each(|line| drop(read_back(line)));
    (text, count(RecordKind::Open), count(RecordKind::Deny))
}

fn line(event: FlowEvent) -> String {
    lines(&[event]).0
}

#[test]
fn allowed_connection_names_pods_and_rule() {
    assert_eq!(
        line(allowed()),
        r#"{"schema":1,"kind":"open","time":"2023-11-15T22:15:23.456Z","node":"node-1","verdict":"allow","reason":"new-connection","direction":"ingress","protocol":"tcp","src_ip":"10.0.0.1","src_port":40000,"dst_ip":"10.0.0.2","dst_port":5432,"src_pod":"app/web","src_workload":"Deployment/web","src_labels":{"app":"web"},"src_segments":["front","web"],"dst_pod":"app/db","dst_workload":"StatefulSet/db","dst_labels":{"app.kubernetes.io/name":"postgres"},"dst_segments":["data"],"endpoint":"app/db","start":"2023-11-15T22:15:23.456Z","duration_ms":0,"src_packets":null,"src_bytes":null,"dst_packets":null,"dst_bytes":null,"decided_by":"NetworkPolicy app/db-from-web ingress[1] (Accept)","policy_band":"networkpolicy","policy_kind":"NetworkPolicy","policy_namespace":"app","policy_name":"db-from-web","policy_rule":"ingress[1]","policy_action":"Accept","passed_by":null,"audit":null,"audit_by":null,"revision":3,"count":null}"#
            .to_owned()
            + "\n"
    );
}

/// What web's unknown IPv6 address sent to db's: denied at web.
fn denied_v6() -> FlowEvent {
    FlowEvent {
        ifindex: 7,
        rule: rule::NONE,
        src: STRANGER_V6.octets(),
        dst: DB_V6.octets(),
        dst_port: 443u16.to_be(),
        protocol: PROTO_UDP,
        direction: DIRECTION_EGRESS,
        verdict: VERDICT_DENY,
        reason: reason::POLICY_DENIED,
        ..allowed()
    }
}

#[test]
fn denied_ipv6_flow_names_the_default_action() {
    assert_eq!(
        line(denied_v6()),
        r#"{"schema":1,"kind":"deny","time":"2023-11-15T22:15:23.456Z","node":"node-1","verdict":"deny","reason":"policy-denied","direction":"egress","protocol":"udp","src_ip":"fd00::99","src_port":40000,"dst_ip":"fd00::2","dst_port":443,"src_pod":null,"src_workload":null,"src_labels":null,"src_segments":["outside"],"dst_pod":"app/db","dst_workload":"StatefulSet/db","dst_labels":{"app.kubernetes.io/name":"postgres"},"dst_segments":["data"],"endpoint":"app/web","start":null,"duration_ms":null,"src_packets":null,"src_bytes":null,"dst_packets":null,"dst_bytes":null,"decided_by":"default-deny","policy_band":null,"policy_kind":null,"policy_namespace":null,"policy_name":null,"policy_rule":null,"policy_action":null,"passed_by":null,"audit":null,"audit_by":null,"revision":3,"count":1}"#
            .to_owned()
            + "\n"
    );
}

#[test]
fn node_traffic_has_no_ports_for_icmp() {
    let probe = FlowEvent {
        rule: rule::NODE_TRAFFIC,
        src: v4(NODE),
        protocol: PROTO_ICMP,
        // Whatever the programs leave in the port fields of ICMP is not a port.
        src_port: 8,
        dst_port: 1,
        ..allowed()
    };
    assert_eq!(
        line(probe),
        r#"{"schema":1,"kind":"open","time":"2023-11-15T22:15:23.456Z","node":"node-1","verdict":"allow","reason":"new-connection","direction":"ingress","protocol":"icmp","src_ip":"192.168.1.10","src_port":null,"dst_ip":"10.0.0.2","dst_port":null,"src_pod":"node","src_workload":null,"src_labels":null,"src_segments":[],"dst_pod":"app/db","dst_workload":"StatefulSet/db","dst_labels":{"app.kubernetes.io/name":"postgres"},"dst_segments":["data"],"endpoint":"app/db","start":"2023-11-15T22:15:23.456Z","duration_ms":0,"src_packets":null,"src_bytes":null,"dst_packets":null,"dst_bytes":null,"decided_by":"node-traffic","policy_band":null,"policy_kind":null,"policy_namespace":null,"policy_name":null,"policy_rule":null,"policy_action":null,"passed_by":null,"audit":null,"audit_by":null,"revision":3,"count":null}"#
            .to_owned()
            + "\n"
    );
}

#[test]
fn decided_by_without_a_known_rule() {
    let revoked = FlowEvent {
        rule: rule::NONE,
        verdict: VERDICT_DENY,
        reason: reason::REVOKED,
        ..allowed()
    };
    let default_allow = FlowEvent {
        rule: rule::DEFAULT_ALLOW,
        protocol: PROTO_ICMPV6,
        src: STRANGER_V6.octets(),
        dst: DB_V6.octets(),
        ..allowed()
    };
    // A rule of an older compilation: the connection was allowed then.
    let conntrack = FlowEvent {
        rule: 9999,
        reason: reason::ESTABLISHED,
        ..allowed()
    };
    let datapath = FlowEvent {
        ifindex: 99,
        rule: rule::NONE,
        protocol: 47,
        verdict: VERDICT_DENY,
        reason: 99,
        src: v4(Ipv4Addr::new(10, 0, 0, 3)),
        ..allowed()
    };
    let (text, allowed, denied) = lines(&[revoked, default_allow, conntrack, datapath]);
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        [
            r#"{"schema":1,"kind":"deny","time":"2023-11-15T22:15:23.456Z","node":"node-1","verdict":"deny","reason":"revoked","direction":"ingress","protocol":"tcp","src_ip":"10.0.0.1","src_port":40000,"dst_ip":"10.0.0.2","dst_port":5432,"src_pod":"app/web","src_workload":"Deployment/web","src_labels":{"app":"web"},"src_segments":["front","web"],"dst_pod":"app/db","dst_workload":"StatefulSet/db","dst_labels":{"app.kubernetes.io/name":"postgres"},"dst_segments":["data"],"endpoint":"app/db","start":null,"duration_ms":null,"src_packets":null,"src_bytes":null,"dst_packets":null,"dst_bytes":null,"decided_by":"default-deny","policy_band":null,"policy_kind":null,"policy_namespace":null,"policy_name":null,"policy_rule":null,"policy_action":null,"passed_by":null,"audit":null,"audit_by":null,"revision":3,"count":1}"#,
            r#"{"schema":1,"kind":"open","time":"2023-11-15T22:15:23.456Z","node":"node-1","verdict":"allow","reason":"new-connection","direction":"ingress","protocol":"icmpv6","src_ip":"fd00::99","src_port":null,"dst_ip":"fd00::2","dst_port":null,"src_pod":null,"src_workload":null,"src_labels":null,"src_segments":["outside"],"dst_pod":"app/db","dst_workload":"StatefulSet/db","dst_labels":{"app.kubernetes.io/name":"postgres"},"dst_segments":["data"],"endpoint":"app/db","start":"2023-11-15T22:15:23.456Z","duration_ms":0,"src_packets":null,"src_bytes":null,"dst_packets":null,"dst_bytes":null,"decided_by":"default-allow","policy_band":null,"policy_kind":null,"policy_namespace":null,"policy_name":null,"policy_rule":null,"policy_action":null,"passed_by":null,"audit":null,"audit_by":null,"revision":3,"count":null}"#,
            r#"{"schema":1,"kind":"open","time":"2023-11-15T22:15:23.456Z","node":"node-1","verdict":"allow","reason":"established","direction":"ingress","protocol":"tcp","src_ip":"10.0.0.1","src_port":40000,"dst_ip":"10.0.0.2","dst_port":5432,"src_pod":"app/web","src_workload":"Deployment/web","src_labels":{"app":"web"},"src_segments":["front","web"],"dst_pod":"app/db","dst_workload":"StatefulSet/db","dst_labels":{"app.kubernetes.io/name":"postgres"},"dst_segments":["data"],"endpoint":"app/db","start":"2023-11-15T22:15:23.456Z","duration_ms":0,"src_packets":null,"src_bytes":null,"dst_packets":null,"dst_bytes":null,"decided_by":"conntrack","policy_band":null,"policy_kind":null,"policy_namespace":null,"policy_name":null,"policy_rule":null,"policy_action":null,"passed_by":null,"audit":null,"audit_by":null,"revision":3,"count":null}"#,
            r#"{"schema":1,"kind":"deny","time":"2023-11-15T22:15:23.456Z","node":"node-1","verdict":"deny","reason":"unknown","direction":"ingress","protocol":"47","src_ip":"10.0.0.3","src_port":null,"dst_ip":"10.0.0.2","dst_port":null,"src_pod":"app/we\"ird","src_workload":null,"src_labels":{},"src_segments":[],"dst_pod":"app/db","dst_workload":"StatefulSet/db","dst_labels":{"app.kubernetes.io/name":"postgres"},"dst_segments":["data"],"endpoint":null,"start":null,"duration_ms":null,"src_packets":null,"src_bytes":null,"dst_packets":null,"dst_bytes":null,"decided_by":"datapath","policy_band":null,"policy_kind":null,"policy_namespace":null,"policy_name":null,"policy_rule":null,"policy_action":null,"passed_by":null,"audit":null,"audit_by":null,"revision":3,"count":1}"#,
        ]
    );
    assert_eq!((allowed, denied), (2, 2));
}

#[test]
fn an_aggregate_counts_the_denials_of_an_endpoint_and_reason() {
    let metrics = Metrics::new();
    let boot = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let mut out = Vec::new();
    let mut writer = FlowWriter::new(&mut out, boot, Some("node-1"), &metrics);
    let context = context();
    let flood = DenyCountKey {
        ifindex: 7,
        direction: DIRECTION_EGRESS,
        reason: reason::POLICY_DENIED,
        _pad: [0; 2],
    };
    let unknown_interface = DenyCountKey {
        ifindex: 99,
        direction: DIRECTION_INGRESS,
        reason: reason::NO_ENDPOINT,
        ..flood
    };
    for (key, count) in [(flood, 59_412), (unknown_interface, 3)] {
        writer
            .write_aggregate(&context, &key, count, 86_523_456_789_000)
            .expect("writing to a Vec");
    }
    writer.flush().expect("flushing a Vec");
    drop(writer);
    assert_eq!(
        String::from_utf8(out)
            .expect("JSON is UTF-8")
            .lines()
            .inspect(|line| drop(read_back(line)))
            .collect::<Vec<_>>(),
        [
            r#"{"schema":1,"kind":"deny-count","time":"2023-11-15T22:15:23.456Z","node":"node-1","verdict":"deny","reason":"policy-denied","direction":"egress","protocol":null,"src_ip":null,"src_port":null,"dst_ip":null,"dst_port":null,"src_pod":null,"src_workload":null,"src_labels":null,"src_segments":null,"dst_pod":null,"dst_workload":null,"dst_labels":null,"dst_segments":null,"endpoint":"app/web","start":null,"duration_ms":null,"src_packets":null,"src_bytes":null,"dst_packets":null,"dst_bytes":null,"decided_by":"unattributed","policy_band":null,"policy_kind":null,"policy_namespace":null,"policy_name":null,"policy_rule":null,"policy_action":null,"passed_by":null,"audit":null,"audit_by":null,"revision":null,"count":59412}"#,
            r#"{"schema":1,"kind":"deny-count","time":"2023-11-15T22:15:23.456Z","node":"node-1","verdict":"deny","reason":"no-endpoint","direction":"ingress","protocol":null,"src_ip":null,"src_port":null,"dst_ip":null,"dst_port":null,"src_pod":null,"src_workload":null,"src_labels":null,"src_segments":null,"dst_pod":null,"dst_workload":null,"dst_labels":null,"dst_segments":null,"endpoint":null,"start":null,"duration_ms":null,"src_packets":null,"src_bytes":null,"dst_packets":null,"dst_bytes":null,"decided_by":"unattributed","policy_band":null,"policy_kind":null,"policy_namespace":null,"policy_name":null,"policy_rule":null,"policy_action":null,"passed_by":null,"audit":null,"audit_by":null,"revision":null,"count":3}"#,
        ]
    );
    assert_eq!(metrics.flow_records(RecordKind::DenyCount).get(), 2);
}

#[test]
fn time_keeps_milliseconds_across_seconds() {
    let at = |timestamp_ns| FlowEvent {
        timestamp_ns,
        ..allowed()
    };
    let times: Vec<String> = lines(&[at(999_999_999), at(1_000_000_000), at(59_001_000_000)])
        .0
        .lines()
        .map(|line| FlowRecord::parse(line).expect("a record").time)
        .collect();
    assert_eq!(
        times,
        [
            "2023-11-14T22:13:20.999Z",
            "2023-11-14T22:13:21.000Z",
            "2023-11-14T22:14:19.001Z"
        ]
    );
}

#[test]
fn names_are_escaped_as_serde_json_escapes_them() {
    let odd = PodRef::new("app", "tab\there\\é\u{1}");
    let compiled = Compiled {
        pod_addresses: [(IpAddr::V4(WEB), party(&odd, None, &[], &[]))].into(),
        ..Compiled::default()
    };
    let naming = Naming {
        endpoints: &[(8, odd.clone())].into(),
        compiled: &compiled,
        node_addresses: &[],
        labels: &FlowLabels::default(),
    };
    let context = FlowContext::new(&naming, &FlowContext::default());
    let metrics = Metrics::new();
    let mut out = Vec::new();
    let mut writer = FlowWriter::new(&mut out, SystemTime::UNIX_EPOCH, Some("node-1"), &metrics);
    writer
        .write_event(&context, &allowed())
        .expect("writing to a Vec");
    writer.flush().expect("flushing a Vec");
    drop(writer);
    let line = String::from_utf8(out).expect("JSON is UTF-8");
    let escaped = serde_json::to_string(&odd.to_string()).expect("a string serializes");
    assert!(line.contains(&format!(r#""src_pod":{escaped},"#)));
    assert!(line.contains(&format!(r#""endpoint":{escaped},"#)));
    let record: serde_json::Value = serde_json::from_str(&line).expect("the line is JSON");
    assert_eq!(record["src_pod"], "app/tab\there\\é\u{1}");
}

#[test]
fn many_records_arrive_whole_and_in_order() {
    let events: Vec<FlowEvent> = (0..1000)
        .map(|n| FlowEvent {
            revision: n,
            ..allowed()
        })
        .collect();
    let (text, allowed, denied) = lines(&events);
    let revisions: Vec<u64> = text
        .lines()
        .map(|line| {
            let record: serde_json::Value = serde_json::from_str(line).expect("each line is JSON");
            record["revision"].as_u64().expect("a revision")
        })
        .collect();
    assert_eq!(revisions, (0..1000).collect::<Vec<u64>>());
    assert_eq!((allowed, denied), (1000, 0));
}

#[test]
fn a_denial_after_a_pass_names_the_band_the_pass_and_the_audit_difference() {
    let denied = FlowEvent {
        ifindex: 7,
        rule: 17,
        src: v4(WEB),
        dst: v4(DB),
        direction: DIRECTION_EGRESS,
        verdict: VERDICT_DENY,
        reason: reason::POLICY_DENIED,
        ..allowed()
    };
    assert_eq!(
        line(denied),
        r#"{"schema":1,"kind":"deny","time":"2023-11-15T22:15:23.456Z","node":"node-1","verdict":"deny","reason":"policy-denied","direction":"egress","protocol":"tcp","src_ip":"10.0.0.1","src_port":40000,"dst_ip":"10.0.0.2","dst_port":5432,"src_pod":"app/web","src_workload":"Deployment/web","src_labels":{"app":"web"},"src_segments":["front","web"],"dst_pod":"app/db","dst_workload":"StatefulSet/db","dst_labels":{"app.kubernetes.io/name":"postgres"},"dst_segments":["data"],"endpoint":"app/web","start":null,"duration_ms":null,"src_packets":null,"src_bytes":null,"dst_packets":null,"dst_bytes":null,"decided_by":"SegmentPolicy zones egress[2] (Deny)","policy_band":"baseline","policy_kind":"SegmentPolicy","policy_namespace":null,"policy_name":"zones","policy_rule":"egress[2]","policy_action":"Deny","passed_by":"ClusterNetworkPolicy platform egress[0] \"to-apps\" (Pass)","audit":"audit-would-allow","audit_by":"SegmentPolicy preview egress[0] \"db\" (Accept)","revision":3,"count":1}"#
            .to_owned()
            + "\n"
    );
}

#[test]
fn the_flow_api_gets_every_line_written() {
    let metrics = Metrics::new();
    let recent = Arc::new(RecentFlows::new(RecentLimits::DEFAULT));
    let mut out = Vec::new();
    let mut writer = FlowWriter::new(&mut out, SystemTime::UNIX_EPOCH, Some("node-1"), &metrics)
        .with_recent(Some(recent.clone()));
    let context = context();
    // Enough to be written out in several batches.
    for revision in 0..3000 {
        let event = FlowEvent {
            revision,
            ..allowed()
        };
        writer
            .write_event(&context, &event)
            .expect("writing to a Vec");
    }
    writer.flush().expect("flushing a Vec");
    drop(writer);
    let held: String = recent
        .lines()
        .iter()
        .map(|line| format!("{line}\n"))
        .collect();
    assert_eq!(held, String::from_utf8(out).expect("JSON is UTF-8"));
    assert_eq!(recent.lines().len(), 3000);
}
