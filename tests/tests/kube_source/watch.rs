//! Watch events change verdicts without a restart.

use anyhow::Result;
use netseg_testbed::{Family, PROBE_TIMEOUT, TcpEchoServer, tcp_probe};

use super::cluster::KubeWorld;
use crate::common::CLIENT_TO_SERVER;

/// a may open TCP 80 to servers; servers admit it only from namespaces
/// labelled `team: blue`.
const FROM_TEAM_BLUE: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: client-to-server, namespace: app }
spec:
  podSelector: { matchLabels: { role: client } }
  policyTypes: [Egress]
  egress:
    - to: [{ podSelector: { matchLabels: { role: server } } }]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: server-from-team-blue, namespace: app }
spec:
  podSelector: { matchLabels: { role: server } }
  policyTypes: [Ingress]
  ingress:
    - from: [{ namespaceSelector: { matchLabels: { team: blue } } }]
      ports: [{ port: 80 }]
"#;

/// A NetworkPolicy created, then deleted, in the API opens, then closes,
/// a connection; a namespace label added and removed does the same
/// through a namespaceSelector. One daemon throughout.
#[test]
fn watch_events_change_verdicts_without_a_restart() -> Result<()> {
    let mut w = KubeWorld::start("kube-watch", &[], |_| Ok(()))?;
    let _server = TcpEchoServer::start(&w.b, 80)?;
    let b = w.b.ip(Family::V4);
    assert!(!tcp_probe(&w.a, b, 80, PROBE_TIMEOUT)?, "default deny");

    w.apply(|m| m.policy("client-to-server", CLIENT_TO_SERVER).map(drop))?;
    assert!(
        tcp_probe(&w.a, b, 80, PROBE_TIMEOUT)?,
        "created in the API: allowed"
    );
    w.apply(|m| m.remove_policy("client-to-server"))?;
    assert!(
        !tcp_probe(&w.a, b, 80, PROBE_TIMEOUT)?,
        "deleted in the API: denied"
    );

    w.apply(|m| m.policy("from-team-blue", FROM_TEAM_BLUE).map(drop))?;
    assert!(
        !tcp_probe(&w.a, b, 80, PROBE_TIMEOUT)?,
        "namespace app is not labelled team=blue yet"
    );
    w.apply(|m| m.namespace("app", &[("team", "blue")]).map(drop))?;
    assert!(
        tcp_probe(&w.a, b, 80, PROBE_TIMEOUT)?,
        "the label added in the API: the namespaceSelector matches"
    );
    w.apply(|m| m.namespace("app", &[]).map(drop))?;
    assert!(
        !tcp_probe(&w.a, b, 80, PROBE_TIMEOUT)?,
        "the label removed in the API: denied again"
    );
    assert!(w.daemon.try_exit()?.is_none(), "the same daemon throughout");
    Ok(())
}
