//! Starting from the API server: nothing is enforced from a partial read,
//! readiness waits for every kind, and a kind the daemon may not read
//! (403) never reads as "there are none".

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use netseg_testbed::daemon::READY_TIMEOUT;
use netseg_testbed::{
    Daemon, DaemonStatus, Family, PROBE_TIMEOUT, TcpEchoServer, UdpEchoServer, tcp_probe,
};

use super::cluster::{FakeCluster, KubeWorld};
use super::traffic::verdicts;
use crate::common::{Bpffs, CLIENT_TO_SERVER, http_get, scene};

const METRICS: &str = "127.0.0.1:9750";

/// Admin tier: no UDP 53 from clients to servers, whatever a NetworkPolicy
/// allows.
const NO_DNS_TO_SERVERS: &str = r#"
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: { name: no-dns-to-servers }
spec:
  tier: Admin
  priority: 10
  subject: { pods: { namespaceSelector: {}, podSelector: { matchLabels: { role: server } } } }
  ingress:
    - name: deny-dns
      action: Deny
      from: [{ pods: { namespaceSelector: {}, podSelector: { matchLabels: { role: client } } } }]
      protocols: [{ udp: { destinationPort: { number: 53 } } }]
"#;

/// The watches not listed yet, by the status's problems.
fn unlisted(status: &DaemonStatus) -> Vec<&str> {
    status
        .problems
        .iter()
        .filter(|p| p.contains("not listed yet"))
        .map(String::as_str)
        .collect()
}

/// While one kind (here ClusterNetworkPolicies, whose Admin Deny overrides
/// what a NetworkPolicy allows) cannot be listed, the daemon is not ready
/// and enforces nothing of its partial read; once the kind is listed it is
/// ready and enforces what the manifests source enforces for the same
/// objects.
#[test]
fn a_cold_start_is_ready_once_every_kind_is_listed_and_enforces_no_partial_read() -> Result<()> {
    let scene = scene("kube-cold")?;
    scene
        .manifests
        .policy("client-to-server", CLIENT_TO_SERVER)?;
    scene
        .manifests
        .policy("no-dns-to-servers", NO_DNS_TO_SERVERS)?;
    let _servers = (
        TcpEchoServer::start(&scene.b, 80)?,
        UdpEchoServer::start(&scene.b, 53)?,
        TcpEchoServer::start(&scene.a, 80)?,
    );
    let netns = scene.node.netns_name();
    let mut cluster = FakeCluster::start(&scene.node)?;
    cluster.mirror(&scene.manifests)?;
    cluster.api.fail("clusternetworkpolicies", Some(503))?;
    let mut daemon = Daemon::start_kube(
        &scene.node,
        &cluster.kubeconfig(),
        &["--metrics-addr", METRICS],
    )?;
    let waiting = daemon.wait_status(
        "every kind but clusternetworkpolicies listed",
        READY_TIMEOUT,
        |s| matches!(unlisted(s)[..], [only] if only.contains("clusternetworkpolicies")),
    )?;
    assert!(!waiting.synced, "{waiting:?}");
    assert!(waiting.waiting_for.is_some(), "{waiting:?}");
    let ready = http_get(netns, METRICS, "/readyz")?;
    assert!(ready.contains(" 503 "), "{ready}");
    assert_eq!(
        verdicts(&scene.a, &scene.b)?,
        [false, false, false],
        "before every kind is listed nothing is allowed: the unlisted \
         ClusterNetworkPolicy denies UDP 53 that the listed NetworkPolicy allows"
    );

    cluster.api.fail("clusternetworkpolicies", None)?;
    daemon.wait_in_charge(2)?;
    let ready = http_get(netns, METRICS, "/readyz")?;
    assert!(ready.contains(" 200 "), "{ready}");
    let from_api = verdicts(&scene.a, &scene.b)?;
    assert_eq!(
        from_api,
        [true, false, false],
        "TCP allowed, UDP 53 denied by the Admin tier, b→a denied"
    );

    ensure!(
        daemon.stop()?.success(),
        "the daemon exits cleanly on SIGTERM"
    );
    let mut from_dir = Daemon::start(&scene.node, scene.manifests.dir(), &[])?;
    from_dir.wait_ready(2)?;
    assert_eq!(
        verdicts(&scene.a, &scene.b)?,
        from_api,
        "the manifests source enforces the same objects alike"
    );
    Ok(())
}

/// b admits only TCP 80 from clients; everything else is allowed
/// (`--default-action allow`), so a daemon that read "no NetworkPolicies"
/// would let a reach b on 81.
const SERVER_ISOLATED: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: server-isolated, namespace: app }
spec:
  podSelector: { matchLabels: { role: server } }
  policyTypes: [Ingress]
  ingress:
    - from: [{ podSelector: { matchLabels: { role: client } } }]
      ports: [{ port: 80 }]
"#;

/// A restarted daemon refused NetworkPolicies (403: RBAC missing) lists
/// everything else, is not ready, and leaves the previous daemon's pinned
/// programs enforcing the isolation it cannot read; once allowed to read,
/// it takes over with the same verdicts.
#[test]
fn a_forbidden_kind_never_reads_as_none() -> Result<()> {
    let bpffs = Bpffs::mount()?;
    let pin_arg = bpffs.pin_arg();
    let args = [
        pin_arg.as_str(),
        "--default-action",
        "allow",
        "--metrics-addr",
        METRICS,
    ];
    let mut w = KubeWorld::start("kube-403", &args, |m| {
        m.policy("server-isolated", SERVER_ISOLATED).map(drop)
    })?;
    let _servers = (
        TcpEchoServer::start(&w.b, 80)?,
        TcpEchoServer::start(&w.b, 81)?,
    );
    let b = w.b.ip(Family::V4);
    let isolation = |w: &KubeWorld| -> Result<(bool, bool)> {
        Ok((
            tcp_probe(&w.a, b, 80, PROBE_TIMEOUT)?,
            tcp_probe(&w.a, b, 81, PROBE_TIMEOUT)?,
        ))
    };
    assert_eq!(isolation(&w)?, (true, false));

    w.daemon.kill()?;
    w.cluster.api.fail("networkpolicies", Some(403))?;
    w.restart_daemon(&args)?;
    let refused = w.daemon.wait_status(
        "every kind but networkpolicies listed",
        READY_TIMEOUT,
        |s| matches!(unlisted(s)[..], [only] if only.contains("networkpolicies") && only.contains("403")),
    )?;
    assert!(
        !refused.synced && refused.waiting_for.is_some(),
        "{refused:?}"
    );
    // Long enough for reconciles (every 2 s) to have taken over, had they.
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        assert_eq!(
            isolation(&w)?,
            (true, false),
            "the pinned programs keep the isolation the new daemon cannot read"
        );
    }
    let ready = http_get(w.node.netns_name(), METRICS, "/readyz")?;
    assert!(ready.contains(" 503 "), "{ready}");

    w.cluster.api.fail("networkpolicies", None)?;
    w.daemon.wait_in_charge(2)?;
    let ready = http_get(w.node.netns_name(), METRICS, "/readyz")?;
    assert!(ready.contains(" 200 "), "{ready}");
    assert_eq!(
        isolation(&w)?,
        (true, false),
        "the same verdicts from the new daemon"
    );
    // The new daemon is in charge: lifting the isolation in the API opens 81.
    w.apply(|m| m.remove_policy("server-isolated"))?;
    assert_eq!(isolation(&w)?, (true, true));
    Ok(())
}
