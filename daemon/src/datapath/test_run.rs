//! Running the programs on crafted packets through BPF_PROG_TEST_RUN, with
//! no interface: the verdict tests check what they decide, the benchmark
//! times them. The kernel runs a test on the calling CPU, as if the packet
//! crossed ifindex 1 (the loopback device of the caller's namespace).

use std::time::Duration;

use aya::{
    Ebpf,
    maps::{MapData, RingBuf},
    programs::{SchedClassifier, TestRun, TestRunOptions},
};

use super::{
    DatapathError, KernelMaps, MapSizes, POD_EGRESS, POD_INGRESS, kernel::take_map, load_programs,
};

/// One of the two programs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Program {
    /// What the pod sends (on the host side's ingress hook).
    PodEgress,
    /// What the pod receives (on the host side's egress hook).
    PodIngress,
}

impl Program {
    fn name(self) -> &'static str {
        match self {
            Program::PodEgress => POD_EGRESS,
            Program::PodIngress => POD_INGRESS,
        }
    }
}

/// What a test run of one packet, repeated, gave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TestRunOutcome {
    /// The program's return value (`TC_ACT_OK` 0, `TC_ACT_SHOT` 2).
    pub verdict: u32,
    /// The mean time of one run, as the kernel measured it.
    pub mean: Duration,
}

/// The programs of an eBPF object and the maps policy is published into,
/// without the daemon's handles on the tables the programs keep state in.
/// So an object of an earlier build whose conntrack entries had another
/// layout loads too: only its programs create and read those entries.
pub struct TestPrograms {
    ebpf: Ebpf,
    events: RingBuf<MapData>,
}

impl TestPrograms {
    /// Loads `object` (see [`super::embedded_object`]) and its programs.
    pub fn load(object: &[u8], sizes: MapSizes) -> Result<(Self, KernelMaps), DatapathError> {
        let mut ebpf = load_programs(object, sizes)?;
        let maps = KernelMaps::take(&mut ebpf)?;
        let events = take_map(&mut ebpf, "EVENTS")?;
        Ok((Self { ebpf, events }, maps))
    }

    /// Reads and drops every flow event the programs left, as the daemon's
    /// exporter would: the programs wake a reader once the unread events
    /// fill an eighth of the ring, which a ring nobody reads would make
    /// every later event pay for. How many there were.
    pub fn discard_events(&mut self) -> usize {
        let mut read = 0;
        while self.events.next().is_some() {
            read += 1;
        }
        read
    }

    /// Runs `program` on `packet` `repeat` times in a row on this CPU.
    pub fn run(
        &self,
        program: Program,
        packet: &[u8],
        repeat: u32,
    ) -> Result<TestRunOutcome, DatapathError> {
        run(&self.ebpf, program, packet, repeat)
    }
}

pub(super) fn run(
    ebpf: &Ebpf,
    program: Program,
    packet: &[u8],
    repeat: u32,
) -> Result<TestRunOutcome, DatapathError> {
    let name = program.name();
    let failed = |source| DatapathError::Program {
        program: name,
        source,
    };
    let classifier: &SchedClassifier = ebpf
        .program(name)
        .ok_or(DatapathError::Missing(name))?
        .try_into()
        .map_err(failed)?;
    let mut out = vec![0; packet.len() + 256];
    let options = TestRunOptions {
        data_in: Some(packet),
        data_out: Some(&mut out),
        repeat,
        ..TestRunOptions::default()
    };
    let run = classifier.test_run(options).map_err(failed)?;
    Ok(TestRunOutcome {
        verdict: run.return_value,
        mean: run.duration,
    })
}
