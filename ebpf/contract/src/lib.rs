//! The datapath contract between netseg's kernel programs and its daemon.
//!
//! Every map key, map value and ring-buffer record is defined here once, as a
//! `#[repr(C)]` struct of fixed-width integers with explicit, zeroed padding.
//! Byte order: addresses and ports are in network byte order (as on the wire);
//! every other integer is in host byte order.
//!
//! Policy state is double-buffered: every policy map key starts with a `slot`
//! (0 or 1). The daemon writes the next policy into the inactive slot, then
//! publishes it with one 4-byte write of [`CONFIG_REVISION`]; the active slot
//! is `revision % 2`. A packet therefore sees either the old or the new policy,
//! never a mixture.
#![no_std]

use core::mem::size_of;

/// Direction as seen from the pod: traffic the pod receives.
pub const DIRECTION_INGRESS: u8 = 0;
/// Direction as seen from the pod: traffic the pod sends.
pub const DIRECTION_EGRESS: u8 = 1;

pub const VERDICT_ALLOW: u8 = 1;
pub const VERDICT_DENY: u8 = 2;

/// Why a packet got its verdict. Also the index of its per-CPU counter.
pub mod reason {
    /// A new connection that a rule (or the default action) allows.
    pub const NEW_ALLOWED: u8 = 1;
    /// A packet of a connection in the conntrack map, either direction.
    pub const ESTABLISHED: u8 = 2;
    /// An ICMP error about a connection in the conntrack map.
    pub const RELATED: u8 = 3;
    /// ARP, or IPv6 neighbour discovery and MLD kept on the link.
    pub const LINK_CONTROL: u8 = 4;
    /// A non-first fragment of a datagram whose first fragment passed.
    pub const FRAGMENT: u8 = 5;

    /// Reasons from here on deny; the ones below allow.
    pub const FIRST_DENY: u8 = 16;

    /// The interface has no endpoint in the active policy (fail-closed pod start).
    pub const NO_ENDPOINT: u8 = FIRST_DENY;
    /// A new connection that no rule allows.
    pub const POLICY_DENIED: u8 = 17;
    /// A packet that is not allowed to open a connection (a TCP segment
    /// without SYN, an echo reply) and belongs to none.
    pub const NO_CONNECTION: u8 = 18;
    /// An established connection that the current policy no longer allows.
    pub const REVOKED: u8 = 19;
    /// The pod sent from, or was sent to, an address that is not its own.
    pub const SPOOFED: u8 = 20;
    /// A truncated or malformed header.
    pub const MALFORMED: u8 = 21;
    /// A non-first fragment whose first fragment was not seen or not allowed.
    pub const FRAGMENT_UNKNOWN: u8 = 22;
    /// An ethertype other than IPv4, IPv6 and ARP.
    pub const UNSUPPORTED_L3: u8 = 23;
    /// More IPv6 extension headers than the program walks.
    pub const EXTENSION_HEADERS: u8 = 24;
    /// Neighbour discovery or MLD that would leave the link: addressed
    /// beyond it, or sent from an address that is not the pod's.
    pub const OFF_LINK: u8 = 25;
    /// An ICMP error that does not travel between the two ends of the
    /// connection it quotes (nor comes from a party whose ICMP the pod's
    /// ingress admits), or is longer than an error needs to be.
    pub const ICMP_ERROR_MISDIRECTED: u8 = 26;
    /// A new connection refused because its endpoint holds its share of the
    /// conntrack table, or the table is full: the newcomer fails, never an
    /// established connection.
    pub const CONNTRACK_FULL: u8 = 27;
    /// A first fragment refused because its endpoint holds its share of the
    /// fragment table, or the table is full.
    pub const FRAGMENTS_FULL: u8 = 28;

    /// Counter index: flow events that cannot reach the log: an allowed
    /// connection's event when the ring buffer was full, a denial whose
    /// [`DenyCountKey`](super::DenyCountKey) did not fit into `DENY_COUNTS`.
    pub const COUNTER_EVENTS_LOST: u8 = 30;
    /// Counter index: denials counted in `DENY_COUNTS` (and so in an
    /// aggregated record) instead of getting a record of their own.
    pub const COUNTER_EVENTS_SAMPLED: u8 = 31;
}

/// Number of per-CPU counters (indices are the [`reason`] codes).
pub const COUNTER_COUNT: u32 = 32;

