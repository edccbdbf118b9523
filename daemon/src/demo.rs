//! `netseg demo`: an isolated node namespace with the pods of `examples/`,
//! the daemon enforcing the example policies under default deny, allowed
//! and denied traffic, and the resulting flow log as a table.

use std::{fmt::Write as _, net::IpAddr, time::Duration};

use anyhow::{Context as _, Result, bail};
use netseg_testbed::{
    Daemon, Family, Manifests, Node, Pod, TcpEchoServer, TcpSession, ping, require_root, tcp_probe,
};
use serde::Deserialize as _;
use serde_json::Value;

const NAMESPACES: &str = include_str!("../../examples/namespaces.yaml");
const PODS: &str = include_str!("../../examples/pods.yaml");
const SHOP_POLICIES: &str = include_str!("../../examples/shop-policies.yaml");
const DATA_POLICIES: &str = include_str!("../../examples/data-policies.yaml");

const TIMEOUT: Duration = Duration::from_secs(1);

struct Pods {
    frontend: Pod,
    backend: Pod,
    db: Pod,
}

/// One connection attempt of the demo and what the policies should make of it.
struct Attempt<'a> {
    what: &'static str,
    from: Either<'a>,
    to: &'a Pod,
    port: Option<u16>,
    family: Family,
    allowed: bool,
}

