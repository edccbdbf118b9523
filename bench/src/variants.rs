//! The enforcement variants, each set up inside the node namespace of a
//! fresh [`Bed`]: nothing here touches the machine's own namespace.
//!
//! Every variant enforces the same two policies: the client may send only
//! to N unrelated addresses and, last, the server (its egress), and the
//! server may receive only from N unrelated addresses and, last, the client
//! (its ingress), so a forwarded packet walks both, like a per-pod enforcer
//! such as Calico does (one chain per endpoint and direction).

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use netseg_testbed::Manifests;
use netseg_testbed::daemon::DaemonSource;
use netseg_testbed::manifests::{namespace_yaml, pod_yaml};

use crate::bed::{self, Bed};
use crate::netseg::{NetsegDaemon, rule_walk_policy, unrelated_ipv4};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum Variant {
    None,
    Netseg,
    NetsegNoFlowEvents,
    IptablesNft,
    IptablesNftEst,
    IptablesLegacy,
    IptablesLegacyEst,
    Ipset,
    NftLinear,
    NftSet,
}

impl Variant {
    pub const ALL: [Variant; 10] = [
        Variant::None,
        Variant::Netseg,
        Variant::NetsegNoFlowEvents,
        Variant::IptablesNft,
        Variant::IptablesNftEst,
        Variant::IptablesLegacy,
        Variant::IptablesLegacyEst,
        Variant::Ipset,
        Variant::NftLinear,
        Variant::NftSet,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Variant::None => "none",
            Variant::Netseg => "netseg",
            Variant::NetsegNoFlowEvents => "netseg-no-flow-events",
            Variant::IptablesNft => "iptables-nft",
            Variant::IptablesNftEst => "iptables-nft+est",
            Variant::IptablesLegacy => "iptables-legacy",
            Variant::IptablesLegacyEst => "iptables-legacy+est",
            Variant::Ipset => "ipset",
            Variant::NftLinear => "nft-linear",
            Variant::NftSet => "nft-set",
        }
    }

    pub fn parse(name: &str) -> Option<Variant> {
        Variant::ALL.into_iter().find(|v| v.name() == name)
    }
}

/// What stays alive while a variant enforces: the daemon and its files.
pub enum Enforcement {
    Kernel,
    Netseg {
        daemon: NetsegDaemon,
        _manifests: Manifests,
    },
}

/// Sets `variant` up with `n` non-matching rules per policy; returns what
/// must stay alive and how long programming took.
pub fn enforce(
    bed: &Bed,
    variant: Variant,
    n: usize,
    netseg: &Path,
    work: &Path,
) -> Result<(Enforcement, Duration)> {
    let ns = bed.node.netns_name();
    let (c, s) = (bed.client_ip(), bed.server_ip());
    let start = std::time::Instant::now();
    let enforcement = match variant {
        Variant::None => Enforcement::Kernel,
        Variant::Netseg | Variant::NetsegNoFlowEvents => {
            let manifests = netseg_manifests(bed, n)?;
            let flow_events: &[&str] = match variant {
                Variant::Netseg => &[],
                _ => &["--flow-events", "none"],
            };
            let flow_log = work.join("flows.jsonl");
            let mut daemon = NetsegDaemon::start(
                netseg,
                &bed.node,
                DaemonSource::Manifests(manifests.dir()),
                &flow_log,
                work,
                flow_events,
            )?;
            daemon.wait_for(Duration::from_secs(120), |s| {
                s.endpoints == 2 && s.revision > 0
            })?;
            Enforcement::Netseg {
                daemon,
                _manifests: manifests,
            }
        }
        Variant::IptablesNft | Variant::IptablesNftEst => {
            let rules = iptables_linear(c, s, n, variant == Variant::IptablesNftEst);
            bed::run_in_with_input(ns, &["iptables-nft-restore"], &rules)?;
            Enforcement::Kernel
        }
        Variant::IptablesLegacy | Variant::IptablesLegacyEst => {
            let rules = iptables_linear(c, s, n, variant == Variant::IptablesLegacyEst);
            bed::run_in_with_input(ns, &["iptables-legacy-restore"], &rules)?;
            Enforcement::Kernel
        }
        Variant::Ipset => {
            bed::run_in_with_input(ns, &["ipset", "restore"], &ipsets(c, s, n))?;
            bed::run_in_with_input(ns, &["iptables-nft-restore"], &iptables_ipset(c, s))?;
            Enforcement::Kernel
        }
        Variant::NftLinear => {
            bed::run_in_with_input(ns, &["nft", "-f", "-"], &nft_linear(c, s, n))?;
            Enforcement::Kernel
        }
        Variant::NftSet => {
            bed::run_in_with_input(ns, &["nft", "-f", "-"], &nft_set(c, s, n))?;
            Enforcement::Kernel
        }
    };
    Ok((enforcement, start.elapsed()))
}

/// Namespace, the two pods and the two rule-walk policies as manifests.
pub fn netseg_manifests(bed: &Bed, n: usize) -> Result<Manifests> {
    let manifests = Manifests::new()?;
    manifests.write("namespace-bench.yaml", &namespace_yaml("bench", &[])?)?;
    manifests.write(
        "pod-client.yaml",
        &pod_yaml(&bed.client, &[("app", "client")], &[])?,
    )?;
    manifests.write(
        "pod-server.yaml",
        &pod_yaml(&bed.server, &[("app", "server")], &[])?,
    )?;
    let ingress = rule_walk_policy("server-ingress", "server", "ingress", n, "client");
    let egress = rule_walk_policy("client-egress", "client", "egress", n, "server");
    manifests.write("policy-server-ingress.json", &ingress.to_string())?;
    manifests.write("policy-client-egress.json", &egress.to_string())?;
    Ok(manifests)
}

