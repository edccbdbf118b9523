//! Connection tracking per endpoint. An entry is keyed by the connection's
//! first packet as seen at one endpoint, so each hook tracks what it
//! admitted, and remembers the revision whose policy admitted it: after a
//! policy change, the next packet re-asks the policy (revocation).

use netseg_contract::{
    CONN_CLOSING, CONN_HALF_OPEN, CONN_OPEN, ConnKey, ConnValue, DIRECTION_EGRESS,
    DIRECTION_INGRESS, FORWARD, REPLY, age_ns, traffic,
};

use crate::{
    atomic,
    maps::CONNTRACK,
    parse::{Addr, Tuple},
    usage::{self, CONNTRACK_SHARE, Owner},
};

/// last_seen is rewritten at most this often, to keep established packets
/// from dirtying a shared cache line each time.
const LAST_SEEN_GRANULARITY_NS: u64 = 1_000_000_000;

#[inline(always)]
pub fn conn_key(ifindex: u32, origin: u8, tuple: &Tuple) -> ConnKey {
    ConnKey {
        ifindex,
        origin,
        protocol: tuple.protocol,
        _pad: [0; 2],
        src_port: tuple.src_port,
        dst_port: tuple.dst_port,
        src: tuple.src.0,
        dst: tuple.dst.0,
    }
}

#[inline(always)]
pub fn reversed(tuple: &Tuple) -> Tuple {
    Tuple {
        src: tuple.dst,
        dst: tuple.src,
        protocol: tuple.protocol,
        src_port: tuple.dst_port,
        dst_port: tuple.src_port,
    }
}

#[inline(always)]
pub fn opposite(direction: u8) -> u8 {
    if direction == DIRECTION_INGRESS {
        DIRECTION_EGRESS
    } else {
        DIRECTION_INGRESS
    }
}

/// The live connection this packet belongs to, in either direction.
#[inline(always)]
pub fn find(
    ifindex: u32,
    direction: u8,
    tuple: &Tuple,
    now: u64,
) -> Option<(ConnKey, *mut ConnValue)> {
    let forward = conn_key(ifindex, direction, tuple);
    if let Some(entry) = live(&forward, now) {
        return Some((forward, entry));
    }
    let reply = conn_key(ifindex, opposite(direction), &reversed(tuple));
    live(&reply, now).map(|entry| (reply, entry))
}

#[inline(always)]
fn live(key: &ConnKey, now: u64) -> Option<*mut ConnValue> {
    let entry = CONNTRACK.get_ptr_mut(key)?;
    // SAFETY: a valid pointer into the map's value for the duration of the program.
    if unsafe { &*entry }.expired(key.protocol, now) {
        close(key);
        return None;
    }
    Some(entry)
}

/// Tracks a new connection, half-open until its first reply. False when
/// there is no room: the endpoint holds its share, or the table is full.
#[inline(always)]
pub fn open(
    ifindex: u32,
    direction: u8,
    tuple: &Tuple,
    revision: u32,
    rule: u32,
    now: u64,
    ip_bytes: u64,
) -> bool {
    let key = conn_key(ifindex, direction, tuple);
    let value = ConnValue {
        last_seen_ns: now,
        revision,
        rule,
        state: CONN_HALF_OPEN,
        _pad: 0,
        opened_ns: now,
        traffic: [traffic::packet(ip_bytes), 0],
    };
    // A closed connection's tuple reused: the same entry, counted once.
    usage::insert(&CONNTRACK, &key, &value, &owner(&key), &CONNTRACK_SHARE)
}

/// Counts a packet of `ip_bytes` that belongs to the connection; `reply`
/// when it went against the connection's first packet. One atomic add:
/// the hooks of one connection run on several CPUs at once.
#[inline(always)]
pub fn count(value: &mut ConnValue, reply: bool, ip_bytes: u64) {
    let side = if reply { REPLY } else { FORWARD };
    atomic::add(&mut value.traffic[side], traffic::packet(ip_bytes));
}

/// Restamps the entry of a packet that belongs to it; `reply` when the
/// packet went against the connection's first packet.
#[inline(always)]
pub fn touch(value: &mut ConnValue, reply: bool, closing: bool, now: u64) {
    if closing {
        value.state = CONN_CLOSING;
        value.last_seen_ns = value.last_seen_ns.max(now);
    } else if reply && value.state == CONN_HALF_OPEN {
        value.state = CONN_OPEN;
        value.last_seen_ns = value.last_seen_ns.max(now);
    } else if age_ns(now, value.last_seen_ns) > LAST_SEEN_GRANULARITY_NS {
        value.last_seen_ns = now;
    }
}

#[inline(always)]
pub fn close(key: &ConnKey) {
    usage::remove(&CONNTRACK, key, &owner(key), &CONNTRACK_SHARE);
}

/// A connection counts against the share of its endpoint and origin.
#[inline(always)]
fn owner(key: &ConnKey) -> Owner {
    Owner {
        ifindex: key.ifindex,
        origin: key.origin,
    }
}

/// The tuple of a tracked connection's first packet.
#[inline(always)]
pub fn original(key: &ConnKey) -> Tuple {
    Tuple {
        src: Addr(key.src),
        dst: Addr(key.dst),
        protocol: key.protocol,
        src_port: key.src_port,
        dst_port: key.dst_port,
    }
}
