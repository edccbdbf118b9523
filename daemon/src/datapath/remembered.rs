//! The state the programs remember (connections, fragmented datagrams) and
//! each endpoint's share of it, as the daemon reclaims and hands it over.
//!
//! The programs count an entry when they insert it and uncount it when
//! their delete succeeds; the daemon cannot add to a map value atomically,
//! so it keeps its own count per endpoint, table and origin (entries it
//! handed over minus entries it reclaimed) in the `USAGE` entries only it
//! writes.

use std::collections::{BTreeMap, BTreeSet};

use aya::{
    Ebpf,
    maps::{HashMap, IterableMap, MapData, MapError},
};
use netseg_contract::{
    CONN_CLOSING, CONN_HALF_OPEN, ConnKey, ConnValue, FragmentKey, FragmentValue, USAGE_BY_DAEMON,
    USAGE_BY_PROGRAMS, USAGE_CONNTRACK, USAGE_FRAGMENTS, UsageKey,
};

use super::{DatapathError, MapEntries, kernel::take_map, read_whole};

/// What one sweep reclaimed, and what it left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Swept {
    /// Entries reclaimed.
    pub connections: usize,
    pub fragments: usize,
    /// The connections left, by state.
    pub states: ConnStates,
    /// How full the conntrack and fragment tables are after the sweep.
    pub tables: [MapEntries; 2],
}

/// Connections by `ConnValue::state`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnStates {
    pub open: u64,
    pub half_open: u64,
    pub closing: u64,
}

impl ConnStates {
    fn count(&mut self, value: &ConnValue) {
        match value.state {
            CONN_HALF_OPEN => self.half_open += 1,
            CONN_CLOSING => self.closing += 1,
            // Any other state lives as long as an open one (see `expired`).
            _ => self.open += 1,
        }
    }

    pub fn total(&self) -> u64 {
        self.open + self.half_open + self.closing
    }
}

pub struct Remembered {
    pub(super) conntrack: HashMap<MapData, ConnKey, ConnValue>,
    pub(super) fragments: HashMap<MapData, FragmentKey, FragmentValue>,
    pub(super) usage: HashMap<MapData, UsageKey, u64>,
    /// How many entries the kernel made room for in each table.
    conntrack_capacity: u32,
    fragments_capacity: u32,
}

/// CLOCK_MONOTONIC in nanoseconds, the clock of `bpf_ktime_get_ns`.
pub fn monotonic_ns() -> u64 {
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .expect("CLOCK_MONOTONIC is always readable");
    now.tv_sec() as u64 * 1_000_000_000 + now.tv_nsec() as u64
}

/// Whose share an entry counts against: an endpoint and the origin of the
/// entry's connection (see `UsageKey`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Owner {
    pub ifindex: u32,
    pub origin: u8,
}

impl Owner {
    pub fn of_connection(key: &ConnKey, value: &ConnValue) -> Self {
        Owner {
            ifindex: key.ifindex,
            origin: value.origin,
        }
    }

    pub fn of_fragment(key: &FragmentKey, value: &FragmentValue) -> Self {
        Owner {
            ifindex: key.ifindex,
            origin: value.origin,
        }
    }

    fn usage_key(self, table: u8, writer: u8) -> UsageKey {
        UsageKey {
            ifindex: self.ifindex,
            table,
            writer,
            origin: self.origin,
            _pad: 0,
        }
    }
}

