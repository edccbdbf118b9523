use clap::Parser;

use super::*;
use crate::flows::query::FILTER_NAMES;

const SAMPLE: &str = include_str!("../../flows/testdata/sample.jsonl");

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    flows: FlowsArgs,
}

fn args(argv: &[&str]) -> FlowsArgs {
    let argv = std::iter::once("netseg-flows").chain(argv.iter().copied());
    Cli::try_parse_from(argv)
        .unwrap_or_else(|error| panic!("{error}"))
        .flows
}

#[test]
fn every_filter_is_a_flag_of_the_same_name() {
    for name in FILTER_NAMES {
        let flag = format!("--{name}");
        let parsed = args(&["flows.jsonl", &flag, "x"]);
        assert_eq!(parsed.filters.pairs(), [(name, "x")]);
    }
    let parsed = args(&["f", "--pod", "web", "--pod", "db", "--port", "80"]);
    assert_eq!(
        parsed.filters.pairs(),
        [("pod", "web"), ("pod", "db"), ("port", "80")]
    );
}

/// The sample's records 0-2 in `flows.jsonl.2`, 3-5 with a line that is no
/// record in `flows.jsonl.1`, and 6-7 in `flows.jsonl`, its last line not
/// ended.
fn rotated_log() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let lines: Vec<&str> = SAMPLE.lines().collect();
    let write =
        |name: &str, text: String| std::fs::write(dir.path().join(name), text).expect("write");
    write(
        "flows.jsonl.2",
        format!("{}\n{}\n{}\n", lines[0], lines[1], lines[2]),
    );
    write(
        "flows.jsonl.1",
        format!(
            "{}\n{}\n{{\"schema\":1,\n\n{}\n",
            lines[3], lines[4], lines[5]
        ),
    );
    write("flows.jsonl", format!("{}\n{}", lines[6], lines[7]));
    dir
}

fn read(dir: &Path, argv: &[&str]) -> String {
    let mut argv = argv.to_vec();
    let path = dir.join("flows.jsonl");
    let path = path.to_str().expect("a UTF-8 path");
    argv.push(path);
    let args = args(&argv);
    let filter = FlowFilter::parse(args.filters.pairs(), SystemTime::now()).expect("a filter");
    let mut out = Vec::new();
    let records = Records::new(&args, args.limit, &mut out);
    read_log(&dir.join("flows.jsonl"), &filter, false, records).expect("read");
    String::from_utf8(out).expect("utf-8")
}

#[test]
fn the_log_is_read_oldest_file_first_past_lines_that_are_no_records() {
    let dir = rotated_log();
    let lines: Vec<&str> = SAMPLE.lines().collect();
    let denied = read(dir.path(), &["--output", "json", "--verdict", "deny"]);
    assert_eq!(
        denied,
        [lines[2], lines[4], lines[5], lines[7], ""].join("\n")
    );
    assert_eq!(read(dir.path(), &["--output", "json"]), SAMPLE);
}

#[test]
fn limit_keeps_the_latest_matching_records() {
    let dir = rotated_log();
    let lines: Vec<&str> = SAMPLE.lines().collect();
    let latest = read(
        dir.path(),
        &["--output", "json", "--limit", "3", "--kind", "deny"],
    );
    assert_eq!(latest, [lines[2], lines[4], lines[7], ""].join("\n"));
    let summary = read(dir.path(), &["--summary", "--limit", "2"]);
    assert!(
        summary.starts_with("2 records, 5 packets, 230 bytes\n"),
        "{summary}"
    );
}