/// Reserved rule ids; compiled rules start at [`FIRST_COMPILED_RULE`].
pub mod rule {
    /// No rule: the packet was denied because nothing allowed it.
    pub const NONE: u32 = 0;
    /// The direction is not isolated and the default action is allow.
    pub const DEFAULT_ALLOW: u32 = 1;
    /// Traffic from the node itself to a local pod (kubelet probes).
    pub const NODE_TRAFFIC: u32 = 2;
    /// Nothing decided and the default action is deny.
    pub const DEFAULT_DENY: u32 = 3;
}
pub const FIRST_COMPILED_RULE: u32 = 16;

/// Reserved peer identities; compiled identities start at [`FIRST_COMPILED_IDENTITY`].
pub mod identity {
    /// In a policy key only: the rule applies to every peer.
    pub const ANY: u32 = 0;
    /// An address the ipcache does not know.
    pub const WORLD: u32 = 1;
}
pub const FIRST_COMPILED_IDENTITY: u32 = 16;

/// Policy id 0 allows nothing.
pub const POLICY_DENY_ALL: u32 = 0;

/// Index of the active revision in the `CONFIG` array map.
pub const CONFIG_REVISION: u32 = 0;
/// Index of the flow events the operator turned off ([`flow_events_off`]
/// bits) in the `CONFIG` array map. Zero, as a fresh map holds, reports
/// everything. Verdicts and counters do not depend on it.
pub const CONFIG_FLOW_EVENTS_OFF: u32 = 1;
/// Index of the most `CONNECTIONS` entries one endpoint may hold in the
/// `CONFIG` array map. Zero, as a fresh map holds, admits no new connection.
pub const CONFIG_CONNTRACK_PER_ENDPOINT: u32 = 2;
/// Index of the most `FRAGMENTS` entries one endpoint may hold.
pub const CONFIG_FRAGMENTS_PER_ENDPOINT: u32 = 3;
/// Index in `CONFIG`: denials one endpoint (interface and direction) may
/// report with a record of their own per second; the rest are counted in
/// `DENY_COUNTS`. Zero, as a fresh map holds, gives every denial to the counts.
pub const CONFIG_DENY_RECORDS_PER_ENDPOINT: u32 = 4;
/// Index in `CONFIG`: the same budget for all endpoints together.
pub const CONFIG_DENY_RECORDS_TOTAL: u32 = 5;
pub const CONFIG_ENTRIES: u32 = 8;

/// The tables the daemon publishes are double-buffered: each holds two
/// slots (revisions), the active one and the one being written. What one
/// slot may hold:
/// local endpoints (pod interfaces),
pub const ENDPOINT_SLOT_ENTRIES: u32 = 4096;
/// address prefixes of each family in the ipcache,
pub const IPCACHE_SLOT_ENTRIES: u32 = 262144;
/// and policy entries.
pub const POLICY_SLOT_ENTRIES: u32 = 262144;
/// Slots per published table.
pub const SLOTS: u32 = 2;

/// Bits of `CONFIG[CONFIG_FLOW_EVENTS_OFF]`.
pub mod flow_events_off {
    /// No event for an allowed new connection.
    pub const ALLOWED: u32 = 1;
    /// No event for a denied packet (and no denial sampling state).
    pub const DENIED: u32 = 2;
}

/// Key of `ENDPOINTS`: the ifindex of a pod's host-side interface in one slot.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EndpointKey {
    pub slot: u32,
    pub ifindex: u32,
}

/// `Endpoint::flags`: `ipv4` holds the pod's IPv4 address.
pub const ENDPOINT_HAS_IPV4: u32 = 1;
/// `Endpoint::flags`: `ipv6` holds the pod's IPv6 address.
pub const ENDPOINT_HAS_IPV6: u32 = 2;

/// A local pod: the policies of its two directions and its own addresses
/// (anything else it sends from, or is sent to, is spoofed).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    pub ingress_policy: u32,
    pub egress_policy: u32,
    pub flags: u32,
    pub ipv4: [u8; 4],
    pub ipv6: [u8; 16],
}

/// LPM data of `IPCACHE_V4`: prefix length = 32 (slot) + address prefix.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpcacheV4Key {
    pub slot: u32,
    pub addr: [u8; 4],
}

/// LPM data of `IPCACHE_V6`: prefix length = 32 (slot) + address prefix.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpcacheV6Key {
    pub slot: u32,
    pub addr: [u8; 16],
}

