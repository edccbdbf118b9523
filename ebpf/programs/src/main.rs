//! netseg's TC classifiers, attached with tcx to the host side of each pod's
//! veth: `pod_egress` on its ingress hook (what the pod sends), `pod_ingress`
//! on its egress hook (what the pod receives). Every path that is not an
//! explicit allow drops.
#![no_std]
#![no_main]
// Atomic adds to map values: the BPF target offers no atomic read-modify-write types.
#![feature(core_intrinsics)]
#![allow(internal_features)]

mod conntrack;
mod events;
mod maps;
mod parse;
mod policy;
mod usage;

use aya_ebpf::{
    bindings::{TC_ACT_OK, TC_ACT_SHOT},
    helpers::bpf_ktime_get_ns,
    macros::classifier,
    programs::TcContext,
};
use netseg_contract::{
    CONFIG_REVISION, CONN_CLOSING, ConnKey, ConnValue, DIRECTION_EGRESS, DIRECTION_INGRESS,
    ENDPOINT_HAS_IPV4, ENDPOINT_HAS_IPV6, Endpoint, EndpointKey, FragmentKey, FragmentValue,
    ICMP_ERROR_MAX_LEN_V4, ICMP_ERROR_MAX_LEN_V6, PROTO_ICMPV6, PROTO_TCP, reason,
};

use crate::{
    events::{Decision, Hook, record},
    maps::{CONFIG, ENDPOINTS, FRAGMENTS, SCRATCH},
    parse::{Addr, ETH_HLEN, Kind, Packet, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, Tuple, parse},
    policy::{allowing_rule, still_allowed},
    usage::FRAGMENTS_SHARE,
};

#[classifier]
pub fn pod_egress(ctx: TcContext) -> i32 {
    classify(&ctx, DIRECTION_EGRESS)
}

#[classifier]
pub fn pod_ingress(ctx: TcContext) -> i32 {
    classify(&ctx, DIRECTION_INGRESS)
}

#[inline(always)]
fn classify(ctx: &TcContext, direction: u8) -> i32 {
    let hook = Hook {
        // SAFETY: the context's skb pointer is valid for the whole program.
        ifindex: unsafe { (*ctx.skb.skb).ifindex },
        direction,
        revision: CONFIG.get(CONFIG_REVISION).copied().unwrap_or(0),
        // SAFETY: a helper without preconditions.
        now: unsafe { bpf_ktime_get_ns() },
    };
    match try_classify(ctx, &hook) {
        Ok(action) => action,
        Err(action) => action,
    }
}

#[inline(always)]
fn try_classify(ctx: &TcContext, hook: &Hook) -> Result<i32, i32> {
    let scratch = SCRATCH.get_ptr_mut(0).ok_or(TC_ACT_SHOT)?;
    // SAFETY: this CPU's scratch slot; nothing else uses it while the program runs.
    let packet = unsafe { &mut *scratch };
    if let Err(why) = parse(ctx, packet) {
        // The addresses may still be the previous packet's.
        packet.tuple.src = Addr::ZERO;
        packet.tuple.dst = Addr::ZERO;
        return Err(deny(hook, &packet.tuple, Decision::deny(why, 0)));
    }
    let packet = &*packet;
    let slot = hook.revision & 1;
    let key = EndpointKey {
        slot,
        ifindex: hook.ifindex,
    };
    // SAFETY: the value is copied out before any map update.
    let Some(endpoint) = (unsafe { ENDPOINTS.get(&key) }).copied() else {
        return Err(deny(
            hook,
            &packet.tuple,
            Decision::deny(reason::NO_ENDPOINT, 0),
        ));
    };
    let mut decision = match packet.kind {
        Kind::Arp => Decision::allow(reason::LINK_CONTROL, 0),
        Kind::LinkControl => link_control(hook.direction, &endpoint, &packet.tuple),
        _ if spoofed(&endpoint, hook.direction, &packet.tuple) => {
            Decision::deny(reason::SPOOFED, 0)
        }
        Kind::LaterFragment => later_fragment(hook, &endpoint, packet),
        Kind::IcmpError => related(hook, slot, &endpoint, packet, ctx.len()),
        Kind::Flow | Kind::EchoReply => flow(hook, slot, &endpoint, packet),
    };
    if decision.allow && packet.first_fragment {
        decision = remember_fragment(hook, packet, decision);
    }
    record(hook, &packet.tuple, &decision);
    if !decision.allow {
        return Err(TC_ACT_SHOT);
    }
    Ok(TC_ACT_OK)
}

