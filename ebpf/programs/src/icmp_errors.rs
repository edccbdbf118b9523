//! ICMP and ICMPv6 errors: they ride on the connection they quote, so they
//! must not become a carrier past default deny.

use netseg_contract::{
    DIRECTION_EGRESS, Endpoint, ICMP_ERROR_MAX_LEN_V4, ICMP_ERROR_MAX_LEN_V6, PROTO_ICMPV6, reason,
};

use crate::{
    conntrack,
    events::{Decision, Hook},
    parse::{ETH_HLEN, Packet},
    policy::verdict,
    reaffirm,
};

/// An ICMP error passes only when it is about a connection this endpoint
/// has (the quoted packet travelled the other way) that the policy in
/// force still allows, and when it is addressed the way an error about
/// that connection can be. Its length is bounded, so that it cannot carry
/// more than the start of the quoted packet.
#[inline(always)]
pub fn related(hook: &Hook, slot: u32, endpoint: &Endpoint, packet: &Packet, len: u32) -> Decision {
    let max_len = if packet.tuple.protocol == PROTO_ICMPV6 {
        ICMP_ERROR_MAX_LEN_V6
    } else {
        ICMP_ERROR_MAX_LEN_V4
    };
    if len.saturating_sub(ETH_HLEN as u32) > max_len
        || !addressed_as_error(hook.direction, slot, endpoint, packet)
    {
        return Decision::deny(reason::ICMP_ERROR_MISDIRECTED, 0);
    }
    let inner = &packet.inner;
    let back = conntrack::opposite(hook.direction);
    let Some((key, entry)) = conntrack::find(hook.ifindex, back, inner, hook.now) else {
        return Decision::deny(reason::NO_CONNECTION, 0);
    };
    // SAFETY: a valid pointer into the conntrack map's value.
    let value = unsafe { &mut *entry };
    match reaffirm(hook, endpoint, &key, value) {
        Ok(rule) => Decision::allow(reason::RELATED, rule),
        Err(revoked) => revoked,
    }
}

/// The pod sends an error only to the quoted packet's source: the peer
/// whose packet it could not take. It receives one from the quoted
/// packet's destination, or from a third party (a router on the path, the
/// node reporting "packet too big") only when its ingress policy admits
/// ICMP from that party anyway: such a sender could reach the pod with
/// echo requests just as well, so the error opens no channel the policy
/// closed. The pod's own side of both was checked by `spoofed`.
#[inline(always)]
fn addressed_as_error(direction: u8, slot: u32, endpoint: &Endpoint, packet: &Packet) -> bool {
    let (tuple, inner) = (&packet.tuple, &packet.inner);
    if direction == DIRECTION_EGRESS {
        return tuple.dst == inner.src;
    }
    tuple.src == inner.dst
        || verdict(slot, endpoint, direction, &tuple.src, tuple.protocol, 0).is_ok()
}
