//! Each endpoint's share of the tables that remember state: an entry is
//! counted when it is inserted and uncounted by whoever deletes it (a
//! delete succeeds once), so one endpoint cannot fill a table for others.
//! An endpoint has a share per origin of the entry's connection, so that
//! the connections others open toward it (counted at its ingress hook)
//! cannot fill the share of the connections it opens itself.

use aya_ebpf::{bindings::BPF_NOEXIST, maps::HashMap};
use netseg_contract::{
    CONFIG_CONNTRACK_PER_ENDPOINT, CONFIG_FRAGMENTS_PER_ENDPOINT, USAGE_BY_DAEMON,
    USAGE_BY_PROGRAMS, USAGE_CONNTRACK, USAGE_FRAGMENTS, UsageKey,
};

use crate::{
    atomic::add,
    maps::{CONFIG, USAGE},
};

#[inline(always)]
fn key(owner: &Owner, table: u8, writer: u8) -> UsageKey {
    UsageKey {
        ifindex: owner.ifindex,
        table,
        writer,
        origin: owner.origin,
        _pad: 0,
    }
}

/// Whose share an entry counts against: the endpoint at `ifindex`, for
/// connections whose first packet went in direction `origin` there.
pub struct Owner {
    pub ifindex: u32,
    pub origin: u8,
}

/// The programs' count of `table` entries of `owner`, created at zero.
/// Every program writes it with atomic adds only.
#[inline(always)]
fn programs_count(owner: &Owner, table: u8) -> Option<*mut u64> {
    let key = key(owner, table, USAGE_BY_PROGRAMS);
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

/// Counts one more `table` entry of `owner` if it holds fewer than the
/// limit at `CONFIG[limit_index]`; false (nothing counted) if not.
/// The check reads, then the count adds atomically: CPUs that pass the check
/// at the same moment may exceed the limit by one entry each, no more.
#[inline(always)]
fn reserve(owner: &Owner, table: u8, limit_index: u32) -> bool {
    let limit = CONFIG.get(limit_index).copied().unwrap_or(0);
    // SAFETY: the value is copied out; only the daemon writes it.
    let by_daemon = unsafe { USAGE.get(&key(owner, table, USAGE_BY_DAEMON)) }
        .copied()
        .unwrap_or(0);
    let Some(count) = programs_count(owner, table) else {
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
fn release(owner: &Owner, table: u8) {
    if let Some(count) = programs_count(owner, table) {
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

/// Inserts an entry of `owner` under a `key` that holds none, counted
/// against its share; an entry another CPU inserted first is left as it is
/// (true: the key holds an entry, counted once). False when there is no
/// room: the owner holds its share, or the table is full (a plain hash map
/// refuses; it never evicts another's entry).
#[inline(always)]
pub fn insert_new<K, V>(
    map: &HashMap<K, V>,
    key: &K,
    value: &V,
    owner: &Owner,
    share: &Share,
) -> bool {
    if !reserve(owner, share.table, share.limit_index) {
        return false;
    }
    match map.insert(key, value, BPF_NOEXIST as u64) {
        Ok(()) => true,
        Err(error) => {
            release(owner, share.table);
            // Another CPU inserted the same entry first: it is there, counted once.
            error == -EEXIST
        }
    }
}

/// Deletes an entry; only a delete that succeeds uncounts it, so an entry
/// that the daemon's sweep and a program both reclaim is uncounted once.
#[inline(always)]
pub fn remove<K, V>(map: &HashMap<K, V>, key: &K, owner: &Owner, share: &Share) {
    if map.remove(key).is_ok() {
        release(owner, share.table);
    }
}
