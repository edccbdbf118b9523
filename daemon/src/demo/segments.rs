//! The second part of the demo: the zones and conduits of
//! `examples/segments/` (example 1 of docs/segments.md) and an audit-mode
//! SegmentPolicy previewing a tightening (example 3), under default allow.
//! Traffic flows as the enforced policy says while the audit policy's
//! `would-deny` verdicts appear in the flow records.

use std::{net::IpAddr, path::Path, time::Duration};

use anyhow::Result;
use netseg_testbed::{Daemon, Family, Manifests, Node, Outside, Pod, TcpEchoServer, UdpEchoServer};
use serde_json::Value;

use super::attempts::{Attempt, Party, Probe, run_attempts};
use super::{flow_table::flow_table, keep, pods_with_addresses, stop};

const CLUSTER: &str = include_str!("../../../examples/segments/cluster.yaml");
const PCI_ZONE: &str = include_str!("../../../examples/segments/pci-zone.yaml");
const AUDIT_PREVIEW: &str = include_str!("../../../examples/segments/audit-preview.yaml");

struct Zones {
    web: Pod,
    api: Pod,
    db: Pod,
    etl: Pod,
    coredns: Pod,
    outside: Outside,
}

/// Runs the segments part on `node`; returns how many things came out wrong.
pub fn run(node: &Node, binary: &Path) -> Result<usize> {
    let zones = Zones {
        web: node.add_pod("storefront/web")?,
        api: node.add_pod("payments/api")?,
        db: node.add_pod("payments/db")?,
        etl: node.add_pod("reporting/etl")?,
        coredns: node.add_pod("kube-system/coredns")?,
        outside: Outside::attach(node)?,
    };
    let manifests = Manifests::new()?;
    let pods = [
        &zones.web,
        &zones.api,
        &zones.db,
        &zones.etl,
        &zones.coredns,
    ];
    manifests.write("cluster.yaml", &pods_with_addresses(CLUSTER, &pods)?)?;
    manifests.write("pci-zone.yaml", PCI_ZONE)?;
    manifests.write("audit-preview.yaml", AUDIT_PREVIEW)?;
    println!(
        "\nnode {} with storefront/web, payments/api, payments/db, reporting/etl, \
         kube-system/coredns and a host outside ({});\nsegments from examples/segments/ under \
         default allow: the zones pci, web and card-processor with pci's conduits \
         (pci-zone.yaml),\nand web-egress-lockdown in audit mode (audit-preview.yaml)\n",
        node.name(),
        Outside::ipv4()
    );
    let mut daemon = Daemon::start_binary(
        binary,
        node,
        manifests.dir(),
        &["--default-action", "allow"],
    )?;
    daemon.wait_ready(pods.len() as u64)?;
    let servers = (
        [
            TcpEchoServer::start(&zones.web, 8080)?,
            TcpEchoServer::start(&zones.api, 443)?,
            TcpEchoServer::start(&zones.api, 22)?,
            TcpEchoServer::start(&zones.db, 5432)?,
            TcpEchoServer::start(&zones.etl, 8080)?,
            TcpEchoServer::start(&zones.outside, 443)?,
            TcpEchoServer::start(&zones.outside, 80)?,
        ],
        UdpEchoServer::start(&zones.coredns, 53)?,
    );
    let mut wrong = run_attempts(&attempts(node, &zones))?;
    // The exporter flushes after each batch of events; give it a moment.
    std::thread::sleep(Duration::from_millis(500));
    let flows = daemon.flows()?;
    print!("{}", flow_table(&flows));
    wrong += check_audit(&zones, &flows);
    drop(servers);
    keep("segments", &daemon, manifests.dir())?;
    stop(daemon, wrong)?;
    Ok(wrong)
}

