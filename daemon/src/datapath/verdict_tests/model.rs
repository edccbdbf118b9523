//! A readable model of the datapath's verdict rules, for the differential
//! fuzzer. It is written from the rules as the README's flow record reasons
//! and the programs' doc comments state them, not from the programs' code:
//! where the two disagree, one of them is wrong.
//!
//! The rules, in the order they apply to a packet at one endpoint
//! ([`Rules`] switches those that issue 8 changed):
//! 1. A frame that cannot be read is dropped: `unsupported-l3` (not IPv4,
//!    IPv6 or ARP), `extension-headers` (more than six), `malformed` (also
//!    an IPv4-mapped address in IPv6).
//! 2. ARP, neighbour discovery and MLD are link control: the last two with
//!    the hop limit that proves they were not forwarded (else `malformed`),
//!    with an endpoint, and on the link (`off-link`).
//! 3. An interface without an endpoint denies (`no-endpoint`); a pod may
//!    only send from and be sent to its own addresses (`spoofed`).
//! 4. A later fragment passes behind an admitted first fragment of the same
//!    datagram at the same hook (`fragment`, else `fragment-unknown`) while
//!    the policy in force allows its connection (`revoked`).
//! 5. An ICMP error passes when it is small and travels between the ends of
//!    the connection it quotes (else `icmp-error-misdirected`), when that is
//!    a connection of the endpoint (`related`, else `no-connection`) and
//!    the policy in force still allows it (`revoked`).
//! 6. Any other packet continues a tracked connection (`established`, or
//!    `revoked` when the policy in force no longer allows it), or opens one
//!    (`new-connection`, `policy-denied`); a TCP segment other than a bare
//!    SYN and an echo reply never open one (`no-connection`).
//! 7. An endpoint holds at most its share of connections and of fragmented
//!    datagrams for each origin (what it opened, what was opened toward
//!    it): beyond it a new one is refused (`conntrack-full`,
//!    `fragments-full`), never evicts another. A datagram's entry is never
//!    taken over: its first fragment again is admitted by it, another
//!    origin's reusing its key finds no room.

mod fragments;
mod policy;
mod read;
mod rules;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netseg_contract::reason;

use super::super::{Limits, state::SlotState};
pub use read::{ICMP, ICMPV6, Kind, Packet, SCTP, TCP, UDP};
pub use rules::Rules;

/// The endpoint's interface in test runs.
const IFINDEX: u32 = 1;

const TCP_FIN: u8 = 0x01;
const TCP_SYN: u8 = 0x02;
const TCP_RST: u8 = 0x04;
const TCP_ACK: u8 = 0x10;

/// An address; IPv4 as IPv4-mapped IPv6, as the datapath keeps it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Addr(pub [u8; 16]);

impl Addr {
    fn v4(octets: &[u8]) -> Self {
        let v4 = Ipv4Addr::new(octets[0], octets[1], octets[2], octets[3]);
        Self(v4.to_ipv6_mapped().octets())
    }

    pub fn ip(self) -> IpAddr {
        let v6 = Ipv6Addr::from(self.0);
        match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        }
    }

    fn is_ipv4_mapped(self) -> bool {
        Ipv6Addr::from(self.0).to_ipv4_mapped().is_some()
    }
}

impl From<IpAddr> for Addr {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self(v4.to_ipv6_mapped().octets()),
            IpAddr::V6(v6) => Self(v6.octets()),
        }
    }
}

/// A packet's addressing; ports in host order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tuple {
    pub src: Addr,
    pub dst: Addr,
    pub protocol: u8,
    pub src_port: u16,
    pub dst_port: u16,
}

