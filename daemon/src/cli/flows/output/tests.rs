//! The output of `netseg flows` for the records of
//! `flows/testdata/sample.jsonl` (see `flows::query`'s tests).

use super::*;
use crate::flows::query::Tally;

const SAMPLE: &str = include_str!("../../../flows/testdata/sample.jsonl");

fn records() -> impl Iterator<Item = (FlowRecord, &'static str)> {
    SAMPLE
        .lines()
        .map(|line| (FlowRecord::parse(line).expect("a sample record"), line))
}

fn printed(
    format: Format,
    print: impl FnOnce(&mut Printer<&mut Vec<u8>>) -> io::Result<()>,
) -> String {
    let mut out = Vec::new();
    let mut printer = Printer::new(&mut out, format, None);
    print(&mut printer).expect("printed");
    printer.flush().expect("flushed");
    String::from_utf8(out).expect("utf-8")
}

fn print_sample(printer: &mut Printer<&mut Vec<u8>>) -> io::Result<()> {
    records().try_for_each(|(record, line)| printer.record(&record, line))
}

#[test]
fn the_table_names_parties_traffic_and_decisions_and_how_to_explain_denials() {
    let table = printed(Format::Table, print_sample);
    let expected = "\
TIME                     KIND       VERDICT REASON         SRC                    DST                    SERVICE   PACKETS     BYTES DECIDED-BY
2025-03-01T10:00:00.000Z open       allow   new-connection app/web                data/db                tcp/5432        -         - NetworkPolicy data/db-from-web ingress[0] (Accept)
2025-03-01T10:00:01.000Z open       allow   new-connection app/web                kube-system/coredns    udp/53          -         - NetworkPolicy app/web-egress egress[0] \"dns\" (Accept)
2025-03-01T10:00:02.000Z deny       deny    policy-denied  203.0.113.7:51000      data/db                tcp/5432        1         - ClusterNetworkPolicy guard-pci ingress[1] \"no-outsiders\" (Deny)
  explain: netseg explain DIR --from 203.0.113.7 --to data/db --protocol tcp --port 5432
2025-03-01T10:01:00.000Z update     allow   established    app/web                data/db                tcp/5432       18      6200 NetworkPolicy data/db-from-web ingress[0] (Accept)
2025-03-01T10:01:30.000Z deny       deny    policy-denied  app/web                data/db                tcp/22          1         - default-deny
  explain: netseg explain DIR --from app/web --to data/db --protocol tcp --port 22
2025-03-01T10:01:31.000Z deny-count deny    policy-denied  ?                      data/db                ?              40         - unattributed
2025-03-01T10:02:05.500Z end        allow   closed         app/web                data/db                tcp/5432        4       230 NetworkPolicy data/db-from-web ingress[0] (Accept)
2025-03-01T10:03:00.000Z deny       deny    policy-denied  app/web                data/db                tcp/5432        1         - default-deny
  explain: netseg explain DIR --from app/web --to data/db --protocol tcp --port 5432 --ipv6
";
    assert_eq!(table, expected);
}

#[test]
fn a_denial_the_datapath_decided_has_no_rule_to_explain() {
    let (mut spoofed, _) = records().nth(4).expect("a denial");
    spoofed.reason = "spoofed".into();
    spoofed.decided_by = "datapath".into();
    let table = printed(Format::Table, |printer| printer.record(&spoofed, ""));
    assert_eq!(table.lines().count(), 2, "{table}");
    assert!(!table.contains("explain:"), "{table}");
}

#[test]
fn json_output_is_the_records_as_read() {
    assert_eq!(printed(Format::Json, print_sample), SAMPLE);
}

#[test]
fn the_summary_for_people_and_for_tools() {
    let mut tally = Tally::default();
    records().for_each(|(record, _)| tally.add(&record));
    let table = printed(Format::Table, |printer| printer.summary(&tally.summary(2)));
    assert!(
        table.starts_with("8 records, 65 packets, 6430 bytes\n"),
        "{table}"
    );
    assert!(
        table.ends_with(
            "\
top denied (source -> destination service)        RECORDS    PACKETS        BYTES
  ? -> data/db ?                                        1         40            0
  203.0.113.7 -> data/db tcp/5432                       1          1            0
"
        ),
        "{table}"
    );
    let json = printed(Format::Json, |printer| printer.summary(&tally.summary(1)));
    let summary: serde_json::Value = serde_json::from_str(&json).expect("one JSON object");
    assert_eq!(summary["total"]["packets"], 65);
    assert_eq!(summary["sources"][0]["key"], "app/web");
    assert_eq!(summary["denied"][0]["packets"], 40);
}
