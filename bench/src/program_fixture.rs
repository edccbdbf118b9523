//! The programs of one eBPF object loaded for BPF_PROG_TEST_RUN with a
//! policy published, and the crafted 64-byte frames of its connections:
//! what `netseg-bench --sections program` and the criterion bench
//! `benches/programs.rs` time. The kernel runs a test as if the packet
//! crossed ifindex 1, so the pod is the endpoint of that interface.

use std::time::Duration;

use anyhow::{Result, ensure};
use netseg::datapath::{
    DenyBudgets, FlowEvents, KernelMaps, Limits, MapSizes,
    publish::Publisher,
    state::SlotState,
    test_run::{Program, TestPrograms},
};
use netseg_contract::{ENDPOINT_HAS_IPV4, Endpoint, PolicyValue, VERDICT_ALLOW};
use netseg_policy::{PolicyEntryKey, PortPrefix};
use netseg_testbed::packet::{ACK, Frame, SYN, TCP};

/// `TC_ACT_OK`.
pub const PASS: u32 = 0;
const TEST_RUN_IFINDEX: u32 = 1;
const POD: &str = "10.0.0.1";
const PEER: &str = "10.0.0.2";
const PEER_IDENTITY: u32 = 16;
/// The peer's port the pod may connect to.
const PEER_PORT: u16 = 80;
/// The pod's port the peer may connect to.
const POD_PORT: u16 = 8080;
const INGRESS_POLICY: u32 = 1;
const EGRESS_POLICY: u32 = 2;
pub const FRAME_BYTES: usize = 64;
const ETHERNET_IPV4_HEADERS: usize = 14 + 20;
/// The first port of a new connection's unpublished end (the pod's when it
/// connects, the peer's when the peer does); one more per connection.
const FIRST_PORT: u16 = 10_000;
/// The daemon's default limit of conntrack entries per endpoint, applied
/// here too; a fixture opens fewer new connections than this.
const CONNTRACK_PER_ENDPOINT: u32 = 32_768;
const MOST_CONNECTIONS: u16 = 30_000;

/// The programs of one object with a policy published: the pod at
/// 10.0.0.1 may open TCP connections to port 80 of the peer 10.0.0.2, and
/// the peer to port 8080 of the pod.
pub struct ProgramFixture {
    pub programs: TestPrograms,
    _policy: Publisher<KernelMaps>,
    next_port: u16,
    /// The pod ports of two open connections to the peer's port 80.
    pub connections: (u16, u16),
}

impl ProgramFixture {
    pub fn load(object: &[u8]) -> Result<Self> {
        // The daemon's default sizes and limits.
        let sizes = MapSizes {
            conntrack: 262_144,
            events_bytes: 4 << 20,
        };
        let (programs, mut maps) = TestPrograms::load(object, sizes)?;
        maps.set_flow_events(FlowEvents::All)?;
        maps.set_limits(Limits {
            conntrack_per_endpoint: CONNTRACK_PER_ENDPOINT,
            fragments_per_endpoint: 1_024,
        })?;
        maps.set_deny_budgets(DenyBudgets::DEFAULT)?;
        let mut policy = Publisher::new(maps);
        policy.publish(&slot_state()?)?;
        let mut fixture = Self {
            programs,
            _policy: policy,
            next_port: FIRST_PORT,
            connections: (0, 0),
        };
        fixture.connections = (fixture.connect()?, fixture.connect()?);
        Ok(fixture)
    }

    /// A port no connection of this fixture used yet.
    pub fn port(&mut self) -> Result<u16> {
        let port = self.next_port;
        ensure!(
            port < FIRST_PORT + MOST_CONNECTIONS,
            "{MOST_CONNECTIONS} connections opened: load the programs afresh"
        );
        self.next_port = port + 1;
        Ok(port)
    }

    /// New connections this fixture can still open without nearing the
    /// endpoint's conntrack limit.
    pub fn connections_left(&self) -> u16 {
        FIRST_PORT + MOST_CONNECTIONS - self.next_port
    }

    /// Opens a connection (the SYN out, the SYN-ACK back); its pod port.
    fn connect(&mut self) -> Result<u16> {
        let port = self.port()?;
        for (program, frame) in [
            (Program::PodEgress, segment(port, SYN, true)),
            (Program::PodIngress, segment(port, SYN | ACK, false)),
        ] {
            let verdict = self.programs.run(program, &frame, 1)?.verdict;
            ensure!(
                verdict == PASS,
                "{program:?} returned {verdict} opening the connection"
            );
        }
        self.programs.discard_events();
        Ok(port)
    }

