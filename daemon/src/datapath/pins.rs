//! Enforcement that outlives the daemon: with `--pin-dir`, every tcx link
//! is pinned in bpffs, so a stopped or crashed daemon leaves the last
//! published policy enforced. The next daemon publishes into fresh maps,
//! copies the conntrack entries of the programs it replaces (so established
//! connections survive, and are re-checked against the new policy), then
//! swaps its programs into the pinned links atomically.

use std::{
    collections::{BTreeMap, BTreeSet},
    io,
    path::{Path, PathBuf},
};

use aya::{
    maps::{HashMap, Map, MapData, MapError, MapInfo, MapType},
    programs::{
        ProgramError,
        links::{FdLink, LinkError, PinnedLink},
        loaded_programs,
    },
};
use netseg_contract::{ConnKey, ConnValue, USAGE_CONNTRACK};
use tracing::info;

use super::remembered::{Owner, Remembered, monotonic_ns};

/// Map update flag: insert only if absent, so that a connection our own
/// programs track already (and counted) stays as it is.
const BPF_NOEXIST: u64 = 1;

#[derive(Debug, thiserror::Error)]
pub enum PinError {
    #[error("pin directory {path}")]
    Dir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("pinned link {path}")]
    Link {
        path: PathBuf,
        #[source]
        source: LinkError,
    },
    #[error("the programs behind the pinned links")]
    Program(#[source] ProgramError),
    #[error("the conntrack map of the previous daemon")]
    Conntrack(#[source] aya::maps::MapError),
    #[error(
        "the conntrack map of the previous daemon has {value_size}-byte values, a layout this daemon does not know"
    )]
    ConntrackLayout { value_size: u32 },
}

/// A bpffs directory holding one pinned link per interface and hook.
#[derive(Clone, Debug)]
pub struct PinDir {
    dir: PathBuf,
}

impl PinDir {
    pub fn open(dir: &Path) -> Result<Self, PinError> {
        std::fs::create_dir_all(dir).map_err(|source| PinError::Dir {
            path: dir.to_owned(),
            source,
        })?;
        Ok(Self {
            dir: dir.to_owned(),
        })
    }

    pub fn link_path(&self, ifindex: u32, program: &str) -> PathBuf {
        self.dir.join(format!("link-{ifindex}-{program}"))
    }

    fn links(&self) -> Result<Vec<(u32, PathBuf)>, PinError> {
        let entries = std::fs::read_dir(&self.dir).map_err(|source| PinError::Dir {
            path: self.dir.clone(),
            source,
        })?;
        Ok(entries
            .flatten()
            .filter_map(|entry| {
                let name = entry.file_name().into_string().ok()?;
                let ifindex = name
                    .strip_prefix("link-")?
                    .split('-')
                    .next()?
                    .parse()
                    .ok()?;
                Some((ifindex, entry.path()))
            })
            .collect())
    }

    /// The interfaces a previous daemon left enforced.
    pub fn pinned_ifindexes(&self) -> Result<BTreeSet<u32>, PinError> {
        Ok(self
            .links()?
            .into_iter()
            .map(|(ifindex, _)| ifindex)
            .collect())
    }

    /// Unpins the links of `ifindex` (detaching them).
    pub fn unpin(&self, ifindex: u32) -> Result<(), PinError> {
        for (_, path) in self.links()?.into_iter().filter(|(i, _)| *i == ifindex) {
            std::fs::remove_file(&path).map_err(|source| PinError::Dir { path, source })?;
        }
        Ok(())
    }

    /// Unpins every link: `netseg detach`.
    pub fn unpin_all(&self) -> Result<usize, PinError> {
        let links = self.links()?;
        for (_, path) in &links {
            std::fs::remove_file(path).map_err(|source| PinError::Dir {
                path: path.clone(),
                source,
            })?;
        }
        Ok(links.len())
    }

    /// Copies the previous daemon's live conntrack entries into ours, with
    /// revision 0 so that each is checked against the new policy on its next
    /// packet, and counts them to their endpoints' shares. Returns how many were copied.
    pub fn hand_over_conntrack(&self, remembered: &mut Remembered) -> Result<u64, PinError> {
        let Some((_, path)) = self.links()?.into_iter().next() else {
            return Ok(0);
        };
        let link = FdLink::from(
            PinnedLink::from_pin(&path).map_err(|source| PinError::Link {
                path: path.clone(),
                source,
            })?,
        );
        let program_id = link
            .info()
            .map_err(|source| PinError::Link { path, source })?
            .program_id();
        let Some(old) = previous_conntrack(program_id)? else {
            return Ok(0);
        };
        let now = monotonic_ns();
        let mut copied_to = BTreeMap::<Owner, u64>::new();
        for (key, mut value) in old {
            if value.expired(key.protocol, now) {
                continue;
            }
            value.revision = 0;
            if remembered.conntrack.insert(key, value, BPF_NOEXIST).is_ok() {
                *copied_to.entry(Owner::of_connection(&key)).or_default() += 1;
            }
        }
        for (&owner, &count) in &copied_to {
            remembered
                .count_by_daemon(owner, USAGE_CONNTRACK, count)
                .map_err(PinError::Conntrack)?;
        }
        let copied: u64 = copied_to.values().sum();
        info!(
            copied,
            "conntrack entries handed over from the previous daemon"
        );
        Ok(copied)
    }
}

