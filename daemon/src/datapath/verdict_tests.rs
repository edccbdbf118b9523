//! Verdicts of the loaded programs on crafted packets, through
//! BPF_PROG_TEST_RUN: no interface, no traffic. Needs root (CI runs as root).
//!
//! The endpoint is ifindex 1 (the device test runs use) with addresses
//! 10.0.0.1 and fd00::1. Peer 10.0.0.2 / fd00::2 has identity 16; 10.0.0.3
//! has identity 17. Egress may open TCP 80, UDP 53, SCTP 80 and ICMP to
//! identity 16; ingress allows TCP 8000-8003 from identity 16.

mod capacity;
mod conntrack;
mod flow_events;
mod fragments;
mod fuzz;
mod model;
mod precedence;
mod shares;
mod side_channels;

use netseg_contract::{
    ENDPOINT_HAS_IPV4, ENDPOINT_HAS_IPV6, Endpoint, POLICY_DENY_ALL, PolicyValue, VERDICT_ALLOW,
    VERDICT_DENY,
};
use netseg_policy::{PolicyEntryKey, PortPrefix};
use netseg_testbed::packet;
use packet::{ACK, FIN, Fragment, Frame, ICMP, SCTP, SYN, TCP, UDP, ethernet};

use super::{
    Datapath, DenyBudgets, FlowEvents, KernelMaps, Limits, MapSizes, Telemetry, publish::Publisher,
    state::SlotState,
};

const PASS: u32 = 0;
const DROP: u32 = 2;
const INGRESS_POLICY: u32 = 1;
const EGRESS_POLICY: u32 = 2;

struct Bench {
    datapath: Datapath,
    publisher: Publisher<KernelMaps>,
    telemetry: Telemetry,
}

/// A POLICY value that allows, naming verdict `rule`.
fn allow(rule: u32) -> PolicyValue {
    PolicyValue {
        rule,
        verdict: VERDICT_ALLOW,
        _pad: [0; 3],
    }
}

/// A POLICY value that denies, naming verdict `rule`.
fn deny(rule: u32) -> PolicyValue {
    PolicyValue {
        rule,
        verdict: VERDICT_DENY,
        _pad: [0; 3],
    }
}

fn entry(
    policy: u32,
    identity: u32,
    protocol: Option<u8>,
    port: Option<(u16, u8)>,
) -> PolicyEntryKey {
    PolicyEntryKey {
        policy,
        identity,
        protocol,
        port: port.map(|(port, len)| PortPrefix { port, len }),
    }
}

fn policy() -> SlotState {
    let endpoint = Endpoint {
        ingress_policy: INGRESS_POLICY,
        egress_policy: EGRESS_POLICY,
        flags: ENDPOINT_HAS_IPV4 | ENDPOINT_HAS_IPV6,
        ipv4: [10, 0, 0, 1],
        ipv6: "fd00::1"
            .parse::<std::net::Ipv6Addr>()
            .expect("address")
            .octets(),
    };
    let ipcache = [
        ("10.0.0.2/32", 16),
        ("fd00::2/128", 16),
        ("10.0.0.3/32", 17),
    ]
    .into_iter()
    .map(|(prefix, identity)| (prefix.parse().expect("prefix"), identity))
    .collect();
    let policy = [
        (entry(EGRESS_POLICY, 16, Some(TCP), Some((80, 16))), 100),
        (entry(EGRESS_POLICY, 16, Some(UDP), Some((53, 16))), 101),
        (entry(EGRESS_POLICY, 16, Some(SCTP), Some((80, 16))), 102),
        (entry(EGRESS_POLICY, 16, Some(ICMP), None), 103),
        (entry(EGRESS_POLICY, 16, Some(58), None), 103),
        (entry(INGRESS_POLICY, 16, Some(TCP), Some((8000, 14))), 104),
    ]
    .map(|(key, rule)| (key, allow(rule)))
    .into();
    SlotState {
        endpoints: [(1, endpoint)].into(),
        ipcache,
        policy,
    }
}

fn bench() -> Bench {
    bench_with(FlowEvents::All)
}

/// What one endpoint may hold in the verdict tests.
const LIMITS: Limits = Limits {
    conntrack_per_endpoint: 16,
    fragments_per_endpoint: 4,
};

fn bench_with(flow_events: FlowEvents) -> Bench {
    bench_sized(flow_events, 1024, LIMITS)
}

fn bench_sized(flow_events: FlowEvents, conntrack: u32, limits: Limits) -> Bench {
    bench_configured(flow_events, conntrack, limits, DenyBudgets::DEFAULT)
}

