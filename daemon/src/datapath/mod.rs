//! The kernel side: loading the programs, attaching them to pod interfaces
//! with tcx, and the map handles the rest of the daemon writes and reads.

mod kernel;
pub mod publish;
pub mod state;

use std::collections::BTreeMap;

use aya::{
    Ebpf, EbpfLoader,
    maps::{MapData, PerCpuArray, RingBuf},
    programs::{
        ProgramError, SchedClassifier, TcAttachType,
        tc::{SchedClassifierLinkId, TcAttachOptions},
    },
};
use tracing::{info, warn};

pub use kernel::KernelMaps;

static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/netseg-ebpf"));

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
}

/// Sizes of the maps the daemon may change at start-up.
#[derive(Clone, Copy, Debug)]
pub struct MapSizes {
    pub conntrack: u32,
    pub events_bytes: u32,
}

/// Readers of what the programs report.
pub struct Telemetry {
    pub events: RingBuf<MapData>,
    pub counters: PerCpuArray<MapData, u64>,
}

struct Attachment {
    ifindex: u32,
    links: [(&'static str, SchedClassifierLinkId); 2],
}

/// The loaded programs and the interfaces they are attached to. Dropping it
/// detaches everything.
pub struct Datapath {
    ebpf: Ebpf,
    attached: BTreeMap<String, Attachment>,
}

impl Datapath {
    pub fn load(sizes: MapSizes) -> Result<(Self, KernelMaps, Telemetry), DatapathError> {
        if EBPF_OBJECT.is_empty() {
            return Err(DatapathError::NotBuilt);
        }
        let mut ebpf = EbpfLoader::new()
            .map_max_entries("CONNTRACK", sizes.conntrack)
            .map_max_entries("EVENTS", sizes.events_bytes)
            .load(EBPF_OBJECT)
            .map_err(DatapathError::Load)?;
        for name in [POD_EGRESS, POD_INGRESS] {
            classifier(&mut ebpf, name)?
                .load()
                .map_err(|source| DatapathError::Program {
                    program: name,
                    source,
                })?;
        }
        let maps = KernelMaps::take(&mut ebpf)?;
        let telemetry = Telemetry {
            events: kernel::take_map(&mut ebpf, "EVENTS")?,
            counters: kernel::take_map(&mut ebpf, "COUNTERS")?,
        };
        let datapath = Self {
            ebpf,
            attached: BTreeMap::new(),
        };
        Ok((datapath, maps, telemetry))
    }

    /// The interfaces the programs are attached to, with their ifindex.
    pub fn attached(&self) -> impl Iterator<Item = (&str, u32)> {
        self.attached
            .iter()
            .map(|(name, a)| (name.as_str(), a.ifindex))
    }

    /// Attaches both programs to `interface` unless they already are (for
    /// this ifindex: a re-created interface gets a fresh attachment).
    pub fn attach(&mut self, interface: &str, ifindex: u32) -> Result<(), DatapathError> {
        match self.attached.get(interface) {
            Some(existing) if existing.ifindex == ifindex => return Ok(()),
            Some(_) => self.detach(interface),
            None => {}
        }
        let attach = |ebpf: &mut Ebpf, program: &'static str, hook: TcAttachType| {
            classifier(ebpf, program)?
                .attach_with_options(
                    interface,
                    hook,
                    TcAttachOptions::TcxOrder(Default::default()),
                )
                .map_err(|source| DatapathError::Attach {
                    interface: interface.to_owned(),
                    source,
                })
        };
        let egress = attach(&mut self.ebpf, POD_EGRESS, TcAttachType::Ingress)?;
        let ingress = match attach(&mut self.ebpf, POD_INGRESS, TcAttachType::Egress) {
            Ok(link) => link,
            Err(error) => {
                // Half-attached would filter one direction only: undo.
                let _ = classifier(&mut self.ebpf, POD_EGRESS).map(|p| p.detach(egress));
                return Err(error);
            }
        };
        info!(interface, ifindex, "attached");
        self.attached.insert(
            interface.to_owned(),
            Attachment {
                ifindex,
                links: [(POD_EGRESS, egress), (POD_INGRESS, ingress)],
            },
        );
        Ok(())
    }

    /// Detaches from `interface`; a vanished interface took its links with it.
    pub fn detach(&mut self, interface: &str) {
        let Some(attachment) = self.attached.remove(interface) else {
            return;
        };
        for (program, link) in attachment.links {
            if let Ok(program) = classifier(&mut self.ebpf, program)
                && let Err(error) = program.detach(link)
            {
                warn!(interface, %error, "detach");
            }
        }
        info!(interface, "detached");
    }
}

#[cfg(test)]
mod verdict_tests;

#[cfg(test)]
impl Datapath {
    /// Runs one program on one packet through BPF_PROG_TEST_RUN, as if the
    /// packet crossed ifindex 1 (the loopback device the kernel uses for test runs).
    pub fn run_program(&mut self, pod_ingress: bool, packet: &[u8]) -> u32 {
        use aya::programs::{TestRun, TestRunOptions};
        let name = if pod_ingress { POD_INGRESS } else { POD_EGRESS };
        let program = classifier(&mut self.ebpf, name).expect("program is loaded");
        let mut out = vec![0; packet.len() + 256];
        let options = TestRunOptions {
            data_in: Some(packet),
            data_out: Some(&mut out),
            ..TestRunOptions::default()
        };
        program
            .test_run(options)
            .expect("BPF_PROG_TEST_RUN")
            .return_value
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