#[inline(always)]
fn deny(hook: &Hook, tuple: &Tuple, decision: Decision) -> i32 {
    record(hook, tuple, &decision);
    TC_ACT_SHOT
}

/// A pod may only send from, and only be sent to, its own addresses.
#[inline(always)]
fn spoofed(endpoint: &Endpoint, direction: u8, tuple: &Tuple) -> bool {
    let own = if direction == DIRECTION_EGRESS {
        &tuple.src
    } else {
        &tuple.dst
    };
    !is_own(endpoint, own)
}

#[inline(always)]
fn is_own(endpoint: &Endpoint, addr: &Addr) -> bool {
    if addr.is_ipv4_mapped() {
        endpoint.flags & ENDPOINT_HAS_IPV4 != 0 && *addr == Addr::mapped_ipv4(endpoint.ipv4)
    } else {
        endpoint.flags & ENDPOINT_HAS_IPV6 != 0 && *addr == Addr(endpoint.ipv6)
    }
}

/// Neighbour discovery and MLD stay on the link. The parser checked their
/// hop limits, which prove that a received one was not forwarded. The pod
/// sends them from its own address, a link-local one (no router forwards
/// those, so which one does not matter) or `::` (duplicate address
/// detection), and only to link-local addresses and link-control groups,
/// which the node never forwards either; it receives them only at such an
/// address or its own.
#[inline(always)]
fn link_control(direction: u8, endpoint: &Endpoint, tuple: &Tuple) -> Decision {
    let link_scope = |addr: &Addr| addr.is_link_local() || addr.is_link_control_group();
    let on_link = if direction == DIRECTION_EGRESS {
        let source = tuple.src.is_link_local() || tuple.src == Addr::ZERO;
        (source || is_own(endpoint, &tuple.src)) && link_scope(&tuple.dst)
    } else {
        link_scope(&tuple.dst) || is_own(endpoint, &tuple.dst)
    };
    if on_link {
        Decision::allow(reason::LINK_CONTROL, 0)
    } else {
        Decision::deny(reason::OFF_LINK, 0)
    }
}

/// A packet that starts, continues or answers a connection.
#[inline(always)]
fn flow(hook: &Hook, slot: u32, endpoint: &Endpoint, packet: &Packet) -> Decision {
    let tuple = &packet.tuple;
    let tcp = tuple.protocol == PROTO_TCP;
    let syn_only = tcp && packet.tcp_flags & (TCP_SYN | TCP_ACK | TCP_RST | TCP_FIN) == TCP_SYN;
    if let Some((key, entry)) = conntrack::find(hook.ifindex, hook.direction, tuple, hook.now) {
        // SAFETY: a valid pointer into the conntrack map's value.
        let value = unsafe { &mut *entry };
        // A SYN on a closed tuple is a new connection (port reuse).
        if !(syn_only && value.state == CONN_CLOSING) {
            let rule = match reaffirm(hook, endpoint, &key, value) {
                Ok(rule) => rule,
                Err(revoked) => return revoked,
            };
            let closing = tcp && packet.tcp_flags & (TCP_FIN | TCP_RST) != 0;
            let reply = key.origin != hook.direction;
            conntrack::touch(value, reply, closing, hook.now);
            return Decision::allow(reason::ESTABLISHED, rule);
        }
    }
    // Only a first packet may open a connection: never a reply.
    if (tcp && !syn_only) || packet.kind == Kind::EchoReply {
        return Decision::deny(reason::NO_CONNECTION, 0);
    }
    let peer = if hook.direction == DIRECTION_EGRESS {
        &tuple.dst
    } else {
        &tuple.src
    };
    match allowing_rule(
        slot,
        endpoint,
        hook.direction,
        peer,
        tuple.protocol,
        tuple.dst_port,
    ) {
        Some(rule) => {
            if conntrack::open(
                hook.ifindex,
                hook.direction,
                tuple,
                hook.revision,
                rule,
                hook.now,
            ) {
                Decision::allow(reason::NEW_ALLOWED, rule)
            } else {
                Decision::deny(reason::CONNTRACK_FULL, rule)
            }
        }
        None => Decision::deny(reason::POLICY_DENIED, 0),
    }
}

