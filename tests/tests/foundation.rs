//! The foundation on real traffic: the daemon in an isolated node namespace,
//! pods behind veth pairs, default-deny both ways, allowed connections and
//! their replies, flow records, revocation, and fail-closed pod start.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use netseg_testbed::{
    Family, PROBE_TIMEOUT, SctpReceiver, TcpEchoServer, TcpSession, UdpEchoServer, netseg_binary,
    ping, sctp_probe, tcp_probe, udp_request,
};

mod common;

use common::{FLOW_WAIT, world};

#[test]
fn an_endpoint_no_policy_allows_is_denied_both_ways() -> Result<()> {
    let w = world("deny")?;
    let _servers = [
        TcpEchoServer::start(&w.a, 80)?,
        TcpEchoServer::start(&w.b, 80)?,
    ];
    for family in [Family::V4, Family::V6] {
        assert!(
            !tcp_probe(&w.a, w.b.ip(family), 80, PROBE_TIMEOUT)?,
            "a -> b {family:?}"
        );
        assert!(
            !tcp_probe(&w.b, w.a.ip(family), 80, PROBE_TIMEOUT)?,
            "b -> a {family:?}"
        );
        assert!(
            !ping(&w.a, w.b.ip(family), PROBE_TIMEOUT)?,
            "ping a -> b {family:?}"
        );
    }
    // Kubelet probes from the node itself stay allowed unless --deny-node-traffic.
    assert!(
        tcp_probe(&w.node, w.b.ip(Family::V4), 80, PROBE_TIMEOUT)?,
        "node -> b"
    );
    Ok(())
}

#[test]
fn an_allowed_connection_succeeds_over_tcp_udp_icmp_and_both_families() -> Result<()> {
    let mut w = world("allow")?;
    let _tcp = TcpEchoServer::start(&w.b, 80)?;
    let _other = TcpEchoServer::start(&w.b, 81)?;
    let _udp = UdpEchoServer::start(&w.b, 53)?;
    w.allow_client_to_server()?;
    for family in [Family::V4, Family::V6] {
        assert!(
            tcp_probe(&w.a, w.b.ip(family), 80, PROBE_TIMEOUT)?,
            "tcp 80 {family:?}"
        );
        assert!(
            udp_request(&w.a, w.b.ip(family), 53, PROBE_TIMEOUT)?,
            "udp 53 {family:?}"
        );
        assert!(
            !tcp_probe(&w.a, w.b.ip(family), 81, PROBE_TIMEOUT)?,
            "tcp 81 is not allowed {family:?}"
        );
        // The server may answer but not open connections of its own.
        assert!(
            !tcp_probe(&w.b, w.a.ip(family), 80, PROBE_TIMEOUT)?,
            "b -> a {family:?}"
        );
    }
    // ICMP: egress allows every protocol to b, but b's ingress lists ports only.
    assert!(
        !ping(&w.a, w.b.ip(Family::V4), PROBE_TIMEOUT)?,
        "ping needs an ingress rule without ports"
    );
    // Both ends record the new connection, each naming the rule that admitted it.
    for (direction, policy, rule) in [
        ("egress", "client-to-server", "egress[0]"),
        ("ingress", "server-from-client", "ingress[0]"),
    ] {
        let allowed = w.daemon.wait_for_flow(
            |f| f["verdict"] == "allow" && f["dst_port"] == 80 && f["direction"] == direction,
            FLOW_WAIT,
        )?;
        assert_eq!(allowed["reason"], "new-connection");
        assert_eq!(allowed["policy_name"], policy);
        assert_eq!(allowed["policy_rule"], rule);
    }
    Ok(())
}

#[test]
fn sctp_is_enforced_by_crafted_packets() -> Result<()> {
    let mut w = world("sctp")?;
    let receiver = SctpReceiver::start(&w.b)?;
    w.allow_client_to_server()?;
    assert!(
        sctp_probe(&w.a, &receiver, w.b.ip(Family::V4), 9, PROBE_TIMEOUT)?,
        "SCTP 9 is allowed"
    );
    assert!(
        !sctp_probe(&w.a, &receiver, w.b.ip(Family::V4), 80, PROBE_TIMEOUT)?,
        "SCTP 80 is not: the http port is TCP"
    );
    Ok(())
}

