//! The compiler with many `ipBlock` peers: a full compile (what programming
//! the policy at daemon start costs in the compiler) of
//! - `host blocks`: the datapath harness's policies (`bench/src/netseg.rs`,
//!   `rule_walk_policy`): a client's egress to N unrelated /32s and the
//!   server, the server's ingress from the same N /32s and the client;
//! - `mixed blocks`: N peers, half IPv4 and half IPv6, nine in ten a /32 or
//!   /128, the rest /24s (/120s) and one in a thousand /16s (/112s) with
//!   excepts over the same addresses, so that blocks overlap and nest; four
//!   wide blocks (`0.0.0.0/0`, `::/0`, ...) with excepts; and 1,000
//!   dual-stack pods of other nodes whose addresses fall inside the blocks.
//!
//! N = 1,000, 10,000 and 50,000.
//! `cargo bench -p netseg-policy --bench ipblocks`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Instant;

use common::{namespace, pod, policy};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use netseg_policy::{CompileOptions, Compiler, DefaultAction, Snapshot, validate_network_policy};
use serde_json::{Value, json};

const SIZES: [usize; 3] = [1_000, 10_000, 50_000];
const OTHER_PODS: usize = 1_000;

fn options() -> CompileOptions {
    CompileOptions {
        node_name: "node-0".into(),
        default_action: DefaultAction::Deny,
        deny_node_traffic: false,
        node_addresses: vec!["192.168.0.1".parse().expect("address")],
    }
}

/// Namespace `bench` with the local pods `client` and `server`, and two
/// policies: the client's egress to `peers` and the server, the server's
/// ingress from `peers` and the client.
fn harness(peers: &[Value]) -> Snapshot {
    let mut snapshot = Snapshot::default();
    snapshot
        .namespaces
        .push(namespace("bench", json!({})).into());
    for (name, ip) in [("client", "10.250.0.2"), ("server", "10.250.0.3")] {
        let labels = json!({ "app": name });
        snapshot
            .pods
            .push(pod("bench", name, labels, "node-0", &[ip]).into());
    }
    for (name, selected, direction, key, other) in [
        ("client-egress", "client", "egress", "to", "server"),
        ("server-ingress", "server", "ingress", "from", "client"),
    ] {
        let mut rule_peers = peers.to_vec();
        rule_peers.push(json!({ "podSelector": { "matchLabels": { "app": other } } }));
        let types = if direction == "egress" {
            "Egress"
        } else {
            "Ingress"
        };
        let spec = json!({
            "podSelector": { "matchLabels": { "app": selected } },
            "policyTypes": [types],
            direction: [ { key: rule_peers } ],
        });
        snapshot
            .network_policies
            .push(policy("bench", name, spec).into());
    }
    snapshot
}

/// The datapath harness's unrelated /32s (172.16.0.0/12).
fn host_blocks(n: usize) -> Snapshot {
    let peers: Vec<Value> = (0..n)
        .map(|i| {
            let ip = Ipv4Addr::from(0xac10_0000 | (i as u32 & 0x000f_ffff));
            json!({ "ipBlock": { "cidr": format!("{ip}/32") } })
        })
        .collect();
    harness(&peers)
}

/// The `i`-th address of the mixed set, in 10.0.0.0/8 or fd00::/16.
fn address(i: usize, v6: bool) -> (String, u8) {
    let offset = 7 * i as u128;
    if v6 {
        let base = u128::from("fd00::".parse::<Ipv6Addr>().expect("address"));
        (Ipv6Addr::from(base + offset).to_string(), 128)
    } else {
        let base = u32::from(Ipv4Addr::new(10, 0, 0, 0));
        (Ipv4Addr::from(base + offset as u32).to_string(), 32)
    }
}

/// The prefix with `host_bits` host bits (8: a /24 or a /120) that contains
/// address `i`, in CIDR notation.
fn around(i: usize, v6: bool, host_bits: u8) -> String {
    let (ip, full) = address(i, v6);
    let net =
        ipnetwork::IpNetwork::new(ip.parse().expect("address"), full - host_bits).expect("prefix");
    format!("{}/{}", net.network(), net.prefix())
}

