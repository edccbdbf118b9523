//! New allowed connections through one program, one SYN a call, for a
//! given time: a load to profile the SYN path with `perf record -a` (a
//! loop of runs cannot time it: the second SYN of a call finds the first's
//! conntrack entry). Prints the median of the kernel's time per SYN.
//!
//! ```sh
//! cargo build --release -p netseg-bench --example syn_loop
//! target/release/examples/syn_loop OBJECT egress|ingress SECONDS
//! ```

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use netseg::datapath::test_run::Program;
use netseg_bench::program_fixture::ProgramFixture;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [object, program, seconds] = &args[..] else {
        bail!("usage: syn_loop OBJECT egress|ingress SECONDS");
    };
    let object = std::fs::read(object).with_context(|| format!("reading {object}"))?;
    let program = match program.as_str() {
        "egress" => Program::PodEgress,
        "ingress" => Program::PodIngress,
        other => bail!("{other}: not egress or ingress"),
    };
    let until = Instant::now() + Duration::from_secs(seconds.parse().context("SECONDS")?);
    let mut fixture = ProgramFixture::load(&object)?;
    let mut times = Vec::new();
    while Instant::now() < until {
        if fixture.connections_left() == 0 {
            fixture = ProgramFixture::load(&object)?;
        }
        times.push(fixture.open(program)?);
    }
    times.sort();
    println!(
        "{} SYNs, median {:?}",
        times.len(),
        times.get(times.len() / 2).copied().unwrap_or_default()
    );
    Ok(())
}