/// Bits of [`PolicyKey`] before the protocol: slot, policy and identity.
pub const POLICY_PREFIX_ANY_PROTOCOL: u32 = 96;
/// Bits of [`PolicyKey`] up to and including the protocol.
pub const POLICY_PREFIX_ANY_PORT: u32 = 104;
/// Bits of a fully specified [`PolicyKey`].
pub const POLICY_PREFIX_FULL: u32 = 120;

/// LPM data of `POLICY`. A rule for a port range becomes a few prefixes of
/// `port`; a rule for every port stops at the protocol; a rule for every
/// protocol stops at the identity.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicyKey {
    pub slot: u32,
    pub policy: u32,
    pub identity: u32,
    pub protocol: u8,
    /// Destination port of the connection, network byte order.
    pub port: [u8; 2],
    pub _pad: u8,
}

/// What a `POLICY` entry decides. Precedence (tiers, Pass, deny over a
/// later allow) was resolved when compiling: the entry holds the final
/// verdict and the id of the compiled verdict that names what decided it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicyValue {
    /// The compiled verdict id (a [`rule`] id), reported in flow events.
    pub rule: u32,
    /// [`VERDICT_ALLOW`] or [`VERDICT_DENY`].
    pub verdict: u8,
    pub _pad: [u8; 3],
}

/// Key of `CONNECTIONS`: one connection as seen at one endpoint, its
/// pod's end first whichever end sent its first packet, so that a packet
/// and its reply find the entry with one lookup ([`ConnValue::origin`] says
/// which way the connection was opened). IPv4 addresses are IPv4-mapped
/// IPv6.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnKey {
    pub ifindex: u32,
    pub protocol: u8,
    pub _pad: [u8; 3],
    pub pod_port: u16,
    pub peer_port: u16,
    pub pod: [u8; 16],
    pub peer: [u8; 16],
}

/// One packet's addresses and ports, source first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ends {
    pub src: [u8; 16],
    pub src_port: u16,
    pub dst: [u8; 16],
    pub dst_port: u16,
}

impl ConnKey {
    /// The key of the connection a packet of `ends` belongs to, seen at
    /// `ifindex` going `direction`: the pod sends at egress and receives
    /// at ingress.
    #[inline(always)]
    pub fn of(ifindex: u32, direction: u8, protocol: u8, ends: &Ends) -> Self {
        let (pod, pod_port, peer, peer_port) = if direction == DIRECTION_EGRESS {
            (ends.src, ends.src_port, ends.dst, ends.dst_port)
        } else {
            (ends.dst, ends.dst_port, ends.src, ends.src_port)
        };
        Self {
            ifindex,
            protocol,
            _pad: [0; 3],
            pod_port,
            peer_port,
            pod,
            peer,
        }
    }

    /// The ends of a packet going `direction` on this connection.
    #[inline(always)]
    pub fn ends(&self, direction: u8) -> Ends {
        if direction == DIRECTION_EGRESS {
            Ends {
                src: self.pod,
                src_port: self.pod_port,
                dst: self.peer,
                dst_port: self.peer_port,
            }
        } else {
            Ends {
                src: self.peer,
                src_port: self.peer_port,
                dst: self.pod,
                dst_port: self.pod_port,
            }
        }
    }
}

/// A reply was seen.
pub const CONN_OPEN: u32 = 0;
/// A FIN or RST was seen: the entry expires after [`CONN_CLOSING_TIMEOUT_NS`]
/// and a new SYN on the same tuple is a new connection.
pub const CONN_CLOSING: u32 = 1;
/// Only the first direction has been seen (a SYN without answer, a datagram
/// without reply): the entry expires after [`CONN_HALF_OPEN_TIMEOUT_NS`].
pub const CONN_HALF_OPEN: u32 = 2;

/// Idle lifetimes. Linux conntrack keeps an established TCP connection five
/// days, a UDP flow 120 s once answered; netseg keeps 6 h and 60 s.
pub const CONN_TCP_TIMEOUT_NS: u64 = 6 * 3600 * 1_000_000_000;
pub const CONN_OTHER_TIMEOUT_NS: u64 = 60 * 1_000_000_000;
/// Linux: TCP CLOSE 10 s (TIME_WAIT 120 s). A late segment of a closed
/// connection is dropped; a new SYN opens a new one.
pub const CONN_CLOSING_TIMEOUT_NS: u64 = 10 * 1_000_000_000;
/// Linux: UDP unreplied 30 s, TCP SYN_SENT 120 s. 30 s for every protocol:
/// a SYN retransmitted later re-asks the policy and opens the entry again,
/// so the shorter life costs a slow peer nothing and returns a flooding
/// endpoint's share four times sooner.
pub const CONN_HALF_OPEN_TIMEOUT_NS: u64 = 30 * 1_000_000_000;