    /// The first packet of a new allowed connection through `program`
    /// (from the pod to the peer's port 80 at pod egress, from the peer to
    /// the pod's port 8080 at pod ingress), one call of one run: the
    /// kernel's time of it (whole ns, its clock reads included).
    pub fn open(&mut self, program: Program) -> Result<Duration> {
        let port = self.port()?;
        let syn = match program {
            Program::PodEgress => segment(port, SYN, true),
            Program::PodIngress => inbound_syn(port),
        };
        let outcome = self.programs.run(program, &syn, 1)?;
        ensure!(
            outcome.verdict == PASS,
            "{program:?} returned {} on a new allowed connection's SYN",
            outcome.verdict
        );
        ensure!(
            self.programs.discard_events() == 1,
            "a new allowed connection's SYN left other than one flow event"
        );
        Ok(outcome.mean)
    }

    /// The 64-byte segment of the open connection from `pod_port` that
    /// `program` sees: an ACK out at pod egress, an ACK back at pod ingress.
    pub fn established(program: Program, pod_port: u16) -> Vec<u8> {
        segment(pod_port, ACK, program == Program::PodEgress)
    }
}

/// A 64-byte frame of the connection from the pod's `pod_port` to the
/// peer's port 80: `outbound` from the pod, otherwise from the peer.
pub fn segment(pod_port: u16, flags: u8, outbound: bool) -> Vec<u8> {
    let frame = if outbound {
        Frame::tcp(POD, pod_port, PEER, PEER_PORT, flags)
    } else {
        Frame::tcp(PEER, PEER_PORT, POD, pod_port, flags)
    };
    sixty_four_bytes(frame)
}

/// The SYN of a connection from the peer's `peer_port` to the pod's 8080.
fn inbound_syn(peer_port: u16) -> Vec<u8> {
    sixty_four_bytes(Frame::tcp(PEER, peer_port, POD, POD_PORT, SYN))
}

fn sixty_four_bytes(mut frame: Frame) -> Vec<u8> {
    frame.l4.resize(FRAME_BYTES - ETHERNET_IPV4_HEADERS, 0);
    frame.bytes()
}

fn slot_state() -> Result<SlotState> {
    let endpoint = Endpoint {
        ingress_policy: INGRESS_POLICY,
        egress_policy: EGRESS_POLICY,
        flags: ENDPOINT_HAS_IPV4,
        ipv4: [10, 0, 0, 1],
        ipv6: [0; 16],
    };
    let allow_tcp_port = |policy, port| PolicyEntryKey {
        policy,
        identity: PEER_IDENTITY,
        protocol: Some(TCP),
        port: Some(PortPrefix { port, len: 16 }),
    };
    let allow = PolicyValue {
        rule: 100,
        verdict: VERDICT_ALLOW,
        _pad: [0; 3],
    };
    Ok(SlotState {
        endpoints: [(TEST_RUN_IFINDEX, endpoint)].into(),
        ipcache: [(format!("{PEER}/32").parse()?, PEER_IDENTITY)].into(),
        policy: [
            (allow_tcp_port(EGRESS_POLICY, PEER_PORT), allow),
            (allow_tcp_port(INGRESS_POLICY, POD_PORT), allow),
        ]
        .into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_64_byte_ipv4_tcp_frames_of_the_connection() {
        let out = segment(10_000, ACK, true);
        assert_eq!(out.len(), FRAME_BYTES);
        assert_eq!(&out[12..14], &[0x08, 0x00], "IPv4");
        assert_eq!(
            u16::from_be_bytes([out[16], out[17]]),
            50,
            "IP total length"
        );
        assert_eq!(out[23], TCP);
        assert_eq!(&out[26..30], &[10, 0, 0, 1], "from the pod");
        let back = segment(10_000, ACK, false);
        assert_eq!(&back[30..34], &[10, 0, 0, 1], "to the pod");
        assert_eq!(u16::from_be_bytes([back[36], back[37]]), 10_000);
    }

    #[test]
    fn an_inbound_syn_is_from_the_peer_to_the_pods_allowed_port() {
        let syn = inbound_syn(12_345);
        assert_eq!(syn.len(), FRAME_BYTES);
        assert_eq!(&syn[26..30], &[10, 0, 0, 2], "from the peer");
        assert_eq!(&syn[30..34], &[10, 0, 0, 1], "to the pod");
        assert_eq!(u16::from_be_bytes([syn[34], syn[35]]), 12_345);
        assert_eq!(u16::from_be_bytes([syn[36], syn[37]]), POD_PORT);
        assert_eq!(syn[47], SYN, "TCP flags");
    }
}
