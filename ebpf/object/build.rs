//! Builds the kernel programs (ebpf/programs) with aya-build, checks that the
//! toolchain is the one ebpf/toolchain.txt pins, and records it for the lib.
//! Without bpf-linker (a machine that has not run scripts/bootstrap), or with
//! NETSEG_SKIP_EBPF=1, an empty object is embedded so that `cargo check`,
//! clippy and the pure tests still work; the daemon then refuses to start.

use std::{env, fs, path::PathBuf, process::Command};

use anyhow::{Context as _, anyhow, bail};

/// The keys of ebpf/toolchain.txt, in the order the lib exports them.
const TOOLCHAIN_KEYS: [&str; 4] = ["nightly", "nightly-llvm", "bpf-linker", "bpf-linker-llvm"];

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
        export_toolchain(&TOOLCHAIN_KEYS.map(|key| (key.to_owned(), String::new())));
        return Ok(());
    }
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let pinned_file = manifest_dir.join("../toolchain.txt");
    println!("cargo:rerun-if-changed={}", pinned_file.display());
    let pinned =
        read_pinned(&fs::read_to_string(&pinned_file).context("reading ebpf/toolchain.txt")?)?;
    let actual = actual_toolchain()?;
    for ((key, want), (_, have)) in pinned.iter().zip(&actual) {
        if want != have {
            bail!(
                "the eBPF toolchain is not the one ebpf/toolchain.txt pins: {key} is `{have}`, pinned `{want}`; \
                 install the pinned one (scripts/bootstrap) or update the pin deliberately"
            );
        }
    }
    export_toolchain(&actual);
    let programs = manifest_dir.join("../programs");
    let contract = manifest_dir.join("../contract");
    println!("cargo:rerun-if-changed={}", contract.display());
    let root_dir = programs
        .to_str()
        .ok_or_else(|| anyhow!("non-UTF-8 path {}", programs.display()))?;
    // The object carries debug info (BTF line info names source files):
    // cargo's trim-paths (nightly) rewrites the absolute paths of this tree,
    // of the registry and of the toolchain's sources, so the object does not
    // depend on where they lie. aya-build sets RUSTFLAGS itself, so these go
    // to the cargo it runs through the environment.
    // SAFETY: a build script is single-threaded here; nothing reads the
    // environment concurrently.
    unsafe {
        env::set_var("CARGO_UNSTABLE_TRIM_PATHS", "true");
        env::set_var("CARGO_PROFILE_RELEASE_TRIM_PATHS", "all");
    }
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "netseg-ebpf",
            root_dir,
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
}

/// `key = value` lines in TOOLCHAIN_KEYS order; `#` starts a comment line.
fn read_pinned(text: &str) -> anyhow::Result<Vec<(String, String)>> {
    let pinned: Vec<(String, String)> = text
        .lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
        .map(|line| {
            line.split_once(" = ")
                .map(|(key, value)| (key.trim().to_owned(), value.trim().to_owned()))
                .ok_or_else(|| anyhow!("ebpf/toolchain.txt: `{line}` is not `key = value`"))
        })
        .collect::<anyhow::Result<_>>()?;
    let keys: Vec<&str> = pinned.iter().map(|(key, _)| key.as_str()).collect();
    if keys != TOOLCHAIN_KEYS {
        bail!("ebpf/toolchain.txt: keys {keys:?}, expected {TOOLCHAIN_KEYS:?} in that order");
    }
    Ok(pinned)
}

fn actual_toolchain() -> anyhow::Result<Vec<(String, String)>> {
    let nightly = first_line("rustup", &["run", "nightly", "rustc", "--version"])?;
    let verbose = output("rustup", &["run", "nightly", "rustc", "-vV"])?;
    let nightly_llvm = verbose
        .lines()
        .find_map(|line| line.strip_prefix("LLVM version: "))
        .ok_or_else(|| anyhow!("`rustc -vV` of the nightly names no LLVM version"))?
        .to_owned();
    let linker = first_line("bpf-linker", &["--version"])?;
    let linker_llvm = first_line("/usr/lib/llvm-22/bin/llvm-config", &["--version"])?;
    Ok(TOOLCHAIN_KEYS
        .iter()
        .map(|key| key.to_string())
        .zip([nightly, nightly_llvm, linker, linker_llvm])
        .collect())
}

fn output(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {program} {}", args.join(" ")))?;
    if !output.status.success() {
        bail!(
            "{program} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    String::from_utf8(output.stdout).with_context(|| format!("{program}'s output is not UTF-8"))
}

fn first_line(program: &str, args: &[&str]) -> anyhow::Result<String> {
    Ok(output(program, args)?
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned())
}

/// NETSEG_EBPF_TOOLCHAIN_<KEY> for the lib (empty without the programs).
fn export_toolchain(toolchain: &[(String, String)]) {
    for (key, value) in TOOLCHAIN_KEYS.iter().zip(toolchain.iter().map(|(_, v)| v)) {
        let name = key.to_uppercase().replace('-', "_");
        println!("cargo:rustc-env=NETSEG_EBPF_TOOLCHAIN_{name}={value}");
    }
}
