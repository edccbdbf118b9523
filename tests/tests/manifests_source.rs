//! The manifests source on real traffic: a malformed edit keeps the last
//! good object enforced and names what is wrong; `netseg check` validates
//! offline; SIGTERM detaches the programs.

mod common;

use std::process::Command;

use anyhow::Result;
use common::{CLIENT_TO_SERVER, world};
use netseg_testbed::{Family, PROBE_TIMEOUT, TcpEchoServer, netseg_binary, tcp_probe};

/// CLIENT_TO_SERVER with the server's port made invalid.
fn broken_client_to_server() -> String {
    CLIENT_TO_SERVER.replace("{ port: http }", "{ port: 80, endPort: 70 }")
}

#[test]
fn a_malformed_edit_keeps_the_last_good_policy_and_names_the_field() -> Result<()> {
    let mut w = world("lastgood")?;
    let _server = TcpEchoServer::start(&w.b, 80)?;
    w.allow_client_to_server()?;
    assert!(tcp_probe(&w.a, w.b.ip(Family::V4), 80, PROBE_TIMEOUT)?);
    w.apply(|m| {
        m.policy("client-to-server", &broken_client_to_server())
            .map(drop)
    })?;
    let status = w.daemon.status()?.expect("a status after the reload");
    let problem = status
        .problems
        .iter()
        .find(|p| p.contains("policy-client-to-server.yaml"))
        .unwrap_or_else(|| panic!("a problem naming the file: {:?}", status.problems));
    assert!(
        problem.contains("NetworkPolicy app/server-from-client"),
        "{problem}"
    );
    assert!(
        problem.contains("spec.ingress[0].ports[0].endPort"),
        "{problem}"
    );
    assert!(
        tcp_probe(&w.a, w.b.ip(Family::V4), 80, PROBE_TIMEOUT)?,
        "the last good version stays enforced"
    );
    // Deleting the file removes both policies, the good and the broken.
    w.apply(|m| m.remove_policy("client-to-server"))?;
    assert!(!tcp_probe(&w.a, w.b.ip(Family::V4), 80, PROBE_TIMEOUT)?);
    Ok(())
}

#[test]
fn sigterm_detaches_cleanly() -> Result<()> {
    let mut w = world("sigterm")?;
    let _server = TcpEchoServer::start(&w.b, 80)?;
    assert!(
        !tcp_probe(&w.a, w.b.ip(Family::V4), 80, PROBE_TIMEOUT)?,
        "denied while enforced"
    );
    let exit = w.daemon.stop()?;
    assert!(
        exit.success(),
        "the daemon exits cleanly on SIGTERM: {exit}"
    );
    // With the programs gone the pods talk unfiltered: nothing was left attached.
    assert!(
        tcp_probe(&w.a, w.b.ip(Family::V4), 80, PROBE_TIMEOUT)?,
        "detached"
    );
    Ok(())
}

#[test]
fn check_accepts_the_examples_and_names_each_problem() -> Result<()> {
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
    let good = Command::new(netseg_binary()?)
        .args(["check", examples])
        .output()?;
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stdout)
    );
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("policy.yaml"), broken_client_to_server())?;
    let bad = Command::new(netseg_binary()?)
        .arg("check")
        .arg(dir.path())
        .output()?;
    assert!(!bad.status.success());
    let stdout = String::from_utf8_lossy(&bad.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one line per problem: {stdout}");
    assert!(
        lines[0].contains(
            "policy.yaml: NetworkPolicy app/server-from-client: spec.ingress[0].ports[0].endPort"
        ),
        "{stdout}"
    );
    Ok(())
}

#[test]
fn explain_names_the_deciding_rule_at_each_end() -> Result<()> {
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
    let explain = |args: &[&str]| -> Result<(bool, String)> {
        let out = Command::new(netseg_binary()?)
            .arg("explain")
            .arg(examples)
            .args(args)
            .output()?;
        Ok((
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        ))
    };
    let (allowed, text) = explain(&[
        "--from",
        "shop/frontend",
        "--to",
        "shop/backend",
        "--port",
        "8080",
    ])?;
    assert!(allowed, "{text}");
    assert!(
        text.contains(
            "egress at shop/frontend: allowed by NetworkPolicy shop/frontend-to-backend egress[0]"
        ),
        "{text}"
    );
    assert!(
        text.contains("ingress at shop/backend: allowed by NetworkPolicy shop/backend ingress[0]"),
        "{text}"
    );
    let (allowed, text) = explain(&[
        "--from",
        "shop/frontend",
        "--to",
        "data/db",
        "--port",
        "5432",
        "--ipv6",
    ])?;
    assert!(!allowed, "{text}");
    assert!(text.contains("egress at shop/frontend: denied"), "{text}");
    assert!(text.contains("verdict: denied"), "{text}");
    Ok(())
}
