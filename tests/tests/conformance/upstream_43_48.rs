//! Upstream cases #43–#48 of shared/NETPOL-CASES.md: three shapes over UDP
//! ("Netpol [LinuxOnly]") and the same three over SCTP ("Netpol
//! [Feature:SCTPConnectivity]"), SCTP probed with crafted INITs.

use netseg_testbed::Probe;
use serde_json::json;

use super::case::{Case, Model, netpol, ns_is, pod_is};
use super::upstream_01_21::only_y_reaches_xa;

pub fn cases(m: &Model) -> Vec<Case> {
    let mut cases = vec![super::upstream_01_21::baseline(m)];
    for (first, protocol, probe) in [
        (43, "UDP", Probe::udp as fn(u16) -> Probe),
        (46, "SCTP", Probe::sctp),
    ] {
        let using = protocol.to_lowercase();
        cases.push(
            Case::new(
                m,
                format!("#{first} should support a 'default-deny-ingress' policy ({using})"),
            )
            .policy(netpol(
                "x",
                "deny-all",
                json!({"podSelector": {}, "policyTypes": ["Ingress"]}),
            ))
            .expect(probe(80), |r| r.expect_peer("*", "x/*", false)),
        );
        cases.push(
            Case::new(m, format!("#{} should enforce policy based on Ports ({using})", first + 1))
                .policy(netpol(
                    "x",
                    "allow-ingress-on-port-81-ns-x",
                    json!({
                        "podSelector": pod_is("a"), "policyTypes": ["Ingress"],
                        "ingress": [{"from": [{"namespaceSelector": ns_is("y")}], "ports": [{"port": 81, "protocol": protocol}]}],
                    }),
                ))
                .expect(probe(81), only_y_reaches_xa)
                // Not upstream: the other port of the same protocol stays closed.
                .expect(probe(80), |r| r.expect_all_ingress("x/a", false)),
        );
        cases.push(
            Case::new(
                m,
                format!(
                    "#{} should enforce policy to allow traffic only from a pod in a different namespace based on PodSelector and NamespaceSelector ({using})",
                    first + 2
                ),
            )
            .policy(netpol(
                "x",
                "allow-ns-y-pod-a-via-namespace-pod-selector",
                json!({
                    "podSelector": pod_is("a"), "policyTypes": ["Ingress"],
                    "ingress": [{"from": [{"namespaceSelector": ns_is("y"), "podSelector": pod_is("a")}]}],
                }),
            ))
            .expect(probe(80), |r| {
                r.expect_all_ingress("x/a", false);
                r.expect("y/a", "x/a", true);
            }),
        );
    }
    cases
}
