//! Root-only test harness of netseg.
//!
//! Every privileged test builds its own isolated world: a "node" network
//! namespace without uplink or default route, pod namespaces behind veth
//! pairs, servers and clients that run inside those namespaces, and the real
//! `netseg` daemon started inside the node namespace. Nothing touches the
//! machine's own interfaces, routes, sysctls or firewall, and no probe is
//! addressed outside the test's namespaces.
//!
//! Namespaces are named `nst-<pid>-<n>-<role>` and deleted on drop; the first
//! namespace a process creates first removes those left by dead processes.

pub mod blaster;
pub mod cni;
pub mod daemon;
pub mod manifests;
pub mod matrix;
pub mod netns;
pub mod outside;
pub mod packet;
pub mod probes;
pub mod raw;
pub mod reachability;
pub mod sctp;
pub mod servers;
pub mod suite;
pub mod topology;

pub use blaster::{UdpBlaster, UdpCounter};
pub use cni::{CniOutcome, CniPlugin};
pub use daemon::{
    Daemon, DaemonSource, DaemonStatus, InterfaceStatus, netseg_binary, workspace_binary,
};
pub use manifests::{ContainerPort, Manifests};
pub use matrix::{Probe, ServerSet};
pub use netns::{Netns, cleanup_stale_namespaces, in_netns, require_root};
pub use outside::Outside;
pub use probes::{
    ConnectOutcome, Delivery, Protocol, TcpSession, ping, ping_delivery, sctp_delivery, sctp_probe,
    tcp_connect, tcp_delivery, tcp_probe, udp_delivery, udp_request,
};
pub use raw::{Capture, send_frame, send_frames, send_ip, send_ips};
pub use reachability::{Mismatch, Reachability};
pub use servers::{SctpPacket, SctpReceiver, TcpEchoServer, UdpEchoServer};
pub use topology::{Family, Node, Pod};

use std::time::Duration;

/// Default time a single probe waits for an answer. Short on purpose: a
/// denied cell of a reachability matrix costs exactly this much, and the
/// matrix probes all cells in parallel.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
