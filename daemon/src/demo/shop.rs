//! The first part of the demo: the shop and its database under default
//! deny with NetworkPolicies, and a revocation that cuts a live connection.

use std::{path::Path, time::Duration};

use anyhow::Result;
use netseg_testbed::{Daemon, Family, Manifests, Node, Pod, TcpEchoServer, TcpSession};

use super::attempts::{Attempt, Party, Probe, run_attempts};
use super::{TIMEOUT, flow_table::flow_table, keep, pods_with_addresses, stop};

const NAMESPACES: &str = include_str!("../../../examples/namespaces.yaml");
const PODS: &str = include_str!("../../../examples/pods.yaml");
const SHOP_POLICIES: &str = include_str!("../../../examples/shop-policies.yaml");
const DATA_POLICIES: &str = include_str!("../../../examples/data-policies.yaml");

struct Pods {
    frontend: Pod,
    backend: Pod,
    db: Pod,
}

/// Runs the shop part on `node`; returns how many things came out wrong.
pub fn run(node: &Node, binary: &Path) -> Result<usize> {
    let pods = Pods {
        frontend: node.add_pod("shop/frontend")?,
        backend: node.add_pod("shop/backend")?,
        db: node.add_pod("data/db")?,
    };
    let manifests = Manifests::new()?;
    manifests.write("namespaces.yaml", NAMESPACES)?;
    manifests.write(
        "pods.yaml",
        &pods_with_addresses(PODS, &[&pods.frontend, &pods.backend, &pods.db])?,
    )?;
    manifests.write("shop-policies.yaml", SHOP_POLICIES)?;
    manifests.write("data-policies.yaml", DATA_POLICIES)?;
    println!(
        "node {} with shop/frontend, shop/backend, data/db; policies from examples/ under default deny\n",
        node.name()
    );
    let mut daemon =
        Daemon::start_binary(binary, node, manifests.dir(), &["--default-action", "deny"])?;
    daemon.wait_ready(3)?;
    let servers = [
        TcpEchoServer::start(&pods.frontend, 80)?,
        TcpEchoServer::start(&pods.backend, 8080)?,
        TcpEchoServer::start(&pods.db, 5432)?,
    ];
    let mut wrong = run_attempts(&attempts(node, &pods))?;
    wrong += usize::from(!revoke_live_connection(&pods, &manifests, &mut daemon)?);
    // The exporter flushes after each batch of events; give it a moment.
    std::thread::sleep(Duration::from_millis(500));
    print!("{}", flow_table(&daemon.flows()?));
    drop(servers);
    keep("shop", &daemon, manifests.dir())?;
    stop(daemon, wrong)?;
    Ok(wrong)
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

fn attempts<'a>(node: &'a Node, pods: &'a Pods) -> Vec<Attempt<'a>> {
    let (frontend, backend, db) = (
        Party::Pod(&pods.frontend),
        Party::Pod(&pods.backend),
        Party::Pod(&pods.db),
    );
    vec![
        Attempt::new(
            "frontend -> backend:http",
            frontend,
            backend,
            Probe::Tcp(8080),
            true,
        ),
        Attempt::new(
            "frontend -> backend:http (IPv6)",
            frontend,
            backend,
            Probe::Tcp(8080),
            true,
        )
        .ipv6(),
        Attempt::new(
            "backend -> db:postgres",
            backend,
            db,
            Probe::Tcp(5432),
            true,
        ),
        Attempt::new(
            "frontend -> db:postgres",
            frontend,
            db,
            Probe::Tcp(5432),
            false,
        ),
        Attempt::new("db -> backend:http", db, backend, Probe::Tcp(8080), false),
        Attempt::new(
            "backend -> frontend:80",
            backend,
            frontend,
            Probe::Tcp(80),
            false,
        ),
        Attempt::new(
            "frontend -> backend ping",
            frontend,
            backend,
            Probe::Ping,
            false,
        ),
        Attempt::new(
            "node -> backend:http (kubelet probe)",
            Party::Node(node),
            backend,
            Probe::Tcp(8080),
            true,
        ),
    ]
}
