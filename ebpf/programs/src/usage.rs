//! Each endpoint's share of the tables that remember state: an entry is
//! counted when it is inserted and uncounted by whoever deletes it (a
//! delete succeeds once), so one endpoint cannot fill a table for others.

use core::intrinsics::{AtomicOrdering, atomic_xadd};

use aya_ebpf::{bindings::BPF_NOEXIST, maps::HashMap};
use netseg_contract::{
    CONFIG_CONNTRACK_PER_ENDPOINT, CONFIG_FRAGMENTS_PER_ENDPOINT, USAGE_BY_DAEMON,
    USAGE_BY_PROGRAMS, USAGE_CONNTRACK, USAGE_FRAGMENTS, UsageKey,
};

use crate::maps::{CONFIG, USAGE};

#[inline(always)]
fn key(ifindex: u32, table: u8, writer: u8) -> UsageKey {
    UsageKey {
        ifindex,
        table,
        writer,
        _pad: [0; 2],
    }
}

/// The programs' count of `table` entries at `ifindex`, created at zero.
/// Every program writes it with atomic adds only.
#[inline(always)]
fn programs_count(ifindex: u32, table: u8) -> Option<*mut u64> {
    let key = key(ifindex, table, USAGE_BY_PROGRAMS);
    let count = match USAGE.get_ptr_mut(&key) {
        Some(count) => count,
        None => {
            // Another CPU may create it first; either way it exists after.
            let _ = USAGE.insert(&key, &0, BPF_NOEXIST as u64);
            USAGE.get_ptr_mut(&key)?
        }
    };
    Some(count)
}

/// Adds `delta` (wrapping) to a count, atomically. The programs are built
/// for the baseline BPF instruction set, whose atomic add returns nothing.
#[inline(always)]
fn add(count: *mut u64, delta: u64) {
    // SAFETY: a valid, aligned pointer into a map value, which outlives the
    // program; the result is unused, so this is the baseline atomic add.
    unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(count, delta) };
}

/// Counts one more `table` entry at `ifindex` if the endpoint holds fewer
/// than the limit at `CONFIG[limit_index]`; false (nothing counted) if not.
/// The check reads, then the count adds atomically: CPUs that pass the check
/// at the same moment may exceed the limit by one entry each, no more.
#[inline(always)]
fn reserve(ifindex: u32, table: u8, limit_index: u32) -> bool {
    let limit = CONFIG.get(limit_index).copied().unwrap_or(0);
    // SAFETY: the value is copied out; only the daemon writes it.
    let by_daemon = unsafe { USAGE.get(&key(ifindex, table, USAGE_BY_DAEMON)) }
        .copied()
        .unwrap_or(0);
    let Some(count) = programs_count(ifindex, table) else {
        return false;
    };
    // SAFETY: an aligned pointer into a map value; a torn read is impossible for u64.
    let held = unsafe { core::ptr::read_volatile(count) }.wrapping_add(by_daemon);
    if held >= u64::from(limit) {
        return false;
    }
    add(count, 1);
    true
}

/// Uncounts an entry the program deleted (call only when the delete succeeded).
#[inline(always)]
fn release(ifindex: u32, table: u8) {
    if let Some(count) = programs_count(ifindex, table) {
        add(count, u64::MAX);
    }
}

/// Which share an entry counts against.
pub struct Share {
    table: u8,
    limit_index: u32,
}

pub const CONNTRACK_SHARE: Share = Share {
    table: USAGE_CONNTRACK,
    limit_index: CONFIG_CONNTRACK_PER_ENDPOINT,
};

pub const FRAGMENTS_SHARE: Share = Share {
    table: USAGE_FRAGMENTS,
    limit_index: CONFIG_FRAGMENTS_PER_ENDPOINT,
};

/// Errno of an insert whose key another CPU inserted first.
const EEXIST: i32 = 17;

/// Inserts an entry of the endpoint at `ifindex`, counted against its
/// share; an entry already under `key` is overwritten and stays counted
/// once. False when there is no room: the endpoint holds its share, or the
/// table is full (a plain hash map refuses; it never evicts another's entry).
#[inline(always)]
pub fn insert<K, V>(map: &HashMap<K, V>, key: &K, value: &V, ifindex: u32, share: &Share) -> bool {
    if let Some(existing) = map.get_ptr_mut(key) {
        // SAFETY: a valid pointer into the map's value; V is plain data.
        unsafe { core::ptr::copy_nonoverlapping(value, existing, 1) };
        return true;
    }
    if !reserve(ifindex, share.table, share.limit_index) {
        return false;
    }
    match map.insert(key, value, BPF_NOEXIST as u64) {
        Ok(()) => true,
        Err(error) => {
            release(ifindex, share.table);
            // Another CPU inserted the same entry first: it is there, counted once.
            error == -EEXIST
        }
    }
}

/// Deletes an entry; only a delete that succeeds uncounts it, so an entry
/// that the daemon's sweep and a program both reclaim is uncounted once.
#[inline(always)]
pub fn remove<K, V>(map: &HashMap<K, V>, key: &K, ifindex: u32, share: &Share) {
    if map.remove(key).is_ok() {
        release(ifindex, share.table);
    }
}
