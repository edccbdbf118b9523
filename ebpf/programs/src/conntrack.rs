//! Connection tracking per endpoint. An entry is keyed by the connection's
//! first packet as seen at one endpoint, so each hook tracks what it
//! admitted, and remembers the revision whose policy admitted it: after a
//! policy change, the next packet re-asks the policy (revocation).

use netseg_contract::{
    CONN_CLOSING, CONN_CLOSING_TIMEOUT_NS, CONN_OPEN, CONN_OTHER_TIMEOUT_NS, CONN_TCP_TIMEOUT_NS,
    ConnKey, ConnValue, DIRECTION_EGRESS, DIRECTION_INGRESS, PROTO_TCP,
};

use crate::{
    maps::CONNTRACK,
    parse::{Addr, Tuple},
};

/// last_seen is rewritten at most this often, to keep established packets
/// from dirtying a shared cache line each time.
const LAST_SEEN_GRANULARITY_NS: u64 = 1_000_000_000;

/// How long before `now` the entry was last stamped. The hooks of one
/// endpoint run on several CPUs at once (a pod's FIN on one, its peer's
/// crossing FIN or ACK on another), so a packet that read the clock before
/// another CPU stamped the entry sees a stamp later than its `now`: that is
/// an age of zero. Wrapping it would make a live connection look centuries
/// idle, and the lookup would delete it and drop the rest of its packets.
#[inline(always)]
fn age(now: u64, stamp: u64) -> u64 {
    now.saturating_sub(stamp)
}

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
fn reversed(tuple: &Tuple) -> Tuple {
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
    let value = unsafe { &*entry };
    let timeout = if value.state == CONN_CLOSING {
        CONN_CLOSING_TIMEOUT_NS
    } else if key.protocol == PROTO_TCP {
        CONN_TCP_TIMEOUT_NS
    } else {
        CONN_OTHER_TIMEOUT_NS
    };
    if age(now, value.last_seen_ns) > timeout {
        let _ = CONNTRACK.remove(key);
        return None;
    }
    Some(entry)
}

#[inline(always)]
pub fn open(ifindex: u32, direction: u8, tuple: &Tuple, revision: u32, rule: u32, now: u64) {
    let value = ConnValue {
        last_seen_ns: now,
        revision,
        rule,
        state: CONN_OPEN,
        _pad: 0,
    };
    // A full LRU map evicts its oldest entry; an insert that still fails
    // leaves the connection untracked, so its replies are denied (fail-closed).
    let _ = CONNTRACK.insert(&conn_key(ifindex, direction, tuple), &value, 0);
}

#[inline(always)]
pub fn touch(value: &mut ConnValue, closing: bool, now: u64) {
    if closing {
        value.state = CONN_CLOSING;
        value.last_seen_ns = value.last_seen_ns.max(now);
    } else if age(now, value.last_seen_ns) > LAST_SEEN_GRANULARITY_NS {
        value.last_seen_ns = now;
    }
}

#[inline(always)]
pub fn close(key: &ConnKey) {
    let _ = CONNTRACK.remove(key);
}

/// The peer of a tracked connection and the tuple of its first packet.
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
