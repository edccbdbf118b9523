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
    maps::{HashMap, Map, MapData, MapInfo, MapType},
    programs::{
        ProgramError,
        links::{FdLink, LinkError, PinnedLink},
        loaded_programs,
    },
};
use netseg_contract::{ConnKey, ConnValue, USAGE_CONNTRACK};
use tracing::info;

use super::remembered::{Remembered, monotonic_ns};

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
    /// packet, and counts them to their endpoints. Returns how many were copied.
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
        let mut copied_to = BTreeMap::<u32, u64>::new();
        for (key, mut value) in old.iter().flatten() {
            if value.expired(key.protocol, now) {
                continue;
            }
            value.revision = 0;
            if remembered.conntrack.insert(key, value, BPF_NOEXIST).is_ok() {
                *copied_to.entry(key.ifindex).or_default() += 1;
            }
        }
        for (&ifindex, &count) in &copied_to {
            remembered
                .count_by_daemon(ifindex, USAGE_CONNTRACK, count)
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

fn previous_conntrack(
    program_id: u32,
) -> Result<Option<HashMap<MapData, ConnKey, ConnValue>>, PinError> {
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
            // Daemons before the per-endpoint shares kept a least-recently-used table.
            let map = match data.info().map(|info| info.map_type()) {
                Ok(Ok(MapType::LruHash)) => Map::LruHashMap(data),
                _ => Map::HashMap(data),
            };
            let map = HashMap::try_from(map).map_err(PinError::Conntrack)?;
            return Ok(Some(map));
        }
    }
    Ok(None)
}
