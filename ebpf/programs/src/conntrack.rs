//! Connection tracking per endpoint. An entry is keyed by the connection
//! as seen at one endpoint, the pod's end first (`ConnKey`), so that each
//! hook tracks what it admitted and a packet and its reply find it with one
//! lookup. It remembers which way the connection opened and the revision
//! whose policy admitted it: after a policy change, the next packet re-asks
//! the policy (revocation).

use netseg_contract::{
    CONN_CLOSING, CONN_HALF_OPEN, CONN_OPEN, ConnKey, ConnValue, DIRECTION_EGRESS,
    DIRECTION_INGRESS, Ends, FORWARD, REPLY, age_ns, traffic,
};

use crate::{
    atomic,
    events::Hook,
    maps::CONNECTIONS,
    parse::{Addr, Tuple},
    usage::{self, CONNTRACK_SHARE, Owner},
};

/// last_seen is rewritten at most this often, to keep established packets
/// from dirtying a shared cache line each time.
const LAST_SEEN_GRANULARITY_NS: u64 = 1_000_000_000;

/// The key of the connection `tuple` belongs to, seen at `ifindex` going
/// `direction`.
#[inline(always)]
pub fn conn_key(ifindex: u32, direction: u8, tuple: &Tuple) -> ConnKey {
    let ends = Ends {
        src: tuple.src.0,
        src_port: tuple.src_port,
        dst: tuple.dst.0,
        dst_port: tuple.dst_port,
    };
    ConnKey::of(ifindex, direction, tuple.protocol, &ends)
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
    let key = conn_key(ifindex, direction, tuple);
    let entry = CONNECTIONS.get_ptr_mut(&key)?;
    // SAFETY: a valid pointer into the map's value for the duration of the program.
    let value = unsafe { &*entry };
    if value.expired(key.protocol, now) {
        close(&key, value.origin);
        return None;
    }
    Some((key, entry))
}

/// Tracks a new connection, half-open until its first reply, in place of
/// the `closed` one its tuple had, if any (what [`find`] found: no second
/// lookup). False when there is no room: the endpoint holds its share, or
/// the table is full.
#[inline(always)]
pub fn open(
    hook: &Hook,
    tuple: &Tuple,
    closed: Option<*mut ConnValue>,
    rule: u32,
    ip_bytes: u64,
) -> bool {
    let direction = hook.direction;
    let key = conn_key(hook.ifindex, direction, tuple);
    let value = ConnValue {
        last_seen_ns: hook.now,
        revision: hook.revision,
        rule,
        state: CONN_HALF_OPEN,
        origin: direction,
        _pad: [0; 3],
        opened_ns: hook.now,
        traffic: [traffic::packet(ip_bytes), 0],
    };
    if let Some(existing) = closed {
        // SAFETY: a valid pointer into the map's value; ConnValue is plain data.
        let closed_origin = unsafe { (*existing).origin };
        if closed_origin == direction {
            // A closed connection's tuple reused the same way: the same
            // entry, counted once.
            unsafe { core::ptr::copy_nonoverlapping(&value, existing, 1) };
            return true;
        }
        // Reused the other way: the closed connection leaves the share of
        // its opener before the new one asks for room in its own.
        close(&key, closed_origin);
    }
    usage::insert_new(
        &CONNECTIONS,
        &key,
        &value,
        &owner(&key, direction),
        &CONNTRACK_SHARE,
    )
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

/// Forgets the connection `key`, opened going `origin`.
#[inline(always)]
pub fn close(key: &ConnKey, origin: u8) {
    usage::remove(&CONNECTIONS, key, &owner(key, origin), &CONNTRACK_SHARE);
}

/// A connection counts against the share of its endpoint and origin.
#[inline(always)]
fn owner(key: &ConnKey, origin: u8) -> Owner {
    Owner {
        ifindex: key.ifindex,
        origin,
    }
}

/// The tuple of a tracked connection's first packet.
#[inline(always)]
pub fn original(key: &ConnKey, value: &ConnValue) -> Tuple {
    let ends = key.ends(value.origin);
    Tuple {
        src: Addr(ends.src),
        dst: Addr(ends.dst),
        protocol: key.protocol,
        src_port: ends.src_port,
        dst_port: ends.dst_port,
    }
}