fn bench_configured(
    flow_events: FlowEvents,
    conntrack: u32,
    limits: Limits,
    budgets: DenyBudgets,
) -> Bench {
    assert!(
        nix_is_root(),
        "the verdict tests load eBPF programs: run them as root (scripts/test does)"
    );
    let sizes = MapSizes {
        conntrack,
        events_bytes: 1 << 16,
    };
    let (datapath, mut maps, telemetry) = Datapath::load(sizes, None).expect("load the datapath");
    maps.set_flow_events(flow_events).expect("set flow events");
    maps.set_limits(limits).expect("set limits");
    maps.set_deny_budgets(budgets)
        .expect("set denial record budgets");
    let mut publisher = Publisher::new(maps);
    publisher.publish(&policy()).expect("publish");
    Bench {
        datapath,
        publisher,
        telemetry,
    }
}

fn nix_is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

impl Bench {
    /// What the pod sends.
    fn egress(&mut self, frame: &Frame) -> u32 {
        self.datapath.run_program(false, &frame.bytes())
    }
    /// What the pod receives.
    fn ingress(&mut self, frame: &Frame) -> u32 {
        self.datapath.run_program(true, &frame.bytes())
    }
}

#[test]
fn an_interface_without_an_endpoint_is_denied_both_ways() {
    let mut bench = bench();
    let mut empty = policy();
    empty.endpoints.clear();
    bench.publisher.publish(&empty).expect("publish");
    assert_eq!(
        bench.egress(&Frame::tcp("10.0.0.1", 4000, "10.0.0.2", 80, SYN)),
        DROP
    );
    assert_eq!(
        bench.ingress(&Frame::tcp("10.0.0.2", 4000, "10.0.0.1", 8000, SYN)),
        DROP
    );
}

#[test]
fn an_allowed_connection_opens_and_its_replies_pass() {
    let mut bench = bench();
    assert_eq!(
        bench.egress(&Frame::tcp("10.0.0.1", 4000, "10.0.0.2", 80, SYN)),
        PASS
    );
    assert_eq!(
        bench.ingress(&Frame::tcp("10.0.0.2", 80, "10.0.0.1", 4000, SYN | ACK)),
        PASS
    );
    assert_eq!(
        bench.egress(&Frame::tcp("10.0.0.1", 4000, "10.0.0.2", 80, ACK)),
        PASS
    );
}

#[test]
fn a_reply_without_a_connection_is_not_a_new_connection() {
    let mut bench = bench();
    // The peer is allowed on port 8000 inbound, but a SYN-ACK or a bare ACK opens nothing.
    assert_eq!(
        bench.ingress(&Frame::tcp("10.0.0.2", 8000, "10.0.0.1", 4000, SYN | ACK)),
        DROP
    );
    assert_eq!(
        bench.ingress(&Frame::tcp("10.0.0.2", 4000, "10.0.0.1", 8000, ACK)),
        DROP
    );
    assert_eq!(
        bench.egress(&Frame::echo("10.0.0.1", "10.0.0.2", 7, true)),
        DROP
    );
}

#[test]
fn policy_decides_peer_protocol_and_port() {
    let mut bench = bench();
    assert_eq!(
        bench.egress(&Frame::tcp("10.0.0.1", 4001, "10.0.0.2", 81, SYN)),
        DROP
    );
    assert_eq!(
        bench.egress(&Frame::tcp("10.0.0.1", 4002, "10.0.0.3", 80, SYN)),
        DROP
    );
    assert_eq!(
        bench.egress(&Frame::udp("10.0.0.1", 4003, "10.0.0.2", 53)),
        PASS
    );
    assert_eq!(
        bench.egress(&Frame::udp("10.0.0.1", 4004, "10.0.0.2", 80)),
        DROP
    );
    // A port range by prefixes: 8000-8003 in, 7999 and 8004 out.
    assert_eq!(
        bench.ingress(&Frame::tcp("10.0.0.2", 5000, "10.0.0.1", 8003, SYN)),
        PASS
    );
    assert_eq!(
        bench.ingress(&Frame::tcp("10.0.0.2", 5001, "10.0.0.1", 8004, SYN)),
        DROP
    );
    assert_eq!(
        bench.ingress(&Frame::tcp("10.0.0.2", 5002, "10.0.0.1", 7999, SYN)),
        DROP
    );
}