enum Either<'a> {
    Pod(&'a Pod),
    Node(&'a Node),
}

pub fn run() -> Result<()> {
    require_root();
    let node = Node::new("demo-node")?;
    let pods = Pods {
        frontend: node.add_pod("shop/frontend")?,
        backend: node.add_pod("shop/backend")?,
        db: node.add_pod("data/db")?,
    };
    let manifests = Manifests::new()?;
    manifests.write("namespaces.yaml", NAMESPACES)?;
    manifests.write("pods.yaml", &pods_with_addresses(&pods)?)?;
    manifests.write("shop-policies.yaml", SHOP_POLICIES)?;
    manifests.write("data-policies.yaml", DATA_POLICIES)?;
    println!(
        "node {} with shop/frontend, shop/backend, data/db; policies from examples/ under default deny\n",
        node.name()
    );
    let binary = std::env::current_exe().context("locating the netseg binary")?;
    let mut daemon = Daemon::start_binary(
        &binary,
        &node,
        manifests.dir(),
        &["--default-action", "deny"],
    )?;
    daemon.wait_ready(3)?;
    let servers = [
        TcpEchoServer::start(&pods.frontend, 80)?,
        TcpEchoServer::start(&pods.backend, 8080)?,
        TcpEchoServer::start(&pods.db, 5432)?,
    ];
    let mut wrong = run_attempts(&node, &pods)?;
    wrong += usize::from(!revoke_live_connection(&pods, &manifests, &mut daemon)?);
    // The exporter flushes after each batch of events; give it a moment.
    std::thread::sleep(Duration::from_millis(500));
    print!("{}", flow_table(&daemon.flows()?));
    drop(servers);
    daemon.stop()?;
    if wrong > 0 {
        eprintln!("--- daemon log ---\n{}", daemon.log());
        bail!("{wrong} connection(s) did not get the verdict the policies call for");
    }
    println!("\nevery connection got the verdict the policies call for; cleaning up");
    Ok(())
}

/// Removes db's policy while backend holds a connection to it: the
/// established connection is cut, not only new ones. True when it was.
fn revoke_live_connection(pods: &Pods, manifests: &Manifests, daemon: &mut Daemon) -> Result<bool> {
    let mut session = TcpSession::open(&pods.backend, pods.db.ip(Family::V4), 5432, TIMEOUT)?;
    let before = session.exchange(TIMEOUT);
    let reloads = daemon.status()?.map_or(0, |s| s.reloads);
    manifests.remove("data-policies.yaml")?;
    daemon.wait_reload_after(reloads)?;
    let after = session.exchange(TIMEOUT);
    let state = |open| if open { "open" } else { "cut" };
    println!(
        "live backend -> db connection before / after removing data/db's policy: {} / {}{}\n",
        state(before),
        state(after),
        if before && !after { "" } else { "  <- WRONG" }
    );
    Ok(before && !after)
}

/// The example pods with the addresses the demo's namespaces actually have.
fn pods_with_addresses(pods: &Pods) -> Result<String> {
    let mut documents = Vec::new();
    for document in serde_yaml::Deserializer::from_str(PODS) {
        let mut pod = serde_yaml::Value::deserialize(document)?;
        let name = pod["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let target = [&pods.frontend, &pods.backend, &pods.db]
            .into_iter()
            .find(|p| p.name() == name)
            .with_context(|| format!("examples/pods.yaml has an unexpected pod {name}"))?;
        let (v4, v6) = (
            target.ip(Family::V4).to_string(),
            target.ip(Family::V6).to_string(),
        );
        pod["status"]["podIP"] = v4.clone().into();
        pod["status"]["podIPs"] =
            serde_yaml::to_value(serde_json::json!([{ "ip": v4 }, { "ip": v6 }]))?;
        documents.push(serde_yaml::to_string(&pod)?);
    }
    Ok(documents.join("---\n"))
}

fn run_attempts(node: &Node, pods: &Pods) -> Result<usize> {
    let attempts = [
        Attempt {
            what: "frontend -> backend:http",
            from: Either::Pod(&pods.frontend),
            to: &pods.backend,
            port: Some(8080),
            family: Family::V4,
            allowed: true,
        },
        Attempt {
            what: "frontend -> backend:http (IPv6)",
            from: Either::Pod(&pods.frontend),
            to: &pods.backend,
            port: Some(8080),
            family: Family::V6,
            allowed: true,
        },
        Attempt {
            what: "backend -> db:postgres",
            from: Either::Pod(&pods.backend),
            to: &pods.db,
            port: Some(5432),
            family: Family::V4,
            allowed: true,
        },
        Attempt {
            what: "frontend -> db:postgres",
            from: Either::Pod(&pods.frontend),
            to: &pods.db,
            port: Some(5432),
            family: Family::V4,
            allowed: false,
        },
        Attempt {
            what: "db -> backend:http",
            from: Either::Pod(&pods.db),
            to: &pods.backend,
            port: Some(8080),
            family: Family::V4,
            allowed: false,
        },
        Attempt {
            what: "backend -> frontend:80",
            from: Either::Pod(&pods.backend),
            to: &pods.frontend,
            port: Some(80),
            family: Family::V4,
            allowed: false,
        },
        Attempt {
            what: "frontend -> backend ping",
            from: Either::Pod(&pods.frontend),
            to: &pods.backend,
            port: None,
            family: Family::V4,
            allowed: false,
        },
        Attempt {
            what: "node -> backend:http (kubelet probe)",
            from: Either::Node(node),
            to: &pods.backend,
            port: Some(8080),
            family: Family::V4,
            allowed: true,
        },
    ];
    println!("{:<40} {:<10} {:<10}", "connection", "expected", "observed");
    let mut wrong = 0;
    for attempt in &attempts {
        let connected = attempt.connect()?;
        let verdict = |allowed| if allowed { "allowed" } else { "denied" };
        let mark = if connected == attempt.allowed {
            ""
        } else {
            "  <- WRONG"
        };
        wrong += usize::from(connected != attempt.allowed);
        println!(
            "{:<40} {:<10} {:<10}{mark}",
            attempt.what,
            verdict(attempt.allowed),
            verdict(connected)
        );
    }
    println!();
    Ok(wrong)
}

impl Attempt<'_> {
    fn connect(&self) -> Result<bool> {
        let address: IpAddr = self.to.ip(self.family);
        match (&self.from, self.port) {
            (Either::Pod(pod), Some(port)) => tcp_probe(*pod, address, port, TIMEOUT),
            (Either::Node(node), Some(port)) => tcp_probe(*node, address, port, TIMEOUT),
            (Either::Pod(pod), None) => ping(*pod, address, TIMEOUT),
            (Either::Node(node), None) => ping(*node, address, TIMEOUT),
        }
    }
}

fn flow_table(flows: &[Value]) -> String {
    let text = |value: &Value| value.as_str().map_or_else(|| "-".to_owned(), str::to_owned);
    let mut table = format!(
        "flow log ({} records)\n{:<8} {:<7} {:<15} {:<14} {:<14} {:<9} {}\n",
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
        let reason = text(&flow["reason"]);
        let decided = text(&flow["decided_by"]);
        let aggregated = match flow["count"].as_u64() {
            Some(count) if flow["aggregated"] == Value::Bool(true) => {
                format!(", {count} packets aggregated")
            }
            _ => String::new(),
        };
        let _ = writeln!(
            table,
            "{:<8} {:<7} {:<15} {:<14} {:<14} {:<9} {decided} ({reason}{aggregated})",
            text(&flow["verdict"]),
            text(&flow["direction"]),
            text(&flow["endpoint"]),
            flow["src_pod"]
                .as_str()
                .map_or_else(|| text(&flow["src_ip"]), str::to_owned),
            flow["dst_pod"]
                .as_str()
                .map_or_else(|| text(&flow["dst_ip"]), str::to_owned),
            format!("{}{port}", text(&flow["protocol"])),
        );
    }
    table
}