/// Judges a tracked connection that an older revision admitted by the
/// policy in force. Still allowed, the entry moves to this revision and
/// its rule; no longer allowed, the connection is closed and the packet
/// that rode on it is denied as revoked.
#[inline(always)]
fn reaffirm(
    hook: &Hook,
    endpoint: &Endpoint,
    key: &ConnKey,
    value: &mut ConnValue,
) -> Result<u32, Decision> {
    if value.revision == hook.revision
        || still_allowed(
            hook.revision,
            endpoint,
            key.origin,
            &conntrack::original(key),
            &mut value.revision,
            &mut value.rule,
        )
    {
        return Ok(value.rule);
    }
    let rule = value.rule;
    conntrack::close(key);
    Err(Decision::deny(reason::REVOKED, rule))
}

/// An ICMP error passes only when it is about a connection this endpoint
/// has (the quoted packet travelled the other way) that the policy in
/// force still allows, and when it is addressed the way an error about
/// that connection can be. Its length is bounded, so that it cannot carry
/// more than the start of the quoted packet.
#[inline(always)]
fn related(hook: &Hook, slot: u32, endpoint: &Endpoint, packet: &Packet, len: u32) -> Decision {
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
        || allowing_rule(slot, endpoint, direction, &tuple.src, tuple.protocol, 0).is_some()
}

#[inline(always)]
fn fragment_key(hook: &Hook, packet: &Packet) -> FragmentKey {
    FragmentKey {
        ifindex: hook.ifindex,
        id: packet.fragment_id,
        protocol: packet.fragment_protocol,
        direction: hook.direction,
        _pad: [0; 2],
        src: packet.tuple.src.0,
        dst: packet.tuple.dst.0,
    }
}

/// Remembers an admitted first fragment with its connection, so that its
/// later fragments can be judged again; refuses the datagram when its
/// endpoint has no room left. An ICMP error is never fragmented by an
/// honest sender: its later fragments find nothing.
#[inline(always)]
fn remember_fragment(hook: &Hook, packet: &Packet, decision: Decision) -> Decision {
    if packet.kind == Kind::IcmpError {
        return decision;
    }
    let tuple = &packet.tuple;
    let Some((connection, _)) = conntrack::find(hook.ifindex, hook.direction, tuple, hook.now)
    else {
        return decision;
    };
    let value = FragmentValue {
        first_seen_ns: hook.now,
        revision: hook.revision,
        rule: decision.rule,
        origin: connection.origin,
        protocol: tuple.protocol,
        src_port: tuple.src_port,
        dst_port: tuple.dst_port,
        _pad: 0,
    };
    let key = fragment_key(hook, packet);
    if usage::insert(&FRAGMENTS, &key, &value, hook.ifindex, &FRAGMENTS_SHARE) {
        decision
    } else {
        Decision::deny(reason::FRAGMENTS_FULL, decision.rule)
    }
}

/// Later fragments carry no ports: they pass only behind an admitted first
/// fragment of the same datagram at the same hook, for a few seconds, and
/// only while the policy in force still allows the datagram's connection.
#[inline(always)]
fn later_fragment(hook: &Hook, endpoint: &Endpoint, packet: &Packet) -> Decision {
    let key = fragment_key(hook, packet);
    let Some(entry) = FRAGMENTS.get_ptr_mut(&key) else {
        return Decision::deny(reason::FRAGMENT_UNKNOWN, 0);
    };
    // SAFETY: a valid pointer into the fragment map's value.
    let first = unsafe { &mut *entry };
    if first.expired(hook.now) {
        usage::remove(&FRAGMENTS, &key, hook.ifindex, &FRAGMENTS_SHARE);
        return Decision::deny(reason::FRAGMENT_UNKNOWN, 0);
    }
    if first.revision != hook.revision {
        let datagram = Tuple {
            src: packet.tuple.src,
            dst: packet.tuple.dst,
            protocol: first.protocol,
            src_port: first.src_port,
            dst_port: first.dst_port,
        };
        let original = if first.origin == hook.direction {
            datagram
        } else {
            conntrack::reversed(&datagram)
        };
        if !still_allowed(
            hook.revision,
            endpoint,
            first.origin,
            &original,
            &mut first.revision,
            &mut first.rule,
        ) {
            let rule = first.rule;
            usage::remove(&FRAGMENTS, &key, hook.ifindex, &FRAGMENTS_SHARE);
            return Decision::deny(reason::REVOKED, rule);
        }
    }
    Decision::allow(reason::FRAGMENT, first.rule)
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