/// How long before `now` something was stamped. The hooks of one endpoint
/// run on several CPUs at once (a pod's FIN on one, its peer's crossing FIN
/// or ACK on another), so a packet that read the clock before another CPU
/// stamped the entry sees a stamp later than its `now`: that is an age of
/// zero. Wrapping it would make a live connection look centuries idle, and
/// the lookup would delete it and drop the rest of its packets.
#[inline(always)]
pub fn age_ns(now: u64, stamp: u64) -> u64 {
    now.saturating_sub(stamp)
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnValue {
    pub last_seen_ns: u64,
    /// The revision whose policy last allowed this connection.
    pub revision: u32,
    pub rule: u32,
    pub state: u32,
    /// Direction of the connection's first packet: [`DIRECTION_INGRESS`]
    /// or [`DIRECTION_EGRESS`]. Set when the entry is made, never changed.
    pub origin: u8,
    pub _pad: [u8; 3],
    /// When the connection's first packet was seen: with the key, it tells
    /// a connection from a later one on the same tuple.
    pub opened_ns: u64,
    /// What the connection's source sent ([`FORWARD`]) and its destination
    /// sent back ([`REPLY`]) since it opened, each side a [`traffic`]
    /// counter: one atomic add a packet.
    pub traffic: [u64; 2],
}

/// Index of [`ConnValue::traffic`]: what the connection's first packet's
/// sender sent.
pub const FORWARD: usize = 0;
/// Index of what the other end sent back.
pub const REPLY: usize = 1;

/// Packets and IP bytes (from the IP header on; a GSO/GRO super-packet is
/// one packet) in one `u64`, so that the programs count a packet with one
/// atomic add rather than two: every packet adds
/// [`traffic::packet`]`(ip_bytes)`, `2^BYTE_BITS + ip_bytes`, wrapping.
/// The counter alone says nothing; the difference of two readings does
/// ([`traffic::Sent::between`]), exactly while fewer than 2^26 packets
/// (67 million) and 2^38 bytes (256 GiB) passed between them. The exporter
/// reads every 2 s; one side of one connection at one hook would have to
/// carry 33 million packets or 1 Tbit a second to overflow that.
pub mod traffic {
    /// The low bits hold the bytes, the high 26 the packets.
    pub const BYTE_BITS: u32 = 38;
    const BYTE_MASK: u64 = (1 << BYTE_BITS) - 1;

    /// What one packet of `ip_bytes` adds to its side's counter.
    #[inline(always)]
    pub const fn packet(ip_bytes: u64) -> u64 {
        (1 << BYTE_BITS) + (ip_bytes & BYTE_MASK)
    }

    /// The counter of `packets` packets of `bytes` bytes in all.
    pub const fn counted(packets: u64, bytes: u64) -> u64 {
        (packets << BYTE_BITS).wrapping_add(bytes)
    }

    /// What one side sent between two readings of its counter.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct Sent {
        pub packets: u64,
        pub bytes: u64,
    }

    impl Sent {
        pub const fn between(before: u64, after: u64) -> Self {
            let grown = after.wrapping_sub(before);
            Self {
                packets: grown >> BYTE_BITS,
                bytes: grown & BYTE_MASK,
            }
        }
    }
}

impl ConnValue {
    /// Whether the entry outlived its idle lifetime at `now` (`bpf_ktime_get_ns`).
    #[inline(always)]
    pub fn expired(&self, protocol: u8, now: u64) -> bool {
        let lifetime = match self.state {
            CONN_CLOSING => CONN_CLOSING_TIMEOUT_NS,
            CONN_HALF_OPEN => CONN_HALF_OPEN_TIMEOUT_NS,
            _ if protocol == PROTO_TCP => CONN_TCP_TIMEOUT_NS,
            _ => CONN_OTHER_TIMEOUT_NS,
        };
        age_ns(now, self.last_seen_ns) > lifetime
    }
}

