//! netseg's TC classifiers, attached with tcx to the host side of each pod's
//! veth: `pod_egress` on its ingress hook (what the pod sends), `pod_ingress`
//! on its egress hook (what the pod receives). Every path that is not an
//! explicit allow drops.
#![no_std]
#![no_main]
// Atomic adds to map values (the BPF target offers no atomic read-modify-write
// types), and direct packet reads at offsets known when compiling.
#![feature(core_intrinsics)]
#![allow(internal_features)]

mod atomic;
mod conntrack;
mod events;
mod fragments;
mod icmp_errors;
mod maps;
mod parse;
mod policy;
mod usage;

use aya_ebpf::{
    bindings::{TC_ACT_OK, TC_ACT_SHOT},
    helpers::bpf_ktime_get_coarse_ns,
    macros::classifier,
    programs::TcContext,
};
use netseg_contract::{
    CONFIG_REVISION, CONN_CLOSING, ConnKey, ConnValue, DIRECTION_EGRESS, DIRECTION_INGRESS,
    ENDPOINT_HAS_IPV4, ENDPOINT_HAS_IPV6, Endpoint, EndpointKey, PROTO_TCP, reason,
};

use crate::{
    events::{Decision, Hook, record},
    fragments::{later_fragment, remember_fragment},
    icmp_errors::related,
    maps::{CONFIG, ENDPOINTS, SCRATCH},
    parse::{Addr, ETH_HLEN, Kind, Packet, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, Tuple, parse},
    policy::{still_allowed, verdict},
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
        now: unsafe { bpf_ktime_get_coarse_ns() },
    };
    match try_classify(ctx, hook) {
        Ok(action) => action,
        Err(action) => action,
    }
}

#[inline(always)]
fn try_classify(ctx: &TcContext, hook: Hook) -> Result<i32, i32> {
    let scratch = SCRATCH.get_ptr_mut(0).ok_or(TC_ACT_SHOT)?;
    // SAFETY: this CPU's scratch slot; nothing else uses it while the program runs.
    let packet = unsafe { &mut *scratch };
    if let Err(why) = parse(ctx, packet) {
        // The tuple may still be the previous packet's, which no record
        // of this one may show.
        packet.tuple = Tuple {
            src: Addr::ZERO,
            dst: Addr::ZERO,
            protocol: 0,
            src_port: 0,
            dst_port: 0,
        };
        return Err(deny(
            &hook.precisely(),
            &packet.tuple,
            Decision::deny(why, 0),
        ));
    }
    let packet = &*packet;
    let ip_bytes = ip_bytes(ctx);
    let tracked = match packet.kind {
        Kind::Flow | Kind::EchoReply => {
            conntrack::find(hook.ifindex, hook.direction, &packet.tuple, hook.now)
        }
        _ => None,
    };
    if let Some((_, entry)) = tracked
        && !packet.first_fragment
    {
        // SAFETY: a valid pointer into the conntrack map's value.
        let value = unsafe { &mut *entry };
        // Opened, or judged again, under this revision's policy, at this
        // interface, by a packet that passed the address checks; its key
        // is this packet's ends at this interface. It passes on its entry
        // alone, without reading the endpoint.
        if value.revision == hook.revision && continues(packet, value) {
            let rule = value.rule;
            let decision = pass(&hook, packet, value, rule, ip_bytes);
            record(&hook, &packet.tuple, &decision);
            return Ok(TC_ACT_OK);
        }
    }
    let hook = &hook.precisely();
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
        Kind::Flow | Kind::EchoReply => flow(hook, slot, &endpoint, packet, ip_bytes, tracked),
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

/// The packet's length from its IP header on.
#[inline(always)]
fn ip_bytes(ctx: &TcContext) -> u64 {
    (ctx.len() as u64).saturating_sub(ETH_HLEN as u64)
}

/// A packet that starts, continues or answers a connection, of `ip_bytes`;
/// `tracked` is the live connection it belongs to, if any.
#[inline(always)]
fn flow(
    hook: &Hook,
    slot: u32,
    endpoint: &Endpoint,
    packet: &Packet,
    ip_bytes: u64,
    tracked: Option<(ConnKey, *mut ConnValue)>,
) -> Decision {
    let tuple = &packet.tuple;
    if let Some((key, entry)) = tracked {
        // SAFETY: a valid pointer into the conntrack map's value.
        let value = unsafe { &mut *entry };
        if continues(packet, value) {
            let rule = match reaffirm(hook, endpoint, &key, value) {
                Ok(rule) => rule,
                Err(revoked) => return revoked,
            };
            return pass(hook, packet, value, rule, ip_bytes);
        }
    }
    let tcp = tuple.protocol == PROTO_TCP;
    // Only a first packet may open a connection: never a reply.
    if (tcp && !syn_only(packet)) || packet.kind == Kind::EchoReply {
        return Decision::deny(reason::NO_CONNECTION, 0);
    }
    let peer = if hook.direction == DIRECTION_EGRESS {
        &tuple.dst
    } else {
        &tuple.src
    };
    match verdict(
        slot,
        endpoint,
        hook.direction,
        peer,
        tuple.protocol,
        tuple.dst_port,
    ) {
        Ok(rule) => {
            let closed = tracked.map(|(_, entry)| entry);
            if conntrack::open(hook, tuple, closed, rule, ip_bytes) {
                Decision::allow(reason::NEW_ALLOWED, rule)
            } else {
                Decision::deny(reason::CONNTRACK_FULL, rule)
            }
        }
        Err(rule) => Decision::deny(reason::POLICY_DENIED, rule),
    }
}

/// A TCP segment with SYN alone: the first of a connection.
#[inline(always)]
fn syn_only(packet: &Packet) -> bool {
    packet.tuple.protocol == PROTO_TCP
        && packet.tcp_flags & (TCP_SYN | TCP_ACK | TCP_RST | TCP_FIN) == TCP_SYN
}

/// Whether the packet continues the tracked connection `value`: a SYN on a
/// closed tuple starts a new one (port reuse).
#[inline(always)]
fn continues(packet: &Packet, value: &ConnValue) -> bool {
    !(syn_only(packet) && value.state == CONN_CLOSING)
}

/// Passes a packet of the tracked connection `value`, allowed by `rule`.
#[inline(always)]
fn pass(hook: &Hook, packet: &Packet, value: &mut ConnValue, rule: u32, ip_bytes: u64) -> Decision {
    let closing = packet.tuple.protocol == PROTO_TCP && packet.tcp_flags & (TCP_FIN | TCP_RST) != 0;
    let reply = value.origin != hook.direction;
    conntrack::count(value, reply, ip_bytes);
    conntrack::touch(value, reply, closing, hook.now);
    Decision::allow(reason::ESTABLISHED, rule)
}

/// Judges a tracked connection that an older revision admitted by the
/// policy in force. Still allowed, the entry moves to this revision and
/// its rule; no longer allowed, the connection is closed and the packet
/// that rode on it is denied as revoked.
#[inline(always)]
pub(crate) fn reaffirm(
    hook: &Hook,
    endpoint: &Endpoint,
    key: &ConnKey,
    value: &mut ConnValue,
) -> Result<u32, Decision> {
    if value.revision == hook.revision
        || still_allowed(
            hook.revision,
            endpoint,
            value.origin,
            &conntrack::original(key, value),
            &mut value.revision,
            &mut value.rule,
        )
    {
        return Ok(value.rule);
    }
    let rule = value.rule;
    conntrack::close(key, value.origin);
    Err(Decision::deny(reason::REVOKED, rule))
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