impl Tuple {
    pub fn reversed(self) -> Self {
        Self {
            src: self.dst,
            dst: self.src,
            src_port: self.dst_port,
            dst_port: self.src_port,
            ..self
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    /// What the pod sends.
    Egress,
    /// What the pod receives.
    Ingress,
}

impl Direction {
    fn opposite(self) -> Self {
        match self {
            Self::Egress => Self::Ingress,
            Self::Ingress => Self::Egress,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub allow: bool,
    pub reason: u8,
    /// The rule a flow record names: the one that allowed the packet or
    /// its connection, or the one whose connection was cut; else 0.
    pub rule: u32,
}

impl Verdict {
    fn allow(reason: u8, rule: u32) -> Self {
        Self {
            allow: true,
            reason,
            rule,
        }
    }

    fn deny(reason: u8) -> Self {
        Self::cut(reason, 0)
    }

    /// A denial of what `rule` once allowed.
    fn cut(reason: u8, rule: u32) -> Self {
        Self {
            allow: false,
            reason,
            rule,
        }
    }
}

/// A tracked connection: the direction and tuple of its first packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Connection {
    pub origin: Direction,
    pub tuple: Tuple,
}

impl Connection {
    /// The far end, whose identity the policy is asked about.
    fn peer(&self) -> Addr {
        match self.origin {
            Direction::Egress => self.tuple.dst,
            Direction::Ingress => self.tuple.src,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct ConnectionState {
    /// The revision whose policy last allowed the connection, and the rule.
    revision: u32,
    rule: u32,
    closing: bool,
}

/// One fragmented datagram at one hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Datagram {
    pub direction: Direction,
    pub src: Addr,
    pub dst: Addr,
    pub protocol: u8,
    pub id: u32,
}

/// What the first fragment left for the later ones.
#[derive(Clone, Copy, Debug)]
struct FirstFragment {
    /// The connection that admitted it, re-asked under a new revision.
    connection: Option<Connection>,
    revision: u32,
    rule: u32,
}

pub struct Model {
    rules: Rules,
    limits: Limits,
    policy: SlotState,
    revision: u32,
    connections: HashMap<Connection, ConnectionState>,
    datagrams: HashMap<Datagram, FirstFragment>,
}

impl Model {
    /// The datapath with the shares of `limits` after `policy` was
    /// published as revision 1.
    pub fn new(rules: Rules, limits: Limits, policy: SlotState) -> Self {
        Self {
            rules,
            limits,
            policy,
            revision: 1,
            connections: HashMap::new(),
            datagrams: HashMap::new(),
        }
    }

    /// A publication: a new revision when the policy changed.
    pub fn publish(&mut self, policy: SlotState) {
        if policy != self.policy {
            self.policy = policy;
            self.revision += 1;
        }
    }

    /// Connections opened so far (some may have been cut since).
    pub fn connections(&self) -> impl Iterator<Item = &Connection> {
        self.connections.keys()
    }

    /// Datagrams whose first fragment passed.
    pub fn datagrams(&self) -> impl Iterator<Item = &Datagram> {
        self.datagrams.keys()
    }

    /// The verdict on `frame` seen at `direction`, updating the state as
    /// the datapath would.
    pub fn judge(&mut self, direction: Direction, frame: &[u8]) -> Verdict {
        let packet = match read::read(frame, &self.rules) {
            Ok(packet) => packet,
            Err(why) => return Verdict::deny(why),
        };
        let verdict = self.judge_packet(direction, &packet);
        if verdict.allow && packet.first_fragment {
            return self.remember_first_fragment(direction, &packet, verdict);
        }
        verdict
    }

    fn judge_packet(&mut self, direction: Direction, packet: &Packet) -> Verdict {
        if let Some(verdict) = self.rules.link_control(self, direction, packet) {
            return verdict;
        }
        if let Err(why) = self.endpoint_and_spoofing(direction, &packet.tuple) {
            return Verdict::deny(why);
        }
        match packet.kind {
            Kind::LaterFragment => self.later_fragment(direction, packet),
            Kind::IcmpError { quoted } => self.icmp_error(direction, packet, quoted),
            _ => self.flow(direction, packet),
        }
    }

    /// The pod's own address of the family of `addr`.
    fn own_address(&self, addr: Addr) -> Option<Addr> {
        use netseg_contract::{ENDPOINT_HAS_IPV4, ENDPOINT_HAS_IPV6};
        let endpoint = self.policy.endpoints.get(&IFINDEX)?;
        if addr.is_ipv4_mapped() {
            (endpoint.flags & ENDPOINT_HAS_IPV4 != 0)
                .then(|| Addr::from(IpAddr::from(endpoint.ipv4)))
        } else {
            (endpoint.flags & ENDPOINT_HAS_IPV6 != 0).then_some(Addr(endpoint.ipv6))
        }
    }

    fn has_endpoint(&self) -> bool {
        self.policy.endpoints.contains_key(&IFINDEX)
    }

    /// Rule 3: the endpoint, and the pod's end of the packet is its own.
    fn endpoint_and_spoofing(&self, direction: Direction, tuple: &Tuple) -> Result<(), u8> {
        if !self.has_endpoint() {
            return Err(reason::NO_ENDPOINT);
        }
        let own = match direction {
            Direction::Egress => tuple.src,
            Direction::Ingress => tuple.dst,
        };
        if self.own_address(own) != Some(own) {
            return Err(reason::SPOOFED);
        }
        Ok(())
    }

    /// Rule 6.
    fn flow(&mut self, direction: Direction, packet: &Packet) -> Verdict {
        let tuple = packet.tuple;
        let tcp = tuple.protocol == TCP;
        let bare_syn = tcp && packet.tcp_flags & (TCP_SYN | TCP_ACK | TCP_RST | TCP_FIN) == TCP_SYN;
        let tracked = self.tracked(direction, tuple);
        if let Some(connection) = tracked {
            let closing = self.connections[&connection].closing;
            // A bare SYN on a closing tuple opens a new connection (port reuse).
            if !(bare_syn && closing) {
                let rule = match self.reaffirm(connection) {
                    Ok(rule) => rule,
                    Err(rule) => return Verdict::cut(reason::REVOKED, rule),
                };
                if tcp && packet.tcp_flags & (TCP_FIN | TCP_RST) != 0 {
                    self.connections
                        .get_mut(&connection)
                        .expect("tracked")
                        .closing = true;
                }
                return Verdict::allow(reason::ESTABLISHED, rule);
            }
        }
        if (tcp && !bare_syn) || packet.kind == Kind::EchoReply {
            return Verdict::deny(reason::NO_CONNECTION);
        }
        let connection = Connection {
            origin: direction,
            tuple,
        };
        let Some(rule) = self.allowing_rule(connection) else {
            return Verdict::deny(reason::POLICY_DENIED);
        };
        // The table keeps one entry for a tuple and its reverse: a closing
        // connection opened the other way leaves (and its share) first.
        if let Some(closed) = tracked
            && closed.origin != direction
        {
            self.connections.remove(&closed);
        }
        // Reopening a closing connection's own entry takes no more room.
        let limit = self.limits.conntrack_per_endpoint as usize;
        if self.rules.endpoint_shares
            && !self.connections.contains_key(&connection)
            && self.connections_opened(direction) >= limit
        {
            return Verdict::cut(reason::CONNTRACK_FULL, rule);
        }
        let state = ConnectionState {
            revision: self.revision,
            rule,
            closing: false,
        };
        self.connections.insert(connection, state);
        Verdict::allow(reason::NEW_ALLOWED, rule)
    }

    /// Connections of the endpoint opened at `origin`: its share of each
    /// origin is its own, so connections opened toward the pod never take
    /// the room of those it opens.
    fn connections_opened(&self, origin: Direction) -> usize {
        self.connections
            .keys()
            .filter(|connection| connection.origin == origin)
            .count()
    }

    /// The connection `tuple` belongs to at `direction`: one it opened, or
    /// one it answers.
    fn tracked(&self, direction: Direction, tuple: Tuple) -> Option<Connection> {
        let forward = Connection {
            origin: direction,
            tuple,
        };
        let reply = Connection {
            origin: direction.opposite(),
            tuple: tuple.reversed(),
        };
        [forward, reply]
            .into_iter()
            .find(|connection| self.connections.contains_key(connection))
    }

    /// The rule under which the policy in force allows a tracked
    /// connection, or what denies one it no longer allows (which is
    /// forgotten).
    fn reaffirm(&mut self, connection: Connection) -> Result<u32, u32> {
        let state = self.connections[&connection];
        if state.revision == self.revision {
            return Ok(state.rule);
        }
        let rule = match self.decision(connection) {
            Ok(rule) => rule,
            Err(denying) => {
                self.connections.remove(&connection);
                return Err(denying);
            }
        };
        let revision = self.revision;
        let state = self.connections.get_mut(&connection).expect("tracked");
        state.revision = revision;
        state.rule = rule;
        Ok(rule)
    }

    /// Rule 5.
    fn icmp_error(&mut self, direction: Direction, packet: &Packet, quoted: Tuple) -> Verdict {
        if let Err(why) = self
            .rules
            .icmp_error_addressing(self, direction, packet, &quoted)
        {
            return Verdict::deny(why);
        }
        // The quoted packet travelled the other way.
        let Some(connection) = self.tracked(direction.opposite(), quoted) else {
            return Verdict::deny(reason::NO_CONNECTION);
        };
        if !self.rules.icmp_errors_judged_by_revision {
            return Verdict::allow(reason::RELATED, self.connections[&connection].rule);
        }
        match self.reaffirm(connection) {
            Ok(rule) => Verdict::allow(reason::RELATED, rule),
            Err(rule) => Verdict::cut(reason::REVOKED, rule),
        }
    }
}