/// FORWARD: replies (conntrack, or stateless `server -> client`), then the
/// client's egress chain (RETURN when allowed), then the server's ingress.
fn iptables_linear(c: Ipv4Addr, s: Ipv4Addr, n: usize, established: bool) -> String {
    let mut r = String::with_capacity(64 * (2 * n + 16));
    r.push_str("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n");
    r.push_str(":client-egress - [0:0]\n:server-ingress - [0:0]\n");
    if established {
        r.push_str("-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n");
    } else {
        let _ = writeln!(r, "-A FORWARD -s {s}/32 -d {c}/32 -j ACCEPT");
    }
    let _ = writeln!(r, "-A FORWARD -s {c}/32 -j client-egress");
    let _ = writeln!(r, "-A FORWARD -d {s}/32 -j server-ingress");
    for i in 0..n {
        let _ = writeln!(r, "-A client-egress -d {}/32 -j RETURN", unrelated_ipv4(i));
    }
    let _ = writeln!(r, "-A client-egress -d {s}/32 -j RETURN");
    r.push_str("-A client-egress -j DROP\n");
    for i in 0..n {
        let _ = writeln!(r, "-A server-ingress -s {}/32 -j ACCEPT", unrelated_ipv4(i));
    }
    let _ = writeln!(r, "-A server-ingress -s {c}/32 -j ACCEPT");
    r.push_str("-A server-ingress -j DROP\nCOMMIT\n");
    r
}

fn ipsets(c: Ipv4Addr, s: Ipv4Addr, n: usize) -> String {
    let max = (n + 16).max(65536);
    let mut r = String::with_capacity(32 * (2 * n + 8));
    let _ = writeln!(r, "create bench-egress hash:ip maxelem {max}");
    let _ = writeln!(r, "create bench-ingress hash:ip maxelem {max}");
    for i in 0..n {
        let _ = writeln!(r, "add bench-egress {}", unrelated_ipv4(i));
        let _ = writeln!(r, "add bench-ingress {}", unrelated_ipv4(i));
    }
    let _ = writeln!(r, "add bench-egress {s}");
    let _ = writeln!(r, "add bench-ingress {c}");
    r
}

fn iptables_ipset(c: Ipv4Addr, s: Ipv4Addr) -> String {
    format!(
        "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n\
         :client-egress - [0:0]\n:server-ingress - [0:0]\n\
         -A FORWARD -s {s}/32 -d {c}/32 -j ACCEPT\n\
         -A FORWARD -s {c}/32 -j client-egress\n\
         -A FORWARD -d {s}/32 -j server-ingress\n\
         -A client-egress -m set --match-set bench-egress dst -j RETURN\n\
         -A client-egress -j DROP\n\
         -A server-ingress -m set --match-set bench-ingress src -j ACCEPT\n\
         -A server-ingress -j DROP\nCOMMIT\n"
    )
}

fn nft_linear(c: Ipv4Addr, s: Ipv4Addr, n: usize) -> String {
    let mut r = String::with_capacity(48 * (2 * n + 16));
    r.push_str("table ip bench {\n chain client-egress {\n");
    for i in 0..n {
        let _ = writeln!(r, "  ip daddr {} return", unrelated_ipv4(i));
    }
    let _ = writeln!(r, "  ip daddr {s} return\n  drop\n }}");
    r.push_str(" chain server-ingress {\n");
    for i in 0..n {
        let _ = writeln!(r, "  ip saddr {} accept", unrelated_ipv4(i));
    }
    let _ = writeln!(r, "  ip saddr {c} accept\n  drop\n }}");
    let _ = writeln!(
        r,
        " chain forward {{\n  type filter hook forward priority 0; policy drop;\n  \
         ip saddr {s} ip daddr {c} accept\n  ip saddr {c} jump client-egress\n  \
         ip daddr {s} jump server-ingress\n }}\n}}"
    );
    r
}

fn nft_set(c: Ipv4Addr, s: Ipv4Addr, n: usize) -> String {
    let elements = |pairs: &mut dyn Iterator<Item = (Ipv4Addr, Ipv4Addr)>| {
        pairs
            .map(|(a, b)| format!("{a} . {b}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let egress = elements(&mut (0..n).map(|i| (c, unrelated_ipv4(i))).chain([(c, s)]));
    let ingress = elements(&mut (0..n).map(|i| (unrelated_ipv4(i), s)).chain([(c, s)]));
    format!(
        "table ip bench {{\n set egress {{ type ipv4_addr . ipv4_addr; elements = {{ {egress} }} }}\n \
         set ingress {{ type ipv4_addr . ipv4_addr; elements = {{ {ingress} }} }}\n \
         chain client-egress {{ ip saddr . ip daddr @egress return; drop; }}\n \
         chain server-ingress {{ ip saddr . ip daddr @ingress accept; drop; }}\n \
         chain forward {{\n  type filter hook forward priority 0; policy drop;\n  \
         ip saddr {s} ip daddr {c} accept\n  ip saddr {c} jump client-egress\n  \
         ip daddr {s} jump server-ingress\n }}\n}}\n"
    )
}
