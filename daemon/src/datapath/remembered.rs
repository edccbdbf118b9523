//! The state the programs remember (connections, fragmented datagrams) and
//! each endpoint's share of it, as the daemon reclaims and hands it over.
//!
//! The programs count an entry when they insert it and uncount it when
//! their delete succeeds; the daemon cannot add to a map value atomically,
//! so it keeps its own count per endpoint and table (entries it handed over
//! minus entries it reclaimed) in the `USAGE` entries only it writes.

use std::collections::{BTreeMap, BTreeSet};

use aya::maps::{HashMap, MapData, MapError};
use netseg_contract::{
    ConnKey, ConnValue, FragmentKey, FragmentValue, USAGE_BY_DAEMON, USAGE_BY_PROGRAMS,
    USAGE_CONNTRACK, USAGE_FRAGMENTS, UsageKey,
};

/// What one sweep reclaimed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Swept {
    pub connections: usize,
    pub fragments: usize,
}

pub struct Remembered {
    pub(super) conntrack: HashMap<MapData, ConnKey, ConnValue>,
    pub(super) fragments: HashMap<MapData, FragmentKey, FragmentValue>,
    pub(super) usage: HashMap<MapData, UsageKey, u64>,
}

/// CLOCK_MONOTONIC in nanoseconds, the clock of `bpf_ktime_get_ns`.
pub fn monotonic_ns() -> u64 {
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .expect("CLOCK_MONOTONIC is always readable");
    now.tv_sec() as u64 * 1_000_000_000 + now.tv_nsec() as u64
}

fn usage_key(ifindex: u32, table: u8, writer: u8) -> UsageKey {
    UsageKey {
        ifindex,
        table,
        writer,
        _pad: [0; 2],
    }
}

impl Remembered {
    /// Deletes expired entries, and every entry of an interface that is no
    /// longer `live` (so that it holds no share when its index comes back),
    /// uncounting each delete that succeeded; a program may have reclaimed
    /// the same entry first.
    pub fn sweep(&mut self, now: u64, live: &BTreeSet<u32>) -> Result<Swept, MapError> {
        let stale_connections: Vec<ConnKey> = self
            .conntrack
            .iter()
            .filter_map(Result::ok)
            .filter(|(key, value)| !live.contains(&key.ifindex) || value.expired(key.protocol, now))
            .map(|(key, _)| key)
            .collect();
        let mut reclaimed = BTreeMap::new();
        let mut swept = Swept::default();
        for key in stale_connections {
            if self.conntrack.remove(&key).is_ok() {
                *reclaimed.entry((key.ifindex, USAGE_CONNTRACK)).or_insert(0) += 1;
                swept.connections += 1;
            }
        }
        let stale_fragments: Vec<FragmentKey> = self
            .fragments
            .iter()
            .filter_map(Result::ok)
            .filter(|(key, value)| !live.contains(&key.ifindex) || value.expired(now))
            .map(|(key, _)| key)
            .collect();
        for key in stale_fragments {
            if self.fragments.remove(&key).is_ok() {
                *reclaimed.entry((key.ifindex, USAGE_FRAGMENTS)).or_insert(0) += 1;
                swept.fragments += 1;
            }
        }
        for ((ifindex, table), count) in reclaimed {
            self.count_by_daemon(ifindex, table, 0u64.wrapping_sub(count))?;
        }
        self.forget_gone(live)?;
        Ok(swept)
    }

    /// Adds `delta` (wrapping) to the daemon's count of `table` at `ifindex`.
    pub(super) fn count_by_daemon(
        &mut self,
        ifindex: u32,
        table: u8,
        delta: u64,
    ) -> Result<(), MapError> {
        let key = usage_key(ifindex, table, USAGE_BY_DAEMON);
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

    /// What `ifindex` holds of `table`, as the programs see it.
    pub fn held(&self, ifindex: u32, table: u8) -> u64 {
        [USAGE_BY_PROGRAMS, USAGE_BY_DAEMON]
            .into_iter()
            .filter_map(|writer| self.usage.get(&usage_key(ifindex, table, writer), 0).ok())
            .fold(0, u64::wrapping_add)
    }
}