#[test]
fn a_denied_attempt_produces_a_flow_record_with_verdict_and_reason() -> Result<()> {
    let w = world("flows")?;
    let _server = TcpEchoServer::start(&w.b, 80)?;
    assert!(!tcp_probe(&w.a, w.b.ip(Family::V4), 80, PROBE_TIMEOUT)?);
    let record = w.daemon.wait_for_flow(
        |f| f["verdict"] == "deny" && f["dst_port"] == 80 && f["direction"] == "egress",
        FLOW_WAIT,
    )?;
    assert_eq!(record["reason"], "policy-denied");
    assert_eq!(record["decided_by"], "default-deny");
    assert_eq!(record["protocol"], "tcp");
    assert_eq!(record["src_ip"], w.a.ipv4().to_string());
    assert_eq!(record["dst_ip"], w.b.ipv4().to_string());
    assert_eq!(record["endpoint"], "app/a");
    assert_eq!(record["src_pod"], "app/a");
    assert_eq!(record["dst_pod"], "app/b");
    Ok(())
}

#[test]
fn revoking_an_allow_cuts_an_established_connection() -> Result<()> {
    let mut w = world("revoke")?;
    let _server = TcpEchoServer::start(&w.b, 80)?;
    w.allow_client_to_server()?;
    let mut session = TcpSession::open(&w.a, w.b.ip(Family::V4), 80, PROBE_TIMEOUT)?;
    assert!(
        session.exchange(PROBE_TIMEOUT),
        "the connection carries data while allowed"
    );
    w.apply(|m| m.remove_policy("client-to-server"))?;
    assert!(
        !session.exchange(PROBE_TIMEOUT),
        "the established connection is cut"
    );
    let flows = w.daemon.flows()?;
    assert!(
        flows
            .iter()
            .any(|f| f["verdict"] == "deny" && f["reason"] == "revoked"),
        "a revoked flow record: {flows:?}"
    );
    Ok(())
}

#[test]
fn a_new_pod_interface_is_denied_before_its_policy_exists() -> Result<()> {
    let mut w = world("newpod")?;
    let c = w.node.add_pod("app/c")?;
    let host_ifname = c.host_ifname().to_owned();
    w.daemon
        .wait_status("the new interface attached", Duration::from_secs(10), |s| {
            s.interfaces.iter().any(|i| i.name == host_ifname)
        })?;
    let _server = TcpEchoServer::start(&c, 80)?;
    // The daemon has attached to c's interface but knows no pod for it.
    assert!(
        !tcp_probe(&w.node, c.ip(Family::V4), 80, PROBE_TIMEOUT)?,
        "even node traffic is denied"
    );
    assert!(!ping(&c, w.a.ip(Family::V4), PROBE_TIMEOUT)?);
    w.daemon
        .wait_for_flow(|f| f["reason"] == "no-endpoint", FLOW_WAIT)?;
    // Once the pod is known, the node may reach it again: within a few
    // probes, as ARP was denied with everything else until then and the
    // node's neighbour entry for c resolves again at its own pace (its
    // retransmit timer is a second).
    w.manifests.pod(&c, &[], &[])?;
    w.daemon.wait_ready(3)?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !tcp_probe(&w.node, c.ip(Family::V4), 80, PROBE_TIMEOUT)? {
        assert!(Instant::now() < deadline, "node -> c once c is known");
    }
    Ok(())
}

