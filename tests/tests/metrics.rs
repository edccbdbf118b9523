//! Prometheus metrics and the health check, scraped inside the node namespace.

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use anyhow::Result;
use common::{http_get, world_with};
use netseg_testbed::{Family, PROBE_TIMEOUT, TcpEchoServer, TcpSession, in_netns, tcp_probe};

const ADDR: &str = "127.0.0.1:9750";

fn get(netns: &str, path: &str) -> Result<String> {
    http_get(netns, ADDR, path)
}

/// The value of the sample line that starts with `series`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|line| line.starts_with(series))
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
}

fn conntrack_entries(text: &str, state: &str) -> Option<f64> {
    sample(
        text,
        &format!("netseg_conntrack_entries{{state=\"{state}\"}}"),
    )
}

/// The entries and pressure of datapath table `map`.
fn table(text: &str, map: &str) -> (Option<f64>, Option<f64>) {
    let series = |metric| format!("netseg_bpf_map_{metric}{{map=\"{map}\"}}");
    (
        sample(text, &series("entries")),
        sample(text, &series("pressure")),
    )
}

#[test]
fn metrics_count_verdicts_flow_records_connections_and_tables() -> Result<()> {
    let mut w = world_with("metrics", &["--metrics-addr", ADDR])?;
    let _server = TcpEchoServer::start(&w.b, 80)?;
    assert!(!tcp_probe(&w.a, w.b.ip(Family::V4), 80, PROBE_TIMEOUT)?);
    let netns = w.node.netns_name().to_owned();
    let denied = r#"netseg_packets_total{verdict="deny",reason="policy-denied"}"#;
    let records = r#"netseg_flow_records_total{kind="deny",verdict="deny"}"#;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = get(&netns, "/metrics")?;
        let counted = sample(&text, denied).unwrap_or(0.0) >= 1.0
            && sample(&text, records).unwrap_or(0.0) >= 1.0;
        if counted {
            assert_eq!(sample(&text, "netseg_endpoints"), Some(2.0), "{text}");
            assert!(
                sample(&text, "netseg_policy_revision").unwrap_or(0.0) >= 1.0,
                "{text}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "no denial counted:\n{text}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let health = get(&netns, "/healthz")?;
    assert!(
        health.starts_with("HTTP/1.0 200") || health.starts_with("HTTP/1.1 200"),
        "{health}"
    );

    // A policy change, then a connection it allows that stays open and a
    // datagram nobody answers.
    w.allow_client_to_server()?;
    let _session = TcpSession::open(&w.a, w.b.ip(Family::V4), 80, PROBE_TIMEOUT)?;
    let dns = (w.b.ip(Family::V4), 53);
    in_netns(w.a.netns_name(), || {
        UdpSocket::bind("0.0.0.0:0")?.send_to(b"?", dns)
    })??;
    // The sweep counts the connections every 10 s.
    let deadline = Instant::now() + Duration::from_secs(15);
    let text = loop {
        let text = get(&netns, "/metrics")?;
        // Each connection is tracked at both pods' interfaces.
        if conntrack_entries(&text, "open") >= Some(2.0)
            && conntrack_entries(&text, "half-open") >= Some(2.0)
        {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "connections not counted:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let states = ["open", "half-open", "closing"]
        .map(|state| conntrack_entries(&text, state).unwrap_or(f64::NAN));
    let (Some(connections), Some(pressure)) = table(&text, "conntrack") else {
        panic!("no conntrack table:\n{text}")
    };
    assert_eq!(connections, states.iter().sum::<f64>(), "{text}");
    // The default --conntrack-entries.
    assert_eq!(pressure, connections / 262144.0, "{text}");
    assert_eq!(
        table(&text, "endpoints"),
        (Some(2.0), Some(2.0 / 4096.0)),
        "{text}"
    );
    let (Some(policy), Some(pressure)) = table(&text, "policy") else {
        panic!("no policy table:\n{text}")
    };
    assert!(policy > 0.0 && pressure == policy / 262144.0, "{text}");
    let (prefixes, _) = table(&text, "ipcache_v4");
    assert!(prefixes >= Some(2.0), "both pods' addresses: {text}");
    assert_eq!(table(&text, "fragments"), (Some(0.0), Some(0.0)), "{text}");
    let delay = "netseg_policy_implementation_delay_seconds";
    assert_eq!(
        sample(&text, &format!("{delay}_count")),
        Some(1.0),
        "the change, and not the first read at start: {text}"
    );
    let seconds = sample(&text, &format!("{delay}_sum")).unwrap_or(-1.0);
    assert!(
        seconds > 0.0 && seconds < 1.0,
        "a saved change is enforced within a second: {seconds}"
    );
    Ok(())
}

#[test]
fn readiness_fails_while_a_local_pod_is_not_enforced() -> Result<()> {
    let mut w = world_with("ready", &["--metrics-addr", ADDR])?;
    let netns = w.node.netns_name().to_owned();
    let ready = get(&netns, "/readyz")?;
    assert!(ready.contains(" 200 "), "{ready}");
    // A pod of this node whose address no interface is routed to.
    let c = w.node.add_pod("app/c")?;
    let host = c.host_ifname().to_owned();
    netseg_testbed::netns::ip_batch(
        &netns,
        &[
            format!("route del {}/32 dev {host}", c.ipv4()),
            format!("route del {}/128 dev {host}", c.ipv6()),
        ],
    )?;
    w.apply(|m| m.pod(&c, &[], &[]).map(drop))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ready = get(&netns, "/readyz")?;
        let text = get(&netns, "/metrics")?;
        if ready.contains(" 503 ") {
            assert_eq!(sample(&text, "netseg_pods_unenforced"), Some(1.0), "{text}");
            assert!(
                w.daemon.log().contains("local pod NOT enforced"),
                "{}",
                w.daemon.log()
            );
            break;
        }
        assert!(Instant::now() < deadline, "still ready: {ready}");
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

/// A flow exporter that dies (here: its log cannot be written) is no quiet
/// loss: `/healthz` fails and says why, while enforcement goes on.
#[test]
fn health_fails_and_says_why_when_the_flow_exporter_stops() -> Result<()> {
    let w = world_with(
        "exporter",
        &["--metrics-addr", ADDR, "--flow-log", "/dev/full"],
    )?;
    let _server = TcpEchoServer::start(&w.b, 80)?;
    let netns = w.node.netns_name().to_owned();
    // A denial makes a record, which cannot be written (a pod's first
    // neighbour discovery may have made one already).
    assert!(!tcp_probe(&w.a, w.b.ip(Family::V4), 80, PROBE_TIMEOUT)?);
    let deadline = Instant::now() + Duration::from_secs(10);
    let health = loop {
        let health = get(&netns, "/healthz")?;
        if health.contains(" 503 ") || Instant::now() >= deadline {
            break health;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        health.contains(" 503 ") && health.contains("the flow exporter stopped"),
        "{health}"
    );
    assert!(
        !tcp_probe(&w.a, w.b.ip(Family::V4), 80, PROBE_TIMEOUT)?,
        "enforcement goes on"
    );
    Ok(())
}
