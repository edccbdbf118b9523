//! `netseg flows` and `netseg explain --flow` as analysts run them: the
//! binary against flow logs in a temporary directory, and against a flow
//! API served by this test. No root needed.

use std::{
    io::{BufRead, BufReader, Write},
    net::SocketAddr,
    path::Path,
    process::{Child, Command, Output, Stdio},
    sync::{Arc, mpsc},
    time::Duration,
};

use netseg::flows::{
    FlowRecord, api,
    recent::{RecentFlows, RecentLimits},
};

/// app/web talks to data/db, is refused ssh and IPv6; an outsider is
/// refused; 40 denials at data/db are counted (see `flows::query`'s tests).
const SAMPLE: &str = include_str!("../src/flows/testdata/sample.jsonl");

fn sample_lines() -> Vec<&'static str> {
    SAMPLE.lines().collect()
}

fn netseg(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_netseg"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("netseg runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Records 0-3 and a line that is no record (line 3) in `flows.jsonl.1`,
/// records 4-7 in `flows.jsonl`.
fn rotated_log(dir: &Path) -> String {
    let lines = sample_lines();
    let old = format!(
        "{}\n{}\nnot a record\n{}\n{}\n",
        lines[0], lines[1], lines[2], lines[3]
    );
    std::fs::write(dir.join("flows.jsonl.1"), old).expect("write");
    std::fs::write(dir.join("flows.jsonl"), lines[4..].join("\n") + "\n").expect("write");
    dir.join("flows.jsonl")
        .to_str()
        .expect("a UTF-8 path")
        .to_owned()
}

#[test]
fn filters_over_the_rotated_files_skip_and_tell_malformed_lines() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let log = rotated_log(dir.path());
    let output = netseg(&["flows", &log, "--verdict", "deny", "--output", "json"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let lines = sample_lines();
    assert_eq!(
        text(&output.stdout),
        [lines[2], lines[4], lines[5], lines[7], ""].join("\n")
    );
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(&format!("{log}.1:3: not a flow record, skipped: ")),
        "{stderr}"
    );
    assert!(
        stderr.ends_with("netseg flows: 1 malformed lines skipped\n"),
        "{stderr}"
    );
}

#[test]
fn the_table_shows_how_to_explain_a_denial_and_the_summary_adds_up() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let log = rotated_log(dir.path());
    let output = netseg(&["flows", &log, "--kind", "deny", "--limit", "1"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let table = text(&output.stdout);
    assert_eq!(table.lines().count(), 3, "{table}");
    assert!(table.starts_with("TIME "), "{table}");
    assert!(
        table.ends_with(
            "\n  explain: netseg explain DIR --from app/web --to data/db --protocol tcp --port 5432 --ipv6\n"
        ),
        "{table}"
    );
    let output = netseg(&["flows", &log, "--summary", "--namespace", "kube-system"]);
    let summary = text(&output.stdout);
    assert!(
        summary.starts_with("1 records, 0 packets, 0 bytes\n"),
        "{summary}"
    );
}

#[test]
fn a_bad_filter_is_told_and_fails() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let log = rotated_log(dir.path());
    let output = netseg(&["flows", &log, "--ip", "10.0.0/33"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(
        stderr.starts_with("netseg flows: filter ip=\"10.0.0/33\": not an address or CIDR"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty());
}

/// A `netseg` left running, its stdout read line by line.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Running {
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_netseg"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("netseg runs");
        let stdout = BufReader::new(child.stdout.take().expect("its stdout"));
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines }
    }

    fn next_line(&self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(10))
            .expect("a line within 10 s")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn following_a_file_goes_on_across_a_rotation() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let log = rotated_log(dir.path());
    let lines = sample_lines();
    let follower = Running::start(&[
        "flows", &log, "--follow", "--output", "json", "--limit", "1",
    ]);
    assert_eq!(follower.next_line(), lines[7]);
    let append = |line: &str| {
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&log)
            .expect("open the log");
        writeln!(file, "{line}").expect("append");
    };
    append(lines[0]);
    assert_eq!(follower.next_line(), lines[0]);
    // Rotated as the daemon does: renamed to .1, and a new file.
    std::fs::rename(&log, format!("{log}.1")).expect("rotate");
    append(lines[1]);
    assert_eq!(follower.next_line(), lines[1]);
}

/// Serves the flow API on 127.0.0.1:0 with the sample in its ring.
fn serve_sample() -> (SocketAddr, Arc<RecentFlows>, tokio::runtime::Runtime) {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let recent = Arc::new(RecentFlows::new(RecentLimits::DEFAULT));
    recent.push_lines(SAMPLE.as_bytes());
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("a port");
    let addr = listener.local_addr().expect("its address");
    runtime.spawn(api::serve_on(listener, recent.clone()));
    (addr, recent, runtime)
}

#[test]
fn asking_a_daemon_applies_its_filters_limit_and_follow() {
    let (addr, recent, _runtime) = serve_sample();
    let url = format!("http://{addr}");
    let lines = sample_lines();
    let output = netseg(&[
        "flows",
        "--daemon",
        &url,
        "--verdict",
        "deny",
        "--limit",
        "2",
        "--output",
        "json",
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(text(&output.stdout), [lines[5], lines[7], ""].join("\n"));
    let output = netseg(&["flows", "--daemon", &url, "--port", "99999"]);
    assert_eq!(output.status.code(), Some(2));
    let follower = Running::start(&[
        "flows",
        "--daemon",
        &url,
        "--kind",
        "deny-count",
        "--follow",
        "--output",
        "json",
    ]);
    assert_eq!(follower.next_line(), lines[5]);
    let mut more = FlowRecord::parse(lines[5]).expect("a record");
    more.count = Some(7);
    let more = serde_json::to_string(&more).expect("a line");
    recent.push_lines(format!("{}\n{more}\n", lines[0]).as_bytes());
    assert_eq!(follower.next_line(), more);
}

#[test]
fn explain_takes_a_flow_record_and_refuses_one_without_a_connection() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let dir = dir.path().to_str().expect("a UTF-8 path");
    let output = netseg(&["explain", dir, "--flow", sample_lines()[5]]);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        text(&output.stderr),
        "netseg explain: a deny-count record counts denials at data/db without their \
         connections: there is no connection to explain\n"
    );
    let output = netseg(&["explain", dir, "--flow", "-", "--from", "app/web"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("cannot be used with"),
        "{}",
        text(&output.stderr)
    );
}