/// Key of `FRAGMENTS`: one fragmented datagram at one endpoint, so that a
/// first fragment admitted at one hook admits nothing at another. `protocol`
/// is IPv4's protocol field, or the Next Header of IPv6's Fragment header
/// (the same in every fragment, whatever extension headers follow it).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FragmentKey {
    pub ifindex: u32,
    pub id: u32,
    pub protocol: u8,
    pub direction: u8,
    pub _pad: [u8; 2],
    pub src: [u8; 16],
    pub dst: [u8; 16],
}

/// A fragment entry admits later fragments this long after the first one.
/// Linux gives up reassembly after 30 s (`ipfrag_time`); the fragments of
/// a datagram leave their sender back to back, so 5 s is ample and keeps
/// what an endpoint can hold with incomplete datagrams small.
pub const FRAGMENT_TIMEOUT_NS: u64 = 5 * 1_000_000_000;

/// What admitted a datagram's first fragment: enough to ask the policy in
/// force again about its connection when a later fragment comes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FragmentValue {
    pub first_seen_ns: u64,
    /// The revision whose policy last allowed the datagram's connection.
    pub revision: u32,
    pub rule: u32,
    /// Direction of the connection's first packet: the datagram is a reply
    /// when it differs from the key's direction.
    pub origin: u8,
    /// The transport protocol of the datagram.
    pub protocol: u8,
    /// Ports of the datagram, network byte order.
    pub src_port: u16,
    pub dst_port: u16,
    pub _pad: u16,
}

impl FragmentValue {
    #[inline(always)]
    pub fn expired(&self, now: u64) -> bool {
        age_ns(now, self.first_seen_ns) > FRAGMENT_TIMEOUT_NS
    }
}

/// Key of `USAGE` (values `u64`, the smallest width BPF programs add to
/// atomically): what one endpoint holds of one table for the connections
/// of one origin, as counted by one writer. The programs count with atomic
/// adds; the daemon cannot add to a map value atomically, so it keeps its
/// own count (entries it handed over minus entries it reclaimed, wrapping)
/// in its own entry, which only it writes. What the endpoint holds is the
/// wrapping sum of both.
///
/// Each origin is a share of its own, each as large as the configured
/// limit: entries of connections others open toward the endpoint (its
/// ingress) cannot use up the share of the connections it opens itself.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UsageKey {
    pub ifindex: u32,
    /// [`USAGE_CONNTRACK`] or [`USAGE_FRAGMENTS`].
    pub table: u8,
    /// [`USAGE_BY_PROGRAMS`] or [`USAGE_BY_DAEMON`].
    pub writer: u8,
    /// Direction of the first packet of the entry's connection
    /// ([`DIRECTION_INGRESS`] or [`DIRECTION_EGRESS`]): `ConnValue::origin`,
    /// `FragmentValue::origin`.
    pub origin: u8,
    pub _pad: u8,
}

pub const USAGE_CONNTRACK: u8 = 0;
pub const USAGE_FRAGMENTS: u8 = 1;
pub const USAGE_BY_PROGRAMS: u8 = 0;
pub const USAGE_BY_DAEMON: u8 = 1;

/// A denied flow (one [`ConnKey`], either direction) gets a record of its own at most once per
/// [`DENY_SAMPLE_INTERVAL_NS`] (`DENY_SAMPLES` holds the time of the last);
/// the ones in between are counted in `DENY_COUNTS`.
pub const DENY_SAMPLE_INTERVAL_NS: u64 = 1_000_000_000;

/// Key of `DENY_BUDGETS`: the denial records of one endpoint (interface and
/// direction) in the current second, or of all endpoints ([`BudgetKey::ALL`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BudgetKey {
    pub ifindex: u32,
    pub direction: u8,
    pub _pad: [u8; 3],
}

impl BudgetKey {
    /// Every endpoint together: ifindex 0 names no interface.
    pub const ALL: Self = Self::endpoint(0, 0);

    pub const fn endpoint(ifindex: u32, direction: u8) -> Self {
        Self {
            ifindex,
            direction,
            _pad: [0; 3],
        }
    }
}

/// Value of `DENY_BUDGETS`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordBudget {
    /// `bpf_ktime_get_ns() / 1e9` of the second `used` counts.
    pub second: u64,
    /// Records of their own granted in that second.
    pub used: u64,
}

/// Key of `DENY_COUNTS`, whose value (u64) counts every denial of an
/// endpoint for a reason that got no record of its own. The counts only
/// grow: the daemon reports the difference to its previous reading, so a
/// reading never races with the programs and a count never waits for the
/// next denial to be reported.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DenyCountKey {
    pub ifindex: u32,
    pub direction: u8,
    pub reason: u8,
    pub _pad: [u8; 2],
}

