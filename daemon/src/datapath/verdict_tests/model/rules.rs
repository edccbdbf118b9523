//! The rules that issue 8 changes, each behind its own switch, so that the
//! model states both what the datapath did at 46c1b93 (every switch off) and what it must do once the issue is
//! closed ([`Rules::ISSUE8`]), and follows the branches as they land.

use netseg_contract::{ICMP_ERROR_MAX_LEN_V4, ICMP_ERROR_MAX_LEN_V6, reason};

use super::{Addr, Datagram, Direction, ICMPV6, Kind, Model, Packet, Tuple, Verdict};

#[derive(Clone, Copy, Debug)]
pub struct Rules {
    /// An ICMP error travels between the two ends of the connection it
    /// quotes and is no longer than an error needs to be, else it is
    /// `icmp-error-misdirected`.
    pub icmp_error_addressing: bool,
    /// At ingress, an ICMP error may also come from a third party (a router
    /// on the path) whose ICMP the pod's ingress policy admits anyway.
    pub third_party_icmp_errors_by_policy: bool,
    /// An ICMP error is judged by the policy in force, like a reply: one
    /// about a connection the policy no longer allows is `revoked`.
    pub icmp_errors_judged_by_revision: bool,
    /// Link control needs the interface's endpoint, and neighbour discovery
    /// and MLD stay on the link, else they are `off-link`.
    pub link_control_on_link: bool,
    /// An IPv6 packet from or to `::ffff:0:0/96` is `malformed`, not judged
    /// as IPv4.
    pub ipv4_mapped_ipv6_malformed: bool,
    /// A later fragment is judged by the policy in force: the datagram's
    /// connection is asked again after a revision change (`revoked`). Only
    /// flows leave fragment state (an ICMP error's later fragments find
    /// none).
    pub fragments_judged_by_revision: bool,
    /// Later IPv6 fragments find their first fragment whatever extension
    /// headers follow the Fragment header: both are keyed by its next
    /// header.
    pub fragments_keyed_by_fragment_header: bool,
    /// An endpoint holds at most its share of connections and datagrams.
    pub endpoint_shares: bool,
    /// ICMP is read as ICMP only in its own IP family (1 in IPv4, 58 in
    /// IPv6); the other family's number is a protocol without ports that a
    /// rule must allow. At 46c1b93 the family followed the protocol number,
    /// so an IPv4 packet of protocol 58 whose first payload byte is a
    /// neighbour discovery or MLD type passed as link control without any
    /// check: the hole the fuzzer found.
    pub icmp_in_its_own_family: bool,
}

impl Rules {
    /// The datapath once issue 8 is closed.
    pub const ISSUE8: Self = Self {
        icmp_error_addressing: true,
        third_party_icmp_errors_by_policy: true,
        icmp_errors_judged_by_revision: true,
        link_control_on_link: true,
        ipv4_mapped_ipv6_malformed: true,
        fragments_judged_by_revision: true,
        fragments_keyed_by_fragment_header: true,
        endpoint_shares: true,
        icmp_in_its_own_family: true,
    };

    /// Rule 2: `Some` verdict for link control, `None` for anything else.
    pub(super) fn link_control(
        &self,
        model: &Model,
        direction: Direction,
        packet: &Packet,
    ) -> Option<Verdict> {
        let icmp_type = match packet.kind {
            Kind::Arp => None,
            Kind::LinkControl { icmp_type } if packet.ipv6 => Some(icmp_type),
            Kind::LinkControl { .. } if !self.icmp_in_its_own_family => None,
            _ => return None,
        };
        if let Some(icmp_type) = icmp_type
            && !hop_limit_keeps_it_on_link(packet, icmp_type)
        {
            return Some(Verdict::deny(reason::MALFORMED));
        }
        if !self.link_control_on_link {
            return Some(Verdict::allow(reason::LINK_CONTROL, 0));
        }
        if !model.has_endpoint() {
            return Some(Verdict::deny(reason::NO_ENDPOINT));
        }
        if packet.kind != Kind::Arp && !on_link(model, direction, &packet.tuple) {
            return Some(Verdict::deny(reason::OFF_LINK));
        }
        Some(Verdict::allow(reason::LINK_CONTROL, 0))
    }

