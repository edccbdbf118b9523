//! The rules that issue 8 changes, each behind its own switch, so that the
//! model states both what the datapath did at 46c1b93 and what it must do
//! once the issue is closed.

use netseg_contract::reason;

use super::{Addr, Datagram, Direction, Kind, Model, Packet, Tuple, Verdict};

#[derive(Clone, Copy, Debug)]
pub struct Rules {
    /// An ICMP error travels between the two ends of the connection it
    /// quotes, and is no larger than an error needs to be.
    pub icmp_error_addressing: bool,
    /// Neighbour discovery and MLD stay on the link: to link-local or
    /// link-scope multicast destinations, from the pod's own address, a
    /// link-local address or `::`.
    pub link_control_on_link: bool,
    /// IPv6 packets from or to `::ffff:0:0/96` are dropped, not judged as
    /// IPv4.
    pub ipv4_mapped_ipv6_dropped: bool,
    /// ICMP errors and later fragments, which ride on remembered state, are
    /// judged by the policy revision in force like replies are.
    pub state_judged_by_revision: bool,
    /// Later IPv6 fragments find their first fragment whatever extension
    /// headers follow the Fragment header.
    pub fragments_keyed_by_fragment_header: bool,
    /// The hole the fuzzer found at 46c1b93: an IPv4 packet of protocol 58
    /// whose first payload byte is a neighbour discovery or MLD type passes
    /// as link control, to any address with any payload, without a hop
    /// limit, endpoint or spoofing check. Without it, such a packet is what
    /// it is: a packet of protocol 58 that a rule must allow.
    pub ipv4_carries_link_control: bool,
}

/// Largest ICMP error accepted, IP header included: the minimum MTU of each
/// family (RFC 792 quotes "the internet header plus 64 bits", RFC 4443 says
/// an error must not exceed the minimum IPv6 MTU).
const MAX_ICMP_ERROR_IPV4: usize = 576;
const MAX_ICMP_ERROR_IPV6: usize = 1280;

impl Rules {
    /// The datapath at 46c1b93.
    pub const MAIN: Self = Self {
        icmp_error_addressing: false,
        link_control_on_link: false,
        ipv4_mapped_ipv6_dropped: false,
        state_judged_by_revision: false,
        fragments_keyed_by_fragment_header: false,
        ipv4_carries_link_control: true,
    };

    /// Rule 2: `Some` verdict for link control, `None` for anything else.
    pub(super) fn link_control(
        &self,
        model: &Model,
        direction: Direction,
        packet: &Packet,
    ) -> Option<Verdict> {
        let icmp_type = match packet.kind {
            Kind::Arp => return Some(Verdict::allow(reason::LINK_CONTROL)),
            Kind::LinkControl { icmp_type } => icmp_type,
            _ => return None,
        };
        if !packet.ipv6 {
            return self
                .ipv4_carries_link_control
                .then_some(Verdict::allow(reason::LINK_CONTROL));
        }
        if !hop_limit_keeps_it_on_link(packet, icmp_type) {
            return Some(Verdict::deny(reason::MALFORMED));
        }
        if self.link_control_on_link
            && let Err(why) = link_scoped(model, direction, &packet.tuple)
        {
            return Some(Verdict::deny(why));
        }
        Some(Verdict::allow(reason::LINK_CONTROL))
    }

    /// Rule 3, and which addresses a packet may carry at all.
    pub(super) fn addressing(
        &self,
        model: &Model,
        direction: Direction,
        packet: &Packet,
    ) -> Result<(), u8> {
        let tuple = &packet.tuple;
        if self.ipv4_mapped_ipv6_dropped
            && packet.ipv6
            && (tuple.src.is_ipv4_mapped() || tuple.dst.is_ipv4_mapped())
        {
            return Err(reason::MALFORMED);
        }
        model.endpoint_and_spoofing(direction, tuple)
    }

    /// Rule 5, before the quoted connection is looked up.
    pub(super) fn icmp_error_addressing(
        &self,
        direction: Direction,
        packet: &Packet,
        quoted: &Tuple,
    ) -> Result<(), u8> {
        if !self.icmp_error_addressing {
            return Ok(());
        }
        let max = if packet.ipv6 {
            MAX_ICMP_ERROR_IPV6
        } else {
            MAX_ICMP_ERROR_IPV4
        };
        if packet.ip_len > max {
            return Err(reason::MALFORMED);
        }
        // At egress the error answers a packet the pod received: it goes
        // back to that packet's source; at ingress it comes from the
        // quoted packet's destination.
        let between_the_ends = match direction {
            Direction::Egress => packet.tuple.dst == quoted.src,
            Direction::Ingress => packet.tuple.src == quoted.dst,
        };
        if !between_the_ends {
            return Err(reason::NO_CONNECTION);
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
            packet.hop_limit == 1
                && (is_link_local(packet.tuple.src) || is_unspecified(packet.tuple.src))
        }
    }
}

/// Link control may only leave the pod for the link, from the pod's own
/// addresses or `::` (duplicate address detection); the same holds for
/// what the pod receives, seen from the other end.
fn link_scoped(model: &Model, direction: Direction, tuple: &Tuple) -> Result<(), u8> {
    let (pod, other) = match direction {
        Direction::Egress => (tuple.src, tuple.dst),
        Direction::Ingress => (tuple.dst, tuple.src),
    };
    let pods_own = model.own_address(pod) == Some(pod) || is_link_local(pod);
    let pod_side_ok = pods_own || (direction == Direction::Egress && is_unspecified(pod));
    if !pod_side_ok {
        return Err(reason::SPOOFED);
    }
    let link_scope = is_link_local(other) || is_link_multicast(other);
    let other_ok = link_scope || (direction == Direction::Ingress && is_unspecified(other));
    if !other_ok {
        return Err(reason::MALFORMED);
    }
    Ok(())
}

fn is_link_local(addr: Addr) -> bool {
    addr.0[0] == 0xfe && addr.0[1] & 0xc0 == 0x80
}

fn is_unspecified(addr: Addr) -> bool {
    addr == Addr::default()
}

/// All-nodes, all-routers, MLDv2 routers and solicited-node multicast.
fn is_link_multicast(addr: Addr) -> bool {
    let a = addr.0;
    let ff02 = a[0] == 0xff && a[1] == 0x02 && a[2..11] == [0; 9];
    let fixed = a[11..15] == [0; 4] && matches!(a[15], 1 | 2 | 0x16);
    let solicited_node = a[11] == 1 && a[12] == 0xff;
    ff02 && (fixed || solicited_node)
}