#[test]
fn sctp_is_never_treated_as_tcp() {
    let mut bench = bench();
    assert_eq!(
        bench.egress(&Frame::sctp("10.0.0.1", 4000, "10.0.0.2", 80)),
        PASS
    );
    // Ingress allows TCP 8000, which must not admit SCTP 8000.
    assert_eq!(
        bench.ingress(&Frame::sctp("10.0.0.2", 4000, "10.0.0.1", 8000)),
        DROP
    );
}

#[test]
fn ipv6_with_extension_headers_is_classified_by_its_transport() {
    let mut bench = bench();
    let allowed = Frame::tcp("fd00::1", 4000, "fd00::2", 80, SYN)
        .with_extension(0)
        .with_extension(60);
    assert_eq!(bench.egress(&allowed), PASS);
    let denied = Frame::tcp("fd00::1", 4001, "fd00::2", 81, SYN)
        .with_extension(0)
        .with_extension(60);
    assert_eq!(bench.egress(&denied), DROP);
    let mut deep = Frame::tcp("fd00::1", 4002, "fd00::2", 80, SYN);
    for _ in 0..7 {
        deep = deep.with_extension(60);
    }
    assert_eq!(
        bench.egress(&deep),
        DROP,
        "more extension headers than the program walks"
    );
}

#[test]
fn truncated_and_malformed_headers_are_dropped() {
    let mut bench = bench();
    let syn = Frame::tcp("10.0.0.1", 4000, "10.0.0.2", 80, SYN).bytes();
    // Test runs refuse frames shorter than an IPv4 header, so a header that
    // claims more options than the frame holds stands in for a cut one.
    for cut in [14 + 20, 14 + 20 + 4, 14 + 20 + 12] {
        assert_eq!(
            bench.datapath.run_program(false, &syn[..cut]),
            DROP,
            "cut at {cut}"
        );
    }
    let mut bad_ihl = syn.clone();
    bad_ihl[14] = 0x43;
    assert_eq!(bench.datapath.run_program(false, &bad_ihl), DROP);
    let mut long_options = syn.clone();
    long_options[14] = 0x4f;
    assert_eq!(bench.datapath.run_program(false, &long_options), DROP);
    // Neither IPv4, IPv6 nor ARP.
    assert_eq!(
        bench
            .datapath
            .run_program(false, &ethernet(0x88cc, &[0; 46])),
        DROP
    );
    // ARP passes: pods must resolve their gateway.
    assert_eq!(
        bench
            .datapath
            .run_program(false, &ethernet(0x0806, &[0; 28])),
        PASS
    );
}

#[test]
fn fragments_pass_only_behind_an_admitted_first_fragment() {
    let mut bench = bench();
    let later = |id| {
        Frame::udp("10.0.0.1", 4000, "10.0.0.2", 53).fragmented(Fragment {
            id,
            offset: 4,
            more: false,
        })
    };
    assert_eq!(bench.egress(&later(9)), DROP, "no first fragment seen");
    let first = Frame::udp("10.0.0.1", 4000, "10.0.0.2", 53).fragmented(Fragment {
        id: 10,
        offset: 0,
        more: true,
    });
    assert_eq!(bench.egress(&first), PASS);
    assert_eq!(bench.egress(&later(10)), PASS);
    let denied_first = Frame::udp("10.0.0.1", 4000, "10.0.0.2", 99).fragmented(Fragment {
        id: 11,
        offset: 0,
        more: true,
    });
    assert_eq!(bench.egress(&denied_first), DROP);
    assert_eq!(
        bench.egress(&later(11)),
        DROP,
        "the first fragment was denied"
    );
}

#[test]
fn unknown_transport_protocols_need_a_rule_for_every_protocol() {
    let mut bench = bench();
    let unknown = Frame::new("10.0.0.1", "10.0.0.2", 253, vec![0; 16]);
    assert_eq!(bench.egress(&unknown), DROP);
    let mut open = policy();
    open.policy
        .insert(entry(EGRESS_POLICY, 16, None, None), allow(105));
    bench.publisher.publish(&open).expect("publish");
    assert_eq!(bench.egress(&unknown), PASS);
}

#[test]
fn a_pod_cannot_send_from_an_address_that_is_not_its_own() {
    let mut bench = bench();
    assert_eq!(
        bench.egress(&Frame::tcp("10.0.0.9", 4000, "10.0.0.2", 80, SYN)),
        DROP
    );
    assert_eq!(
        bench.ingress(&Frame::tcp("10.0.0.2", 4000, "10.0.0.9", 8000, SYN)),
        DROP
    );
}

