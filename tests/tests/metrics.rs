//! Prometheus metrics and the health check, scraped inside the node namespace.

mod common;

use std::time::{Duration, Instant};

use anyhow::Result;
use common::{http_get, world_with};
use netseg_testbed::{Family, PROBE_TIMEOUT, TcpEchoServer, tcp_probe};

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

#[test]
fn metrics_count_verdicts_and_flow_records() -> Result<()> {
    let w = world_with("metrics", &["--metrics-addr", ADDR])?;
    let _server = TcpEchoServer::start(&w.b, 80)?;
    assert!(!tcp_probe(&w.a, w.b.ip(Family::V4), 80, PROBE_TIMEOUT)?);
    let netns = w.node.netns_name().to_owned();
    let denied = r#"netseg_packets_total{verdict="deny",reason="policy-denied"}"#;
    let records = r#"netseg_flow_records_total{verdict="deny"}"#;
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
