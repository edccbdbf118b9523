//! Filters and the summary over the records of `testdata/sample.jsonl`:
//! app/web talks to data/db (open, update, end), asks coredns, is refused
//! ssh and an IPv6 connection; an outsider is refused by an Admin
//! ClusterNetworkPolicy; 40 more denials at data/db are counted.

use std::time::SystemTime;

use super::*;

const SAMPLE: &str = include_str!("../testdata/sample.jsonl");

fn sample() -> Vec<FlowRecord> {
    SAMPLE
        .lines()
        .map(|line| FlowRecord::parse(line).expect("a sample record"))
        .collect()
}

fn at(text: &str) -> SystemTime {
    humantime::parse_rfc3339(text).expect("a time")
}

/// The sample's last record is at 10:03:00.
fn now() -> SystemTime {
    at("2025-03-01T10:03:00Z")
}

/// The indices of the sample records that `pairs` selects.
fn selected(pairs: &[(&str, &str)]) -> Vec<usize> {
    let filter = FlowFilter::parse(pairs.iter().copied(), now()).expect("a valid filter");
    let records = sample();
    (0..records.len())
        .filter(|&i| filter.matches(&records[i]))
        .collect()
}

fn error(pairs: &[(&str, &str)]) -> FilterError {
    FlowFilter::parse(pairs.iter().copied(), now()).expect_err("an invalid filter")
}

#[test]
fn no_filter_selects_every_record() {
    assert_eq!(selected(&[]), (0..8).collect::<Vec<_>>());
    assert!(FlowFilter::default().is_empty());
    let since = FlowFilter::parse([("since", "1h")], now()).expect("a filter");
    assert!(!since.is_empty());
}

#[test]
fn parties_by_namespace_pod_workload_and_segment() {
    assert_eq!(selected(&[("namespace", "kube-system")]), [1]);
    // The deny-count record names data/db only as its endpoint.
    assert_eq!(selected(&[("namespace", "data")]), [0, 2, 3, 4, 5, 6, 7]);
    assert_eq!(selected(&[("pod", "db")]), [0, 2, 3, 4, 5, 6, 7]);
    assert_eq!(selected(&[("pod", "data/db")]), [0, 2, 3, 4, 5, 6, 7]);
    assert_eq!(selected(&[("pod", "app/db")]), [] as [usize; 0]);
    assert_eq!(selected(&[("workload", "coredns")]), [1]);
    assert_eq!(selected(&[("workload", "Deployment/coredns")]), [1]);
    assert_eq!(selected(&[("workload", "Deployment/db")]), [] as [usize; 0]);
    assert_eq!(selected(&[("segment", "pci")]), [0, 2, 3, 4, 6, 7]);
    assert_eq!(
        selected(&[("segment", "apps"), ("segment", "pci")]),
        [0, 1, 2, 3, 4, 6, 7]
    );
}

#[test]
fn values_of_one_filter_are_ored_and_filters_anded() {
    assert_eq!(selected(&[("kind", "open"), ("kind", "end")]), [0, 1, 6]);
    assert_eq!(selected(&[("verdict", "deny")]), [2, 4, 5, 7]);
    assert_eq!(
        selected(&[("verdict", "deny"), ("direction", "ingress")]),
        [2, 4, 5]
    );
    assert_eq!(selected(&[("direction", "egress")]), [1, 7]);
    assert_eq!(selected(&[("kind", "deny-count")]), [5]);
    assert_eq!(selected(&[("reason", "closed")]), [6]);
}

