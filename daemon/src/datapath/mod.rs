//! The kernel side: loading the programs, attaching them to pod interfaces
//! with tcx, and the map handles the rest of the daemon writes and reads.

pub mod announced;
mod attach;
mod batch_write;
mod capabilities;
mod kernel;
mod loaded;
pub mod pins;
pub mod publish;
pub mod remembered;
pub mod state;
pub mod test_run;
mod whole_map;

use std::sync::{Arc, Mutex};

use aya::{
    Ebpf, EbpfLoader,
    maps::{MapData, PerCpuArray, RingBuf},
    programs::{ProgramError, SchedClassifier},
};

pub use kernel::KernelMaps;
pub use loaded::{LoadedObject, sha256_hex};
pub use whole_map::read_whole;

use attach::Attachments;
use netseg_contract::{ConnKey, ConnValue};
use pins::PinDir;
use remembered::{Remembered, Swept, monotonic_ns};

/// The eBPF object built into this netseg.
pub fn embedded_object() -> Result<&'static [u8], DatapathError> {
    if netseg_ebpf_object::OBJECT.is_empty() {
        return Err(DatapathError::NotBuilt);
    }
    Ok(netseg_ebpf_object::OBJECT)
}

/// Program attached to the host side's ingress hook: what the pod sends.
const POD_EGRESS: &str = "pod_egress";
/// Program attached to the host side's egress hook: what the pod receives.
const POD_INGRESS: &str = "pod_ingress";

#[derive(Debug, thiserror::Error)]
pub enum DatapathError {
    #[error(
        "this netseg was built without its eBPF programs (bpf-linker was missing); run scripts/bootstrap and rebuild"
    )]
    NotBuilt,
    #[error("netseg needs CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON (or CAP_SYS_ADMIN); missing: {}", .0.join(", "))]
    Capabilities(Vec<String>),
    #[error("reading this process's capabilities")]
    ReadCapabilities(#[source] std::io::Error),
    #[error("loading the eBPF object failed")]
    Load(#[source] aya::EbpfError),
    #[error("the eBPF object has no {0}")]
    Missing(&'static str),
    #[error("program {program}")]
    Program {
        program: &'static str,
        #[source]
        source: ProgramError,
    },
    #[error("map {map}")]
    Map {
        map: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
    #[error("attaching to interface {interface}")]
    Attach {
        interface: String,
        #[source]
        source: ProgramError,
    },
    #[error("pinning the link of {interface}")]
    Pin {
        interface: String,
        #[source]
        source: aya::pin::PinError,
    },
    #[error(transparent)]
    Pins(#[from] pins::PinError),
}

/// Sizes of the maps the daemon may change at start-up.
#[derive(Clone, Copy, Debug)]
pub struct MapSizes {
    pub conntrack: u32,
    pub events_bytes: u32,
}

/// How full one table of the datapath is: `entries` of `capacity` (for a
/// double-buffered table, of one slot).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapEntries {
    pub map: &'static str,
    pub entries: u64,
    pub capacity: u64,
}

impl MapEntries {
    /// `entries / capacity`: 0 empty, 1 full, above 1 for a policy that
    /// needs more than its slot holds.
    pub fn pressure(&self) -> f64 {
        self.entries as f64 / self.capacity as f64
    }
}

/// How much of the tables that remember state one endpoint may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub conntrack_per_endpoint: u32,
    pub fragments_per_endpoint: u32,
}

/// Which flow events the programs report. Verdicts and counters are the
/// same either way; fewer events cost less on busy nodes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FlowEvents {
    /// New allowed connections and (sampled) denials.
    #[default]
    All,
    /// Only denials.
    Denied,
    /// None: counters only.
    None,
}

impl FlowEvents {
    fn off_bits(self) -> u32 {
        use netseg_contract::flow_events_off::{ALLOWED, DENIED};
        match self {
            FlowEvents::All => 0,
            FlowEvents::Denied => ALLOWED,
            FlowEvents::None => ALLOWED | DENIED,
        }
    }
}

/// How many denials a second get a flow record of their own; the rest are
/// counted in aggregated records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DenyBudgets {
    /// Per endpoint: one pod's interface in one direction.
    pub per_endpoint: u32,
    /// All endpoints of the node together.
    pub total: u32,
}

impl DenyBudgets {
    pub const DEFAULT: Self = Self {
        per_endpoint: 100,
        total: 1000,
    };
}