#[test]
fn icmp_echo_and_errors_follow_the_connection() {
    let mut bench = bench();
    assert_eq!(
        bench.egress(&Frame::echo("10.0.0.1", "10.0.0.2", 7, false)),
        PASS
    );
    assert_eq!(
        bench.ingress(&Frame::echo("10.0.0.2", "10.0.0.1", 7, true)),
        PASS
    );
    assert_eq!(
        bench.ingress(&Frame::echo("10.0.0.2", "10.0.0.1", 8, true)),
        DROP
    );
    // Port unreachable about an allowed UDP flow passes; about another flow it does not.
    let sent = Frame::udp("10.0.0.1", 4500, "10.0.0.2", 53);
    assert_eq!(bench.egress(&sent), PASS);
    let error = |quoted: &Frame| {
        let mut body = vec![0; 4];
        body.extend_from_slice(&quoted.ip_bytes());
        Frame::icmp("10.0.0.2", "10.0.0.1", 3, &body)
    };
    assert_eq!(bench.ingress(&error(&sent)), PASS);
    assert_eq!(
        bench.ingress(&error(&Frame::udp("10.0.0.1", 4501, "10.0.0.2", 53))),
        DROP
    );
}

#[test]
fn revoking_an_allow_cuts_the_established_connection() {
    let mut bench = bench();
    let syn = Frame::tcp("10.0.0.1", 4000, "10.0.0.2", 80, SYN);
    let reply = Frame::tcp("10.0.0.2", 80, "10.0.0.1", 4000, SYN | ACK);
    assert_eq!(bench.egress(&syn), PASS);
    assert_eq!(bench.ingress(&reply), PASS);
    let mut revoked = policy();
    revoked
        .policy
        .retain(|key, _| key.protocol != Some(TCP) || key.policy != EGRESS_POLICY);
    revoked
        .endpoints
        .values_mut()
        .for_each(|e| e.ingress_policy = POLICY_DENY_ALL);
    bench.publisher.publish(&revoked).expect("publish");
    assert_eq!(
        bench.ingress(&Frame::tcp("10.0.0.2", 80, "10.0.0.1", 4000, ACK)),
        DROP
    );
    assert_eq!(
        bench.egress(&Frame::tcp("10.0.0.1", 4000, "10.0.0.2", 80, ACK)),
        DROP
    );
}

/// An established packet passes on its conntrack entry alone only while
/// the entry carries the active revision: once a revision takes its pod's
/// endpoint away, or gives the interface another address, the connection's
/// packets go the full way and are denied.
#[test]
fn an_established_connection_does_not_outlive_its_endpoint_or_its_address() {
    let established = |bench: &mut Bench| {
        assert_eq!(
            bench.egress(&Frame::tcp("10.0.0.1", 4000, "10.0.0.2", 80, SYN)),
            PASS
        );
        assert_eq!(
            bench.ingress(&Frame::tcp("10.0.0.2", 80, "10.0.0.1", 4000, SYN | ACK)),
            PASS
        );
    };
    let both_ways_denied = |bench: &mut Bench, why: &str| {
        let out = Frame::tcp("10.0.0.1", 4000, "10.0.0.2", 80, ACK);
        let back = Frame::tcp("10.0.0.2", 80, "10.0.0.1", 4000, ACK);
        assert_eq!(bench.egress(&out), DROP, "{why}: the pod's packet");
        assert_eq!(bench.ingress(&back), DROP, "{why}: the peer's packet");
    };

    let mut pod_gone = bench();
    established(&mut pod_gone);
    let mut gone = policy();
    gone.endpoints.clear();
    pod_gone.publisher.publish(&gone).expect("publish");
    both_ways_denied(&mut pod_gone, "endpoint gone");

    let mut pod_moved = bench();
    established(&mut pod_moved);
    let mut moved = policy();
    moved
        .endpoints
        .values_mut()
        .for_each(|endpoint| endpoint.ipv4 = [10, 0, 0, 9]);
    pod_moved.publisher.publish(&moved).expect("publish");
    both_ways_denied(&mut pod_moved, "address changed");
}

#[test]
fn a_new_syn_after_close_is_judged_as_a_new_connection() {
    let mut bench = bench();
    assert_eq!(
        bench.egress(&Frame::tcp("10.0.0.1", 4000, "10.0.0.2", 80, SYN)),
        PASS
    );
    assert_eq!(
        bench.egress(&Frame::tcp("10.0.0.1", 4000, "10.0.0.2", 80, FIN | ACK)),
        PASS
    );
    // The peer may not open a connection on the same tuple backwards.
    assert_eq!(
        bench.ingress(&Frame::tcp("10.0.0.2", 80, "10.0.0.1", 4000, SYN)),
        DROP
    );
}