#[test]
fn policies_and_rules_by_name_or_place() {
    assert_eq!(selected(&[("policy", "guard-pci")]), [2]);
    assert_eq!(selected(&[("policy", "db-from-web")]), [0, 3, 6]);
    assert_eq!(selected(&[("policy", "data/db-from-web")]), [0, 3, 6]);
    assert_eq!(selected(&[("policy", "app/db-from-web")]), [] as [usize; 0]);
    // A cluster-scoped policy has no namespace to name.
    assert_eq!(selected(&[("policy", "data/guard-pci")]), [] as [usize; 0]);
    assert_eq!(selected(&[("rule", "no-outsiders")]), [2]);
    assert_eq!(selected(&[("rule", "ingress[1]")]), [2]);
    assert_eq!(selected(&[("rule", "ingress[1] \"no-outsiders\"")]), [2]);
    assert_eq!(selected(&[("rule", "ingress[0]")]), [0, 3, 6]);
    assert_eq!(selected(&[("policy", "web-egress"), ("rule", "dns")]), [1]);
}

#[test]
fn ports_protocols_and_addresses_on_either_side() {
    assert_eq!(selected(&[("port", "5432")]), [0, 2, 3, 6, 7]);
    assert_eq!(selected(&[("port", "40000")]), [0, 3, 6]);
    assert_eq!(selected(&[("port", "53"), ("protocol", "udp")]), [1]);
    assert_eq!(selected(&[("protocol", "17")]), [1]);
    assert_eq!(selected(&[("ip", "10.0.0.0/24")]), [0, 1, 3, 4, 6]);
    assert_eq!(selected(&[("ip", "203.0.113.7")]), [2]);
    assert_eq!(selected(&[("ip", "fd00::/64")]), [7]);
    assert_eq!(selected(&[("ip", "fd00::15"), ("ip", "10.0.9.10")]), [1, 7]);
}

#[test]
fn times_absolute_or_back_from_now() {
    assert_eq!(
        selected(&[("since", "2025-03-01T10:01:00Z")]),
        [3, 4, 5, 6, 7]
    );
    // Inclusive at both ends.
    assert_eq!(selected(&[("until", "2025-03-01T10:01:00Z")]), [0, 1, 2, 3]);
    assert_eq!(selected(&[("since", "90s")]), [4, 5, 6, 7]);
    assert_eq!(
        selected(&[("since", "2025-03-01 10:00:01"), ("until", "2m")]),
        [1, 2, 3]
    );
}

#[test]
fn a_record_whose_time_does_not_read_is_outside_every_time_range() {
    let mut record = sample().remove(0);
    record.time = "yesterday".into();
    let since = FlowFilter::parse([("since", "1h")], now()).expect("a filter");
    assert!(!since.matches(&record));
    assert!(FlowFilter::default().matches(&record));
}

#[test]
fn bad_filters_are_errors_that_name_the_filter_and_value() {
    assert_eq!(
        error(&[("pods", "web")]),
        FilterError::Unknown {
            name: "pods".into()
        }
    );
    let cases: [(&str, &str, &str); 11] = [
        ("ip", "10.0.0/33", "not an address or CIDR"),
        ("ip", "web", "not an address or CIDR"),
        ("port", "70000", "not a port number"),
        ("port", "-1", "not a port number"),
        ("since", "yesterday", "neither an RFC 3339 time"),
        ("until", "2025-02-30T10:00:00Z", "neither an RFC 3339 time"),
        (
            "since",
            "500000000000y",
            "reaches back past the start of time",
        ),
        ("verdict", "drop", "expected one of allow, deny"),
        (
            "kind",
            "close",
            "expected one of open, update, end, deny, deny-count",
        ),
        (
            "protocol",
            "tpc",
            "expected icmp, tcp, udp, icmpv6, sctp or a number",
        ),
        ("reason", "polcy-denied", "policy-denied"),
    ];
    for (name, value, why) in cases {
        let text = error(&[(name, value)]).to_string();
        assert!(
            text.starts_with(&format!("filter {name}={value:?}: ")),
            "{text}"
        );
        assert!(text.contains(why), "{text}");
    }
    let text = error(&[("pod", "")]).to_string();
    assert_eq!(text, "filter pod=\"\": empty");
    assert!(matches!(
        error(&[("since", "1h"), ("since", "2h")]),
        FilterError::Repeated { name: "since", .. }
    ));
}