/// Flow event in the `EVENTS` ring buffer: a new connection, or a denied packet.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowEvent {
    /// `bpf_ktime_get_ns` (CLOCK_MONOTONIC).
    pub timestamp_ns: u64,
    pub ifindex: u32,
    pub rule: u32,
    pub revision: u32,
    pub _pad: u32,
    /// IPv4-mapped for IPv4.
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub src_port: u16,
    pub dst_port: u16,
    pub protocol: u8,
    pub direction: u8,
    pub verdict: u8,
    pub reason: u8,
}

/// Longest ICMP error, IP header included, that passes: what RFC 1812
/// (4.3.2.3) lets a router quote, and what Linux sends at most. Anything
/// longer carries more than the quoted packet's headers.
pub const ICMP_ERROR_MAX_LEN_V4: u32 = 576;
/// The same for ICMPv6: the IPv6 minimum MTU, which RFC 4443 (2.4 c)
/// makes the upper bound of an error.
pub const ICMP_ERROR_MAX_LEN_V6: u32 = 1280;

pub const PROTO_ICMP: u8 = 1;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
pub const PROTO_ICMPV6: u8 = 58;
pub const PROTO_SCTP: u8 = 132;

const _: () = assert!(size_of::<EndpointKey>() == 8);
const _: () = assert!(size_of::<Endpoint>() == 32);
const _: () = assert!(size_of::<IpcacheV4Key>() == 8);
const _: () = assert!(size_of::<IpcacheV6Key>() == 20);
const _: () = assert!(size_of::<PolicyKey>() == 16);
const _: () = assert!(size_of::<PolicyValue>() == 8);
const _: () = assert!(size_of::<ConnKey>() == 44);
const _: () = assert!(size_of::<ConnValue>() == 48);
const _: () = assert!(size_of::<FragmentKey>() == 44);
const _: () = assert!(size_of::<FragmentValue>() == 24);
const _: () = assert!(size_of::<UsageKey>() == 8);
const _: () = assert!(size_of::<BudgetKey>() == 8);
const _: () = assert!(size_of::<RecordBudget>() == 16);
const _: () = assert!(size_of::<DenyCountKey>() == 8);
const _: () = assert!(size_of::<FlowEvent>() == 64);

#[cfg(feature = "user")]
mod user {
    use super::*;
    // SAFETY: every type is repr(C), Copy, made of integers and byte arrays,
    // with all padding spelled out as fields, so any bit pattern is valid.
    unsafe impl aya::Pod for EndpointKey {}
    unsafe impl aya::Pod for Endpoint {}
    unsafe impl aya::Pod for IpcacheV4Key {}
    unsafe impl aya::Pod for IpcacheV6Key {}
    unsafe impl aya::Pod for PolicyKey {}
    unsafe impl aya::Pod for PolicyValue {}
    unsafe impl aya::Pod for ConnKey {}
    unsafe impl aya::Pod for ConnValue {}
    unsafe impl aya::Pod for FragmentKey {}
    unsafe impl aya::Pod for FragmentValue {}
    unsafe impl aya::Pod for UsageKey {}
    unsafe impl aya::Pod for BudgetKey {}
    unsafe impl aya::Pod for RecordBudget {}
    unsafe impl aya::Pod for DenyCountKey {}
    unsafe impl aya::Pod for FlowEvent {}
}

#[cfg(test)]
mod tests {
    use super::traffic::{Sent, counted, packet};

    #[test]
    fn a_traffic_counter_tells_what_was_sent_between_two_readings() {
        let before = counted(7, 896);
        let after = (0..3).fold(before, |counter, _| counter.wrapping_add(packet(1_500)));
        assert_eq!(
            Sent::between(before, after),
            Sent {
                packets: 3,
                bytes: 4_500
            }
        );
    }

    #[test]
    fn a_traffic_counter_wraps_without_losing_a_packet_or_a_byte() {
        // The bytes carry into the packets, and the whole counter wraps.
        for before in [counted(5, (1 << 38) - 10), u64::MAX - 100] {
            let after = before
                .wrapping_add(packet(100))
                .wrapping_add(packet(64_000));
            assert_eq!(
                Sent::between(before, after),
                Sent {
                    packets: 2,
                    bytes: 64_100
                },
                "from {before:#x}"
            );
        }
    }
}
