//! `netseg-sbom [WORKSPACE]`: prints the CycloneDX SBOM of the workspace
//! (default: the current directory) on stdout.

use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let workspace = std::env::args_os()
        .nth(1)
        .map_or_else(|| PathBuf::from("."), PathBuf::from);
    let sbom = netseg_sbom::workspace_sbom(&workspace)?;
    println!("{}", serde_json::to_string_pretty(&sbom)?);
    Ok(())
}