/// Readers of what the programs report.
pub struct Telemetry {
    pub events: RingBuf<MapData>,
    pub counters: PerCpuArray<MapData, u64>,
    /// Denials without a record of their own, per endpoint and reason.
    pub denials: aya::maps::HashMap<MapData, netseg_contract::DenyCountKey, u64>,
    /// The conntrack table, for the traffic of each connection (a handle
    /// of its own beside the one the daemon sweeps with).
    pub connections: aya::maps::HashMap<MapData, ConnKey, ConnValue>,
}

/// The loaded programs and the interfaces they are attached to. Dropping it
/// detaches everything that is not pinned.
pub struct Datapath {
    attachments: Arc<Mutex<Attachments>>,
    /// Where a previous daemon's connections are copied on take-over.
    remembered: Remembered,
    /// The object's digest and the kernel's tags of its programs.
    pub loaded: LoadedObject,
}

impl Datapath {
    /// Loads the programs. With `pins`, links are pinned there, and links a
    /// previous daemon pinned are taken over (see [`Datapath::take_over`]).
    pub fn load(
        sizes: MapSizes,
        pins: Option<PinDir>,
    ) -> Result<(Self, KernelMaps, Telemetry), DatapathError> {
        let object = embedded_object()?;
        let mut ebpf = load_programs(object, sizes)?;
        let loaded = LoadedObject::of(object, &mut ebpf)?;
        let connections = kernel::second_handle(&ebpf, "CONNECTIONS")?;
        let remembered = Remembered::take(&mut ebpf)?;
        let maps = KernelMaps::take(&mut ebpf)?;
        let telemetry = Telemetry {
            events: kernel::take_map(&mut ebpf, "EVENTS")?,
            counters: kernel::take_map(&mut ebpf, "COUNTERS")?,
            denials: kernel::take_map(&mut ebpf, "DENY_COUNTS")?,
            connections,
        };
        let datapath = Self {
            attachments: Arc::new(Mutex::new(Attachments::new(ebpf, pins))),
            remembered,
            loaded,
        };
        Ok((datapath, maps, telemetry))
    }

    /// Reclaims expired entries, and those of interfaces no longer attached.
    pub fn sweep(&mut self) -> Result<Swept, aya::maps::MapError> {
        let live = self.attached().into_iter().map(|(_, ifindex)| ifindex);
        self.remembered.sweep(monotonic_ns(), &live.collect())
    }
}

/// Loads `object` with the map sizes the daemon chose, and both programs
/// into the kernel, leaving every map in the returned [`Ebpf`].
fn load_programs(object: &[u8], sizes: MapSizes) -> Result<Ebpf, DatapathError> {
    let effective = capabilities::effective().map_err(DatapathError::ReadCapabilities)?;
    let missing = capabilities::missing(effective);
    if !missing.is_empty() {
        return Err(DatapathError::Capabilities(missing));
    }
    let mut ebpf = EbpfLoader::new()
        .map_max_entries("CONNECTIONS", sizes.conntrack)
        .map_max_entries("EVENTS", sizes.events_bytes)
        .load(object)
        .map_err(DatapathError::Load)?;
    for name in [POD_EGRESS, POD_INGRESS] {
        classifier(&mut ebpf, name)?
            .load()
            .map_err(|source| DatapathError::Program {
                program: name,
                source,
            })?;
    }
    Ok(ebpf)
}

#[cfg(test)]
mod verdict_tests;

#[cfg(test)]
impl Datapath {
    /// Runs one program on one packet through BPF_PROG_TEST_RUN, as if the
    /// packet crossed ifindex 1 (the loopback device the kernel uses for test runs).
    pub fn run_program(&mut self, pod_ingress: bool, packet: &[u8]) -> u32 {
        self.try_run_program(pod_ingress, packet)
            .expect("BPF_PROG_TEST_RUN")
    }

    /// [`Datapath::run_program`] for frames the kernel may refuse to run
    /// (shorter than an Ethernet header).
    pub fn try_run_program(
        &mut self,
        pod_ingress: bool,
        packet: &[u8],
    ) -> Result<u32, DatapathError> {
        let program = if pod_ingress {
            test_run::Program::PodIngress
        } else {
            test_run::Program::PodEgress
        };
        test_run::run(attach::locked(&self.attachments).ebpf(), program, packet, 1)
            .map(|run| run.verdict)
    }
}

fn classifier<'a>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<&'a mut SchedClassifier, DatapathError> {
    ebpf.program_mut(name)
        .ok_or(DatapathError::Missing(name))?
        .try_into()
        .map_err(|source| DatapathError::Program {
            program: name,
            source,
        })
}