/// The live entries of the conntrack table of the programs `program_id`,
/// in whichever layout their daemon used.
fn previous_conntrack(program_id: u32) -> Result<Option<Vec<(ConnKey, ConnValue)>>, PinError> {
    let Some(program) = loaded_programs()
        .flatten()
        .find(|program| program.id() == program_id)
    else {
        return Ok(None);
    };
    for map_id in program
        .map_ids()
        .map_err(PinError::Program)?
        .unwrap_or_default()
    {
        let is_conntrack = MapInfo::from_id(map_id)
            .map(|info| info.name_as_str() == Some("CONNTRACK"))
            .unwrap_or(false);
        if is_conntrack {
            let data = MapData::from_id(map_id).map_err(PinError::Conntrack)?;
            let value_size = data.info().map_err(PinError::Conntrack)?.value_size();
            let entries = match value_size as usize {
                size if size == size_of::<ConnValue>() => {
                    entries::<{ size_of::<ConnValue>() / 8 }>(data)
                }
                64 => entries::<8>(data),
                24 => entries::<3>(data),
                _ => return Err(PinError::ConntrackLayout { value_size }),
            };
            return entries.map(Some).map_err(PinError::Conntrack);
        }
    }
    Ok(None)
}

/// The entries of a conntrack table whose values are `N` words.
fn entries<const N: usize>(data: MapData) -> Result<Vec<(ConnKey, ConnValue)>, MapError> {
    // Daemons before the per-endpoint shares kept a least-recently-used table.
    let map = match data.info().map(|info| info.map_type()) {
        Ok(Ok(MapType::LruHash)) => Map::LruHashMap(data),
        _ => Map::HashMap(data),
    };
    let map = HashMap::<_, ConnKey, [u64; N]>::try_from(map)?;
    Ok(map
        .iter()
        .flatten()
        .map(|(key, words)| (key, carried_over(&words)))
        .collect())
}

/// An entry of an earlier layout as this daemon's programs keep it. Every
/// layout begins with the stamp, revision, rule and state; all but the
/// first (24 bytes) then have when the connection opened. The traffic
/// counts start again: the exporter reports an inherited connection from
/// its first reading on.
fn carried_over(words: &[u64]) -> ConnValue {
    let halves = |word: u64| {
        let [a, b, c, d, e, f, g, h] = word.to_ne_bytes();
        (
            u32::from_ne_bytes([a, b, c, d]),
            u32::from_ne_bytes([e, f, g, h]),
        )
    };
    let (revision, rule) = halves(words[1]);
    let (state, _) = halves(words[2]);
    ConnValue {
        last_seen_ns: words[0],
        revision,
        rule,
        state,
        _pad: 0,
        // Unknown to the first layout: its last packet is the best bound.
        opened_ns: words.get(3).copied().unwrap_or(words[0]),
        traffic: [0; 2],
    }
}

#[cfg(test)]
mod tests {
    use netseg_contract::{CONN_CLOSING, ConnValue};

    use super::carried_over;

    /// Two `u32` fields laid out in one word, as the programs store them.
    fn word(low: u32, high: u32) -> u64 {
        let [a, b, c, d] = low.to_ne_bytes();
        let [e, f, g, h] = high.to_ne_bytes();
        u64::from_ne_bytes([a, b, c, d, e, f, g, h])
    }

    #[test]
    fn an_entry_of_every_earlier_layout_keeps_its_stamp_revision_rule_state_and_start() {
        let expected = ConnValue {
            last_seen_ns: 9_000,
            revision: 7,
            rule: 42,
            state: CONN_CLOSING,
            _pad: 0,
            opened_ns: 1_000,
            traffic: [0; 2],
        };
        let head = [9_000, word(7, 42), word(CONN_CLOSING, 0)];
        // Issue 11's first layout: opened, then packets and bytes per side.
        let unpacked = [&head[..], &[1_000, 5, 6, 700, 800]].concat();
        assert_eq!(carried_over(&unpacked), expected);
        // This layout, counters packed.
        let packed = [&head[..], &[1_000, u64::MAX, 77]].concat();
        assert_eq!(carried_over(&packed), expected);
        // Before counting: when it opened is unknown, its stamp bounds it.
        let uncounted = ConnValue {
            opened_ns: 9_000,
            ..expected
        };
        assert_eq!(carried_over(&head), uncounted);
    }
}
