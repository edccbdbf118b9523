//! Builds the kernel programs (ebpf/programs) with aya-build and embeds them.
//! Without bpf-linker (a machine that has not run scripts/bootstrap), or with
//! NETSEG_SKIP_EBPF=1, an empty object is embedded so that `cargo check`,
//! clippy and the pure tests still work; the daemon then refuses to start.

use std::{env, fs, path::PathBuf, process::Command};

use anyhow::{Context as _, anyhow};

fn main() -> anyhow::Result<()> {
    println!("cargo:rerun-if-env-changed=NETSEG_SKIP_EBPF");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").ok_or_else(|| anyhow!("OUT_DIR not set"))?);
    let object = out_dir.join("netseg-ebpf");
    let skip = env::var_os("NETSEG_SKIP_EBPF").is_some_and(|v| v == "1");
    let linker = Command::new("bpf-linker").arg("--version").output();
    if skip || linker.is_err() {
        println!(
            "cargo:warning=building without the eBPF programs (bpf-linker missing or NETSEG_SKIP_EBPF=1); run scripts/bootstrap"
        );
        fs::write(&object, []).context("writing the empty eBPF object")?;
        return Ok(());
    }
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let programs = manifest_dir.join("../ebpf/programs");
    let contract = manifest_dir.join("../ebpf/contract");
    println!("cargo:rerun-if-changed={}", contract.display());
    let root_dir = programs
        .to_str()
        .ok_or_else(|| anyhow!("non-UTF-8 path {}", programs.display()))?;
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "netseg-ebpf",
            root_dir,
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
}
