//! The flow API on 127.0.0.1:0 over the records of `testdata/sample.jsonl`
//! (see `flows::query`'s tests), asked with the client of `netseg flows`.

use std::net::SocketAddr;

use tokio::sync::mpsc;

use super::*;
use crate::{
    cli::flows::{flows_url, read_lines},
    flows::recent::RecentLimits,
};

const SAMPLE: &str = include_str!("../testdata/sample.jsonl");

fn sample_lines() -> Vec<&'static str> {
    SAMPLE.lines().collect()
}

async fn start() -> (SocketAddr, Arc<RecentFlows>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let addr = listener.local_addr().expect("its address");
    let recent = Arc::new(RecentFlows::new(RecentLimits::DEFAULT));
    recent.push_lines(SAMPLE.as_bytes());
    tokio::spawn(serve_on(listener, recent.clone()));
    (addr, recent)
}

async fn ask(addr: SocketAddr, pairs: &[(&str, &str)]) -> anyhow::Result<Vec<String>> {
    let mut lines = Vec::new();
    let url = flows_url(&addr.to_string(), pairs.iter().copied());
    read_lines(&url, |line| {
        lines.push(line.to_owned());
        Ok(())
    })
    .await?;
    Ok(lines)
}

#[tokio::test]
async fn the_most_recent_matching_records_oldest_first() {
    let (addr, _recent) = start().await;
    let lines = sample_lines();
    let all = ask(addr, &[]).await.expect("an answer");
    assert_eq!(all, lines);
    let denied = ask(addr, &[("verdict", "deny")]).await.expect("an answer");
    assert_eq!(denied, [lines[2], lines[4], lines[5], lines[7]]);
    let latest = ask(addr, &[("verdict", "deny"), ("limit", "2")])
        .await
        .expect("an answer");
    assert_eq!(latest, [lines[5], lines[7]]);
    let pod = ask(addr, &[("pod", "kube-system/coredns")])
        .await
        .expect("an answer");
    assert_eq!(pod, [lines[1]]);
    let none = ask(addr, &[("ip", "192.0.2.0/24")])
        .await
        .expect("an answer");
    assert_eq!(none, [] as [&str; 0]);
}

#[tokio::test]
async fn a_bad_question_is_a_400_naming_what_is_wrong() {
    let (addr, _recent) = start().await;
    let error = ask(addr, &[("ip", "10.0.0/33")]).await.expect_err("a 400");
    let text = format!("{error:#}");
    assert!(
        text.starts_with(
            "the daemon answered 400 Bad Request: filter ip=\"10.0.0/33\": not an address or CIDR"
        ),
        "{text}"
    );
    let error = ask(addr, &[("color", "red")]).await.expect_err("a 400");
    assert!(
        format!("{error:#}").contains("unknown filter \"color\""),
        "{error:#}"
    );
    let error = ask(addr, &[("limit", "many")]).await.expect_err("a 400");
    assert!(
        format!("{error:#}").ends_with("limit=\"many\": not a number"),
        "{error:#}"
    );
    let error = ask(addr, &[("follow", "yes")]).await.expect_err("a 400");
    assert!(
        format!("{error:#}").ends_with("follow=\"yes\": expected true or false"),
        "{error:#}"
    );
}

/// A denial like the sample's outsider's, from source port `port`.
fn denial(port: u16) -> String {
    let mut record = FlowRecord::parse(sample_lines()[2]).expect("a record");
    record.src_port = Some(port);
    serde_json::to_string(&record).expect("a line")
}

#[tokio::test]
async fn a_follower_gets_the_latest_then_new_matching_records_and_what_it_lost() {
    let (addr, recent) = start().await;
    let (lines_tx, mut lines) = mpsc::unbounded_channel();
    let url = flows_url(
        &addr.to_string(),
        [("verdict", "deny"), ("limit", "1"), ("follow", "true")],
    );
    tokio::spawn(async move { read_lines(&url, |line| Ok(lines_tx.send(line.to_owned())?)).await });
    let mut next = async || lines.recv().await.expect("a line");
    assert_eq!(next().await, sample_lines()[7]);
    // Once the latest came, the follower is listening.
    let allowed = sample_lines()[0];
    recent.push_lines(format!("{allowed}\n{}\n", denial(1)).as_bytes());
    assert_eq!(next().await, denial(1));
    // The test's runtime has one thread: the server sends nothing while
    // these are pushed, so the follower falls behind the ring by exactly 10.
    let burst: String = (0..RecentLimits::DEFAULT.records + 10)
        .map(|n| denial(2 + n as u16) + "\n")
        .collect();
    recent.push_lines(burst.as_bytes());
    assert_eq!(next().await, "{\"lost\":10}");
    assert_eq!(next().await, denial(12));
}
