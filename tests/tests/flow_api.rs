//! The daemon's flow API (on its default 127.0.0.1:9091), asked inside
//! the node namespace.

mod common;

use std::time::{Duration, Instant};

use anyhow::Result;
use common::{http_get, world_with};
use netseg_testbed::{Family, PROBE_TIMEOUT, TcpEchoServer, tcp_probe};

/// Asks until `done` holds of the answer, for at most 10 s.
fn ask_until(netns: &str, addr: &str, path: &str, done: impl Fn(&str) -> bool) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = http_get(netns, addr, path)?;
        if done(&answer) || Instant::now() >= deadline {
            return Ok(answer);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_flow_api_holds_the_records_the_daemon_writes() -> Result<()> {
    let w = world_with("flowapi", &[])?;
    let _server = TcpEchoServer::start(&w.b, 80)?;
    assert!(!tcp_probe(&w.a, w.b.ip(Family::V4), 80, PROBE_TIMEOUT)?);
    let netns = w.node.netns_name().to_owned();
    let denial = format!("\"dst_ip\":\"{}\",\"dst_port\":80", w.b.ip(Family::V4));
    let answer = ask_until(
        &netns,
        "127.0.0.1:9091",
        "/api/v1/flows?limit=1000",
        |answer| answer.contains(&denial),
    )?;
    assert!(
        answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200"),
        "{answer}"
    );
    let record = answer.lines().find(|line| line.contains(&denial));
    let record = record.unwrap_or_else(|| panic!("no record of the denial:\n{answer}"));
    assert!(record.contains("\"verdict\":\"deny\""), "{record}");
    Ok(())
}

/// A flow API that cannot listen is no quiet loss: `/healthz` fails and
/// says why.
#[test]
fn health_fails_and_says_why_when_the_flow_api_cannot_listen() -> Result<()> {
    const METRICS: &str = "127.0.0.1:9750";
    // No interface of the node namespace has this address.
    let w = world_with(
        "noflowapi",
        &[
            "--metrics-addr",
            METRICS,
            "--flow-api-addr",
            "192.0.2.1:9091",
        ],
    )?;
    let netns = w.node.netns_name().to_owned();
    let health = ask_until(&netns, METRICS, "/healthz", |health| {
        health.contains(" 503 ")
    })?;
    assert!(
        health.contains(" 503 ")
            && health.contains("the flow API stopped: listening on 192.0.2.1:9091: "),
        "{health}"
    );
    Ok(())
}