/// The `i`-th peer of the mixed set, IPv4 or IPv6 by turns of a hundred: a
/// host prefix, or for one in ten a /24 (/120) around the same addresses
/// with excepts, for one in a thousand a /16 (/112) with an except.
fn mixed_peer(i: usize) -> Value {
    let v6 = (i / 100) % 2 == 1;
    let (ip, full) = address(i, v6);
    if i % 1000 == 999 {
        json!({ "ipBlock": { "cidr": around(i, v6, 16), "except": [around(i, v6, 8)] } })
    } else if i % 10 == 9 {
        let (last, _) = address(i + 30, v6);
        let mut except = vec![around(i, v6, 4)];
        if around(i + 30, v6, 8) == around(i, v6, 8) && around(i + 30, v6, 4) != except[0] {
            except.push(format!("{last}/{full}"));
        }
        json!({ "ipBlock": { "cidr": around(i, v6, 8), "except": except } })
    } else {
        json!({ "ipBlock": { "cidr": format!("{ip}/{full}") } })
    }
}

fn mixed_blocks(n: usize) -> Snapshot {
    let mut peers: Vec<Value> = (0..n).map(mixed_peer).collect();
    peers.extend([
        json!({ "ipBlock": { "cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"] } }),
        json!({ "ipBlock": { "cidr": "10.0.0.0/8", "except": ["10.0.0.0/16", "10.250.0.0/16"] } }),
        json!({ "ipBlock": { "cidr": "::/0", "except": ["fd00::/16"] } }),
        json!({ "ipBlock": { "cidr": "fd00::/16", "except": ["fd00::/64"] } }),
    ]);
    let mut snapshot = harness(&peers);
    snapshot
        .namespaces
        .push(namespace("others", json!({})).into());
    for k in 0..OTHER_PODS {
        // Between the peers' addresses, so that the blocks hold them.
        let i = k * n / OTHER_PODS;
        let ips = [false, true].map(|v6| {
            let (ip, _) = address(i, v6);
            let ip: std::net::IpAddr = ip.parse().expect("address");
            match ip {
                std::net::IpAddr::V4(a) => Ipv4Addr::from(u32::from(a) + 3).to_string(),
                std::net::IpAddr::V6(a) => Ipv6Addr::from(u128::from(a) + 3).to_string(),
            }
        });
        let labels = json!({ "app": format!("other-{}", k % 10) });
        let node = format!("node-{}", 1 + k % 50);
        let other = pod(
            "others",
            &format!("p-{k}"),
            labels,
            &node,
            &[&ips[0], &ips[1]],
        );
        snapshot.pods.push(other.into());
    }
    snapshot
}

/// The time this thread has run on a CPU (Linux's schedstat), which tells
/// a compile's own cost from the time it waited for a core others used.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanoseconds: u64 = stat.split_whitespace().next()?.parse().ok()?;
    Some(nanoseconds as f64 / 1e9)
}

fn ipblocks(c: &mut Criterion) {
    let options = options();
    let mut group = c.benchmark_group("ipblocks");
    group.sample_size(10);
    for (name, build) in [
        ("host blocks", host_blocks as fn(usize) -> Snapshot),
        ("mixed blocks", mixed_blocks),
    ] {
        for n in SIZES {
            let snapshot = build(n);
            for policy in &snapshot.network_policies {
                let errors = validate_network_policy(policy);
                assert!(errors.is_empty(), "{name}, N = {n}: {errors:?}");
            }
            let (started, on_cpu) = (Instant::now(), cpu_seconds());
            let compiled = Compiler::new().compile(&snapshot, &options);
            eprintln!(
                "{name}, N = {n}: one compile {:.3} s ({} s on a CPU); {} identities, {} ipcache and {} policy entries",
                started.elapsed().as_secs_f64(),
                match (on_cpu, cpu_seconds()) {
                    (Some(before), Some(after)) => format!("{:.3}", after - before),
                    _ => "?".into(),
                },
                compiled.identities.len(),
                compiled.ipcache.len(),
                compiled.policy.len()
            );
            group.bench_with_input(BenchmarkId::new(name, n), &snapshot, |b, snapshot| {
                b.iter(|| black_box(Compiler::new().compile(snapshot, &options)))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, ipblocks);
criterion_main!(benches);
