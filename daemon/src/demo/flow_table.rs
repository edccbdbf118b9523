//! The flow log as a table: one line a record, with the rule that decided
//! and, for an audit preview, what the audit policies would have decided.

use std::fmt::Write as _;

use serde_json::Value;

pub fn flow_table(flows: &[Value]) -> String {
    let mut table = format!(
        "flow log ({} records)\n{:<8} {:<7} {:<20} {:<20} {:<20} {:<9} {}\n",
        flows.len(),
        "verdict",
        "dir",
        "endpoint",
        "source",
        "destination",
        "proto",
        "decided by"
    );
    for flow in flows {
        let port = flow["dst_port"]
            .as_u64()
            .map_or_else(String::new, |p| format!("/{p}"));
        let _ = writeln!(
            table,
            "{:<8} {:<7} {:<20} {:<20} {:<20} {:<9} {}{}{}",
            text(&flow["verdict"]),
            text(&flow["direction"]),
            text(&flow["endpoint"]),
            party(flow, "src"),
            party(flow, "dst"),
            format!("{}{port}", text(&flow["protocol"])),
            decision(flow),
            passed_by(flow),
            audit(flow),
        );
    }
    table
}

fn text(value: &Value) -> String {
    value.as_str().map_or_else(|| "-".to_owned(), str::to_owned)
}

/// The pod, or the address when the party is not a pod.
fn party(flow: &Value, side: &str) -> String {
    flow[format!("{side}_pod")]
        .as_str()
        .map_or_else(|| text(&flow[format!("{side}_ip")]), str::to_owned)
}

fn decision(flow: &Value) -> String {
    let aggregated = match flow["count"].as_u64() {
        Some(count) if flow["kind"] == "deny-count" => {
            format!(", {count} packets aggregated")
        }
        _ => String::new(),
    };
    format!(
        "{} ({}{aggregated})",
        text(&flow["decided_by"]),
        text(&flow["reason"])
    )
}

fn passed_by(flow: &Value) -> String {
    flow["passed_by"]
        .as_str()
        .map_or_else(String::new, |rules| format!(", after Pass by {rules}"))
}

fn audit(flow: &Value) -> String {
    flow["audit"].as_str().map_or_else(String::new, |audit| {
        format!("  [{audit}: {}]", text(&flow["audit_by"]))
    })
}