#[test]
fn republishing_keeps_allowed_traffic_flowing_and_denied_traffic_denied() -> Result<()> {
    let mut w = world("republish")?;
    let _server = TcpEchoServer::start(&w.b, 80)?;
    w.allow_client_to_server()?;
    let mut session = TcpSession::open(&w.a, w.b.ip(Family::V4), 80, PROBE_TIMEOUT)?;
    // New node addresses change the compiled policy, so the daemon publishes
    // new revisions while connections are open and new ones are attempted.
    for extra in 9..12 {
        let revision = w.daemon.status()?.map_or(0, |s| s.revision);
        netseg_testbed::netns::ip_batch(
            w.node.netns_name(),
            &[format!("addr add 10.250.0.{extra}/32 dev node0")],
        )?;
        w.daemon
            .wait_status("a new revision", Duration::from_secs(10), |s| {
                s.revision > revision
            })?;
        assert!(
            session.exchange(PROBE_TIMEOUT),
            "the open connection survives revision {}",
            revision + 1
        );
        assert!(
            tcp_probe(&w.a, w.b.ip(Family::V4), 80, PROBE_TIMEOUT)?,
            "a new allowed connection"
        );
        assert!(
            !tcp_probe(&w.b, w.a.ip(Family::V4), 80, PROBE_TIMEOUT)?,
            "a denied one stays denied"
        );
    }
    Ok(())
}

#[test]
fn a_pod_interface_named_without_the_prefix_is_attached_and_enforced() -> Result<()> {
    let mut w = world("anyname")?;
    // Named as a CNI plugin that does not use `veth` would name it.
    let c = w.node.add_pod_as("app/c", Some("cali0c"), |_| Ok(()))?;
    w.manifests.pod(&c, &[], &[])?;
    let status = w.daemon.wait_ready(3)?;
    assert!(status.pods_without_interface.is_empty(), "{status:?}");
    let _server = TcpEchoServer::start(&w.b, 80)?;
    assert!(
        !tcp_probe(&c, w.b.ip(Family::V4), 80, PROBE_TIMEOUT)?,
        "c's default deny is enforced"
    );
    // Its probe's denial, named after it. Another denial at c's ingress
    // was once logged first on a loaded machine: pick the probe's.
    let record = w.daemon.wait_for_flow(
        |f| f["verdict"] == "deny" && f["dst_port"] == 80 && f["direction"] == "egress",
        FLOW_WAIT,
    )?;
    assert_eq!(record["endpoint"], "app/c");
    Ok(())
}

/// An auditor ties the running programs to the source: the status names the
/// embedded object's SHA-256, as `netseg version --verbose` prints it (and a
/// rebuild reproduces, scripts/check-ebpf-reproducible), and the tag of each
/// program, as the kernel reports it for the programs the daemon holds.
#[test]
fn the_status_names_the_loaded_object_and_the_kernels_tags_of_its_programs() -> Result<()> {
    let mut w = world("audit")?;
    let status = w
        .daemon
        .wait_status("the object named", Duration::from_secs(10), |s| {
            s.ebpf.is_some()
        })?;
    let ebpf = status.ebpf.context("the status names the object")?;
    let version = Command::new(netseg_binary()?)
        .args(["version", "--verbose"])
        .output()?;
    let version = String::from_utf8(version.stdout)?;
    assert!(
        version.contains(&format!("ebpf-object-sha256: {}\n", ebpf.sha256)),
        "status {} against\n{version}",
        ebpf.sha256
    );
    let pid = w.daemon.pid().context("the daemon runs")?;
    let mut kernel_tags = BTreeSet::new();
    for fd in std::fs::read_dir(format!("/proc/{pid}/fdinfo"))? {
        // An fd closed since the listing has no fdinfo any more.
        let Ok(info) = std::fs::read_to_string(fd?.path()) else {
            continue;
        };
        if let Some(tag) = info.lines().find_map(|line| line.strip_prefix("prog_tag:")) {
            kernel_tags.insert(tag.trim().to_owned());
        }
    }
    assert_eq!(
        ebpf.program_tags.keys().collect::<Vec<_>>(),
        ["pod_egress", "pod_ingress"]
    );
    for (program, tag) in &ebpf.program_tags {
        assert!(
            kernel_tags.contains(tag),
            "{program} {tag} not among the kernel's tags {kernel_tags:?}"
        );
    }
    Ok(())
}
