//! Fragmented datagrams: later fragments carry no ports, so they pass only
//! behind the admitted first fragment of their datagram, remembered per
//! endpoint (within its share), for a few seconds, and judged again when
//! the policy changes.

use netseg_contract::{Endpoint, FragmentKey, FragmentValue, reason};

use crate::{
    conntrack,
    events::{Decision, Hook},
    maps::FRAGMENTS,
    parse::{Kind, Packet, Tuple},
    policy::still_allowed,
    usage::{self, FRAGMENTS_SHARE, Owner},
};

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
pub fn remember_fragment(hook: &Hook, packet: &Packet, decision: Decision) -> Decision {
    if packet.kind == Kind::IcmpError {
        return decision;
    }
    let tuple = &packet.tuple;
    let Some((_, connection)) = conntrack::find(hook.ifindex, hook.direction, tuple, hook.now)
    else {
        return decision;
    };
    // SAFETY: a valid pointer into the conntrack map's value.
    let connection = unsafe { &*connection };
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
    // The key does not decide the owner (the origin is in the value), so an
    // entry is never overwritten: the share it was counted against is the
    // one its delete uncounts. A live entry stays; an expired one goes first.
    // SAFETY: the value is copied out.
    if let Some(existing) = unsafe { FRAGMENTS.get(&key) }.copied() {
        let existing_owner = Owner {
            ifindex: hook.ifindex,
            origin: existing.origin,
        };
        if !existing.expired(hook.now) {
            // The same datagram's first fragment again is admitted by its
            // entry; the sender reusing the id of a live datagram of the
            // other origin finds no room.
            return if existing.origin == connection.origin {
                decision
            } else {
                Decision::deny(reason::FRAGMENTS_FULL, decision.rule)
            };
        }
        usage::remove(&FRAGMENTS, &key, &existing_owner, &FRAGMENTS_SHARE);
    }
    let owner = Owner {
        ifindex: hook.ifindex,
        origin: connection.origin,
    };
    if usage::insert_new(&FRAGMENTS, &key, &value, &owner, &FRAGMENTS_SHARE) {
        decision
    } else {
        Decision::deny(reason::FRAGMENTS_FULL, decision.rule)
    }
}

/// Later fragments carry no ports: they pass only behind an admitted first
/// fragment of the same datagram at the same hook, for a few seconds, and
/// only while the policy in force still allows the datagram's connection.
#[inline(always)]
pub fn later_fragment(hook: &Hook, endpoint: &Endpoint, packet: &Packet) -> Decision {
    let key = fragment_key(hook, packet);
    let Some(entry) = FRAGMENTS.get_ptr_mut(&key) else {
        return Decision::deny(reason::FRAGMENT_UNKNOWN, 0);
    };
    // SAFETY: a valid pointer into the fragment map's value.
    let first = unsafe { &mut *entry };
    // A datagram counts against the share of its connection's origin.
    let owner = Owner {
        ifindex: hook.ifindex,
        origin: first.origin,
    };
    if first.expired(hook.now) {
        usage::remove(&FRAGMENTS, &key, &owner, &FRAGMENTS_SHARE);
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
            usage::remove(&FRAGMENTS, &key, &owner, &FRAGMENTS_SHARE);
            return Decision::deny(reason::REVOKED, rule);
        }
    }
    Decision::allow(reason::FRAGMENT, first.rule)
}
