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
    Pod,
    maps::{HashMap, Map, MapData, MapError, MapInfo, MapType},
    programs::{
        ProgramError,
        links::{FdLink, LinkError, PinnedLink},
        loaded_programs,
    },
};
use netseg_contract::{ConnKey, ConnValue, Ends, USAGE_CONNTRACK};
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
                *copied_to
                    .entry(Owner::of_connection(&key, &value))
                    .or_default() += 1;
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
/// in whichever layout their daemon used: keyed pod end first
/// (`CONNECTIONS`, this daemon's), or by the first packet's direction and
/// ends (`CONNTRACK`, every earlier daemon's).
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
        let Ok(info) = MapInfo::from_id(map_id) else {
            continue;
        };
        let keyed_by_origin = match info.name_as_str() {
            Some("CONNECTIONS") => false,
            Some("CONNTRACK") => true,
            _ => continue,
        };
        let data = MapData::from_id(map_id).map_err(PinError::Conntrack)?;
        let value_size = info.value_size() as usize;
        let entries = match (keyed_by_origin, value_size) {
            (false, size) if size == size_of::<ConnValue>() => entries::<ConnKey, ConnValue>(data),
            (true, 48) => by_origin::<6>(data),
            (true, 64) => by_origin::<8>(data),
            (true, 24) => by_origin::<3>(data),
            _ => {
                return Err(PinError::ConntrackLayout {
                    value_size: info.value_size(),
                });
            }
        };
        return entries.map(Some).map_err(PinError::Conntrack);
    }
    Ok(None)
}

/// The entries of a conntrack table keyed `K` with values `V`.
fn entries<K: Pod, V: Pod>(data: MapData) -> Result<Vec<(K, V)>, MapError> {
    // Daemons before the per-endpoint shares kept a least-recently-used table.
    let map = match data.info().map(|info| info.map_type()) {
        Ok(Ok(MapType::LruHash)) => Map::LruHashMap(data),
        _ => Map::HashMap(data),
    };
    let map = HashMap::<_, K, V>::try_from(map)?;
    Ok(map.iter().flatten().collect())
}

/// The key of the tables before connections were keyed pod end first: a
/// connection's first packet's direction and ends.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct OriginKey {
    ifindex: u32,
    origin: u8,
    protocol: u8,
    _pad: [u8; 2],
    src_port: u16,
    dst_port: u16,
    src: [u8; 16],
    dst: [u8; 16],
}

// SAFETY: plain integers and byte arrays, with explicit padding.
unsafe impl Pod for OriginKey {}

/// The entries of a table keyed by origin whose values are `N` words, as
/// this daemon's programs keep them.
fn by_origin<const N: usize>(data: MapData) -> Result<Vec<(ConnKey, ConnValue)>, MapError> {
    Ok(entries::<OriginKey, [u64; N]>(data)?
        .into_iter()
        .map(|(key, words)| carried_over(&key, &words))
        .collect())
}

/// An entry of an earlier layout as this daemon's programs keep it. Every
/// layout begins with the stamp, revision, rule and state; all but the
/// first (24 bytes) then have when the connection opened. The traffic
/// counts start again: the exporter reports an inherited connection from
/// its first reading on.
fn carried_over(key: &OriginKey, words: &[u64]) -> (ConnKey, ConnValue) {
    let halves = |word: u64| {
        let [a, b, c, d, e, f, g, h] = word.to_ne_bytes();
        (
            u32::from_ne_bytes([a, b, c, d]),
            u32::from_ne_bytes([e, f, g, h]),
        )
    };
    let (revision, rule) = halves(words[1]);
    let (state, _) = halves(words[2]);
    let ends = Ends {
        src: key.src,
        src_port: key.src_port,
        dst: key.dst,
        dst_port: key.dst_port,
    };
    let value = ConnValue {
        last_seen_ns: words[0],
        revision,
        rule,
        state,
        origin: key.origin,
        _pad: [0; 3],
        // Unknown to the first layout: its last packet is the best bound.
        opened_ns: words.get(3).copied().unwrap_or(words[0]),
        traffic: [0; 2],
    };
    (
        ConnKey::of(key.ifindex, key.origin, key.protocol, &ends),
        value,
    )
}

#[cfg(test)]
mod tests {
    use netseg_contract::{CONN_CLOSING, ConnKey, ConnValue, DIRECTION_INGRESS, Ends};

    use super::{OriginKey, carried_over};

    /// Two `u32` fields laid out in one word, as the programs store them.
    fn word(low: u32, high: u32) -> u64 {
        let [a, b, c, d] = low.to_ne_bytes();
        let [e, f, g, h] = high.to_ne_bytes();
        u64::from_ne_bytes([a, b, c, d, e, f, g, h])
    }

    #[test]
    fn an_entry_of_every_earlier_layout_keeps_its_ends_origin_stamp_revision_rule_state_and_start()
    {
        // A connection a peer opened toward the pod 10.0.0.2:80.
        let (peer, pod) = ([1; 16], [2; 16]);
        let old_key = OriginKey {
            ifindex: 9,
            origin: DIRECTION_INGRESS,
            protocol: 6,
            _pad: [0; 2],
            src_port: 40_000,
            dst_port: 80,
            src: peer,
            dst: pod,
        };
        let key = ConnKey {
            ifindex: 9,
            protocol: 6,
            _pad: [0; 3],
            pod_port: 80,
            peer_port: 40_000,
            pod,
            peer,
        };
        let expected = ConnValue {
            last_seen_ns: 9_000,
            revision: 7,
            rule: 42,
            state: CONN_CLOSING,
            origin: DIRECTION_INGRESS,
            _pad: [0; 3],
            opened_ns: 1_000,
            traffic: [0; 2],
        };
        let head = [9_000, word(7, 42), word(CONN_CLOSING, 0)];
        // Issue 11's first layout: opened, then packets and bytes per side.
        let unpacked = [&head[..], &[1_000, 5, 6, 700, 800]].concat();
        assert_eq!(carried_over(&old_key, &unpacked), (key, expected));
        // Counters packed.
        let packed = [&head[..], &[1_000, u64::MAX, 77]].concat();
        assert_eq!(carried_over(&old_key, &packed), (key, expected));
        // Before counting: when it opened is unknown, its stamp bounds it.
        let uncounted = ConnValue {
            opened_ns: 9_000,
            ..expected
        };
        assert_eq!(carried_over(&old_key, &head), (key, uncounted));
        // Its first packet is what the old key said.
        let first = Ends {
            src: peer,
            src_port: 40_000,
            dst: pod,
            dst_port: 80,
        };
        assert_eq!(key.ends(expected.origin), first);
    }
}
