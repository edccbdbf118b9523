//! The status file: what the daemon enforces right now, replaced atomically
//! after every reconciliation, for operators and tests.

use std::{collections::BTreeMap, io, path::Path};

use aya::maps::{MapData, PerCpuArray};
use netseg_contract::COUNTER_COUNT;
use serde::Serialize;

use crate::{datapath::LoadedObject, enforcer::ChangeStages, flows::reason_name};

#[derive(Debug, Default, Serialize)]
pub struct Status {
    /// The active policy revision in the datapath (0: nothing published).
    pub revision: u32,
    /// How many times the daemon took in what its source holds (a reread
    /// of the manifests directory, a batch of watch events).
    pub reloads: u64,
    /// Whether the source has read everything it watches at least once.
    pub synced: bool,
    /// What the daemon waits for before it enforces its own policy
    /// (pinned programs of a previous daemon enforce until then); not
    /// ready while set.
    pub waiting_for: Option<&'static str>,
    /// Local pods whose interface has programs and policy.
    pub endpoints: usize,
    pub interfaces: Vec<InterfaceStatus>,
    /// Local pods with an IP that no attached interface is routed to.
    pub pods_without_interface: Vec<String>,
    /// Problems of the last reload or publication, one line each.
    pub problems: Vec<String>,
    /// The last publication that carried a change of the source: its
    /// policy implementation delay and where the time went.
    pub last_change: Option<ChangeStages>,
    /// Packets per verdict reason since the programs were loaded.
    pub counters: BTreeMap<&'static str, u64>,
    /// The eBPF object's SHA-256 and the kernel's tag of each program
    /// loaded from it (docs/supply-chain.md).
    pub ebpf: Option<LoadedObject>,
}

#[derive(Debug, Serialize)]
pub struct InterfaceStatus {
    pub name: String,
    pub ifindex: u32,
    /// The pod it belongs to; `None` means every packet is denied.
    pub pod: Option<String>,
}

/// Sums the per-CPU counters by reason code; zero counters are left out.
pub fn read_counters(counters: &PerCpuArray<MapData, u64>) -> BTreeMap<u8, u64> {
    (0..COUNTER_COUNT)
        .filter_map(|index| {
            let total: u64 = counters.get(&index, 0).ok()?.iter().sum();
            (total > 0).then_some((index as u8, total))
        })
        .collect()
}

/// The counters by reason name, as the status file shows them.
pub fn named(counters: &BTreeMap<u8, u64>) -> BTreeMap<&'static str, u64> {
    counters
        .iter()
        .map(|(&code, &total)| (reason_name(code), total))
        .collect()
}

pub fn write(path: &Path, status: &Status) -> io::Result<()> {
    let partial = path.with_extension("partial");
    std::fs::write(&partial, serde_json::to_vec_pretty(status)?)?;
    std::fs::rename(partial, path)
}
