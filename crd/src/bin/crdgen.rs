//! Writes the CustomResourceDefinitions of netseg-crd's kinds to `deploy/crds/`, or with
//! `--check` verifies that the committed files are what the Rust types generate.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use netseg_crd::{CrdManifest, crd_manifests};

#[derive(Parser)]
#[command(about = "Generate deploy/crds/*.yaml from netseg-crd's types")]
struct Args {
    /// Compare instead of writing; exit 1 naming every file that is missing or differs.
    #[arg(long)]
    check: bool,
    /// The directory of the CRD files.
    #[arg(long, default_value_os_t = default_dir())]
    dir: PathBuf,
}

fn default_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/crds")
}

fn main() -> Result<ExitCode> {
    let args = Args::parse();
    let manifests = crd_manifests();
    if args.check {
        return check(&args.dir, &manifests);
    }
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    for manifest in &manifests {
        let path = args.dir.join(&manifest.file_name);
        std::fs::write(&path, manifest.to_yaml()?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn check(dir: &Path, manifests: &[CrdManifest]) -> Result<ExitCode> {
    let mut stale = 0;
    for manifest in manifests {
        let path = dir.join(&manifest.file_name);
        let committed = std::fs::read_to_string(&path).ok();
        if committed.as_deref() != Some(manifest.to_yaml()?.as_str()) {
            let problem = if committed.is_some() {
                "differs from"
            } else {
                "is missing; expected"
            };
            eprintln!(
                "crdgen: {} {problem} the CRD the Rust types generate",
                path.display()
            );
            stale += 1;
        }
    }
    if stale > 0 {
        eprintln!("crdgen: regenerate with `cargo run -p netseg-crd --bin crdgen`");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