fn attempts<'a>(node: &'a Node, zones: &'a Zones) -> Vec<Attempt<'a>> {
    let (web, api, db, etl, coredns, outside) = (
        Party::Pod(&zones.web),
        Party::Pod(&zones.api),
        Party::Pod(&zones.db),
        Party::Pod(&zones.etl),
        Party::Pod(&zones.coredns),
        Party::Outside(&zones.outside),
    );
    vec![
        Attempt::new(
            "web -> api:443 (the conduit)",
            web,
            api,
            Probe::Tcp(443),
            true,
        ),
        Attempt::new("web -> api:443 (IPv6)", web, api, Probe::Tcp(443), true).ipv6(),
        Attempt::new("web -> api:22", web, api, Probe::Tcp(22), false),
        Attempt::new("web -> db:5432", web, db, Probe::Tcp(5432), false),
        Attempt::new(
            "api -> db:5432 (within pci)",
            api,
            db,
            Probe::Tcp(5432),
            true,
        ),
        Attempt::new("api -> coredns udp/53", api, coredns, Probe::Udp(53), true),
        Attempt::new(
            "api -> card processor:443",
            api,
            outside,
            Probe::Tcp(443),
            true,
        ),
        Attempt::new(
            "api -> card processor:80",
            api,
            outside,
            Probe::Tcp(80),
            false,
        ),
        Attempt::new("db -> web:8080", db, web, Probe::Tcp(8080), false),
        Attempt::new("etl -> db:5432", etl, db, Probe::Tcp(5432), false),
        Attempt::new(
            "outside host -> api:443",
            outside,
            api,
            Probe::Tcp(443),
            false,
        ),
        Attempt::new(
            "node -> api:443 (kubelet probe)",
            Party::Node(node),
            api,
            Probe::Tcp(443),
            true,
        ),
        Attempt::new("web -> coredns udp/53", web, coredns, Probe::Udp(53), true),
        Attempt::new(
            "web -> card processor:443",
            web,
            outside,
            Probe::Tcp(443),
            true,
        ),
        Attempt::new("web -> etl:8080", web, etl, Probe::Tcp(8080), true),
    ]
}

/// The audit verdicts of web's egress: `web-egress-lockdown` would deny
/// everything but DNS and the payments API on 443, while the enforced
/// policy (web's posture, Accept) lets all of it out. Prints what the
/// records say and returns how many differ from that.
fn check_audit(zones: &Zones, flows: &[Value]) -> usize {
    let api = zones.api.ip(Family::V4);
    let expected = [
        ("web -> api tcp/443", api, 443, None),
        (
            "web -> coredns udp/53",
            zones.coredns.ip(Family::V4),
            53,
            None,
        ),
        ("web -> api tcp/22", api, 22, Some("audit-would-deny")),
        (
            "web -> db tcp/5432",
            zones.db.ip(Family::V4),
            5432,
            Some("audit-would-deny"),
        ),
        (
            "web -> card processor tcp/443",
            Outside::ipv4().into(),
            443,
            Some("audit-would-deny"),
        ),
        (
            "web -> etl tcp/8080",
            zones.etl.ip(Family::V4),
            8080,
            Some("audit-would-deny"),
        ),
    ];
    println!(
        "\n{:<44} {:<18} {:<18}",
        "audit at web's egress", "expected", "recorded"
    );
    let mut wrong = 0;
    for (what, address, port, audit) in expected {
        let recorded = web_egress_audits(flows, address, port);
        let ok = recorded.len() == 1 && recorded[0] == audit;
        wrong += usize::from(!ok);
        let shown = recorded
            .iter()
            .map(|audit| audit.unwrap_or("-"))
            .collect::<Vec<_>>()
            .join(", ");
        println!(
            "{what:<44} {:<18} {:<18}{}",
            audit.unwrap_or("-"),
            if shown.is_empty() {
                "no record"
            } else {
                &shown
            },
            if ok { "" } else { "  <- WRONG" }
        );
    }
    wrong
}

/// The audit field of every new-connection record at web's egress toward
/// `address` and `port`: one per connection.
fn web_egress_audits(flows: &[Value], address: IpAddr, port: u16) -> Vec<Option<&str>> {
    flows
        .iter()
        .filter(|flow| {
            flow["endpoint"] == "storefront/web"
                && flow["direction"] == "egress"
                && flow["reason"] == "new-connection"
                && flow["dst_ip"].as_str() == Some(&address.to_string())
                && flow["dst_port"].as_u64() == Some(port.into())
        })
        .map(|flow| flow["audit"].as_str())
        .collect()
}