#[test]
fn every_filter_name_is_accepted() {
    let value = |name| match name {
        "direction" => "egress",
        "verdict" => "allow",
        "kind" => "open",
        "reason" => "closed",
        "port" => "80",
        "protocol" => "tcp",
        "ip" => "10.0.0.1",
        "since" | "until" => "1m",
        _ => "x",
    };
    for name in FILTER_NAMES {
        FlowFilter::parse([(name, value(name))], now())
            .unwrap_or_else(|error| panic!("{name}: {error}"));
    }
}

#[test]
fn parties_are_named_by_pod_else_address_else_endpoint() {
    let records = sample();
    assert_eq!(
        party_label(&records[2], Side::Source, true),
        "203.0.113.7:51000"
    );
    assert_eq!(party_label(&records[2], Side::Source, false), "203.0.113.7");
    assert_eq!(party_label(&records[2], Side::Destination, true), "data/db");
    let mut v6 = records[7].clone();
    v6.src.pod = None;
    assert_eq!(party_label(&v6, Side::Source, true), "[fd00::1]:41000");
    // deny-count at data/db, ingress: data/db received them from unknown sources.
    assert_eq!(party_label(&records[5], Side::Source, true), "?");
    assert_eq!(party_label(&records[5], Side::Destination, true), "data/db");
    assert_eq!(service_label(&records[5]), "?");
    assert_eq!(service_label(&records[1]), "udp/53");
}

fn talker(key: &str, records: u64, packets: u64, bytes: u64) -> Talker {
    Talker {
        key: key.into(),
        traffic: Traffic {
            records,
            packets,
            bytes,
        },
    }
}

#[test]
fn summary_adds_up_top_talkers_and_top_denied() {
    let mut tally = Tally::default();
    for record in sample() {
        tally.add(&record);
    }
    let summary = tally.summary(10);
    // Packets: the update's 18 and the end's 4, and 43 denied (1 + 1 + 40 + 1).
    assert_eq!(
        summary.total,
        Traffic {
            records: 8,
            packets: 65,
            bytes: 6430
        }
    );
    assert_eq!(
        summary.sources,
        [
            talker("app/web", 6, 24, 6430),
            talker("?", 1, 40, 0),
            talker("203.0.113.7", 1, 1, 0),
        ]
    );
    assert_eq!(
        summary.destinations,
        [
            talker("data/db", 7, 65, 6430),
            talker("kube-system/coredns", 1, 0, 0)
        ]
    );
    assert_eq!(
        summary.services,
        [
            talker("tcp/5432", 5, 24, 6430),
            talker("?", 1, 40, 0),
            talker("tcp/22", 1, 1, 0),
            talker("udp/53", 1, 0, 0),
        ]
    );
    assert_eq!(
        summary.verdicts,
        [
            talker("allow established", 1, 18, 6200),
            talker("allow closed", 1, 4, 230),
            talker("deny policy-denied", 4, 43, 0),
            talker("allow new-connection", 2, 0, 0),
        ]
    );
    assert_eq!(
        summary.denied,
        [
            talker("? -> data/db ?", 1, 40, 0),
            talker("203.0.113.7 -> data/db tcp/5432", 1, 1, 0),
            talker("app/web -> data/db tcp/22", 1, 1, 0),
            talker("app/web -> data/db tcp/5432", 1, 1, 0),
        ]
    );
    assert_eq!(
        tally.summary(1).denied,
        [talker("? -> data/db ?", 1, 40, 0)]
    );
}

#[test]
fn hostile_counters_saturate_rather_than_overflow() {
    let mut record = sample().remove(3);
    record.src_packets = Some(u64::MAX);
    record.src_bytes = Some(u64::MAX);
    let mut tally = Tally::default();
    tally.add(&record);
    tally.add(&record);
    let total = tally.summary(1).total;
    assert_eq!((total.packets, total.bytes), (u64::MAX, u64::MAX));
}