    /// Rule 5, before the quoted connection is looked up.
    pub(super) fn icmp_error_addressing(
        &self,
        model: &Model,
        direction: Direction,
        packet: &Packet,
        quoted: &Tuple,
    ) -> Result<(), u8> {
        if !self.icmp_error_addressing {
            return Ok(());
        }
        // The bound follows the message's family, ICMP or ICMPv6.
        let max = if packet.tuple.protocol == ICMPV6 {
            ICMP_ERROR_MAX_LEN_V6
        } else {
            ICMP_ERROR_MAX_LEN_V4
        };
        // At egress the error answers a packet the pod received: it goes
        // back to that packet's source; at ingress it comes from the
        // quoted packet's destination, or from a party that could reach
        // the pod with ICMP anyway.
        let addressed_as_error = match direction {
            Direction::Egress => packet.tuple.dst == quoted.src,
            Direction::Ingress => {
                packet.tuple.src == quoted.dst
                    || (self.third_party_icmp_errors_by_policy
                        && model.icmp_admitted_from(packet.tuple))
            }
        };
        if !addressed_as_error || packet.ip_len > max as usize {
            return Err(reason::ICMP_ERROR_MISDIRECTED);
        }
        Ok(())
    }

    /// Rule 4: which datagram a fragment belongs to.
    pub(super) fn datagram(&self, direction: Direction, packet: &Packet) -> Datagram {
        let protocol =
            if self.fragments_keyed_by_fragment_header || packet.kind == Kind::LaterFragment {
                packet.fragment_next
            } else {
                packet.tuple.protocol
            };
        Datagram {
            direction,
            src: packet.tuple.src,
            dst: packet.tuple.dst,
            protocol,
            id: packet.fragment_id,
        }
    }
}

/// Neighbour discovery arrives with hop limit 255 (RFC 4861), MLD with hop
/// limit 1 from a link-local source or `::` (RFC 3810): neither can have
/// been forwarded.
fn hop_limit_keeps_it_on_link(packet: &Packet, icmp_type: u8) -> bool {
    match icmp_type {
        133..=136 => packet.hop_limit == 255,
        _ => {
            let src = packet.tuple.src;
            packet.hop_limit == 1 && (is_link_local(src) || src == Addr::default())
        }
    }
}

/// A pod sends link control from its own address, a link-local one or `::`
/// (duplicate address detection), to link-local addresses and link-control
/// groups only; it receives link control only at such an address or its
/// own.
fn on_link(model: &Model, direction: Direction, tuple: &Tuple) -> bool {
    let link_scope = |addr| is_link_local(addr) || is_link_control_group(addr);
    let own = |addr| model.own_address(addr) == Some(addr);
    match direction {
        Direction::Egress => {
            let src = tuple.src;
            (is_link_local(src) || src == Addr::default() || own(src)) && link_scope(tuple.dst)
        }
        Direction::Ingress => link_scope(tuple.dst) || own(tuple.dst),
    }
}

/// fe80::/10.
fn is_link_local(addr: Addr) -> bool {
    addr.0[0] == 0xfe && addr.0[1] & 0xc0 == 0x80
}

/// All-nodes, all-routers, MLDv2 routers (ff02::16) and the solicited-node
/// groups (ff02::1:ff00:0/104).
fn is_link_control_group(addr: Addr) -> bool {
    let a = addr.0;
    let ff02 = a[0] == 0xff && a[1] == 0x02 && a[2..11] == [0; 9];
    let well_known = a[11..15] == [0; 4] && matches!(a[15], 1 | 2 | 0x16);
    let solicited_node = a[11] == 1 && a[12] == 0xff;
    ff02 && (well_known || solicited_node)
}