impl Remembered {
    pub(super) fn take(ebpf: &mut Ebpf) -> Result<Self, DatapathError> {
        let conntrack: HashMap<MapData, ConnKey, ConnValue> = take_map(ebpf, "CONNECTIONS")?;
        let fragments: HashMap<MapData, FragmentKey, FragmentValue> = take_map(ebpf, "FRAGMENTS")?;
        let capacity = |map: &'static str, data: &MapData| {
            data.info()
                .map(|info| info.max_entries())
                .map_err(|source| DatapathError::Map { map, source })
        };
        Ok(Self {
            conntrack_capacity: capacity("CONNECTIONS", conntrack.map())?,
            fragments_capacity: capacity("FRAGMENTS", fragments.map())?,
            conntrack,
            fragments,
            usage: take_map(ebpf, "USAGE")?,
        })
    }

    /// Deletes expired entries, and every entry of an interface that is no
    /// longer `live` (so that it holds no share when its index comes back),
    /// uncounting each delete that succeeded; a program may have reclaimed
    /// the same entry first. The entries left are counted on the way: this
    /// is the one full read of the tables.
    pub fn sweep(&mut self, now: u64, live: &BTreeSet<u32>) -> Result<Swept, MapError> {
        let mut states = ConnStates::default();
        let mut stale_connections = Vec::new();
        for (key, value) in read_whole(&self.conntrack)? {
            if !live.contains(&key.ifindex) || value.expired(key.protocol, now) {
                stale_connections.push((key, Owner::of_connection(&key, &value)));
            } else {
                states.count(&value);
            }
        }
        let mut reclaimed = BTreeMap::new();
        let mut connections = 0;
        // The origin is in the value, which never changes while the entry lives.
        for (key, owner) in stale_connections {
            if self.conntrack.remove(&key).is_ok() {
                *reclaimed.entry((owner, USAGE_CONNTRACK)).or_insert(0) += 1;
                connections += 1;
            }
        }
        let mut fragments_left = 0;
        let mut stale_fragments = Vec::new();
        for (key, value) in read_whole(&self.fragments)? {
            if !live.contains(&key.ifindex) || value.expired(now) {
                stale_fragments.push((key, Owner::of_fragment(&key, &value)));
            } else {
                fragments_left += 1;
            }
        }
        let mut fragments = 0;
        for (key, owner) in stale_fragments {
            if self.fragments.remove(&key).is_ok() {
                *reclaimed.entry((owner, USAGE_FRAGMENTS)).or_insert(0) += 1;
                fragments += 1;
            }
        }
        for ((owner, table), count) in reclaimed {
            self.count_by_daemon(owner, table, 0u64.wrapping_sub(count))?;
        }
        self.forget_gone(live)?;
        Ok(Swept {
            connections,
            fragments,
            states,
            tables: [
                MapEntries {
                    map: "conntrack",
                    entries: states.total(),
                    capacity: u64::from(self.conntrack_capacity),
                },
                MapEntries {
                    map: "fragments",
                    entries: fragments_left,
                    capacity: u64::from(self.fragments_capacity),
                },
            ],
        })
    }

    /// Adds `delta` (wrapping) to the daemon's count of `owner`'s `table` entries.
    pub(super) fn count_by_daemon(
        &mut self,
        owner: Owner,
        table: u8,
        delta: u64,
    ) -> Result<(), MapError> {
        let key = owner.usage_key(table, USAGE_BY_DAEMON);
        let count = match self.usage.get(&key, 0) {
            Ok(count) => count,
            Err(MapError::KeyNotFound) => 0,
            Err(error) => return Err(error),
        };
        self.usage.insert(key, count.wrapping_add(delta), 0)
    }

    /// Interfaces that are gone hold no entries after a sweep: their counts
    /// go, so the usage map does not fill with indexes of the past.
    fn forget_gone(&mut self, live: &BTreeSet<u32>) -> Result<(), MapError> {
        let gone: Vec<UsageKey> = self
            .usage
            .keys()
            .filter_map(Result::ok)
            .filter(|key| !live.contains(&key.ifindex))
            .collect();
        for key in gone {
            match self.usage.remove(&key) {
                Ok(()) | Err(MapError::KeyNotFound) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }

    /// What `owner` holds of `table`, as the programs see it.
    pub fn held(&self, owner: Owner, table: u8) -> u64 {
        [USAGE_BY_PROGRAMS, USAGE_BY_DAEMON]
            .into_iter()
            .filter_map(|writer| self.usage.get(&owner.usage_key(table, writer), 0).ok())
            .fold(0, u64::wrapping_add)
    }
}
