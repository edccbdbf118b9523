//! Cargo.lock's `[[package]]` entries, read without a TOML library: the
//! file is written by cargo in one fixed shape (`key = "value"` lines).

use anyhow::{Result, bail};

/// One `[[package]]` of Cargo.lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockedPackage {
    pub name: String,
    pub version: String,
    /// `None` for the workspace's own (path) packages.
    pub source: Option<String>,
    /// SHA-256 of the `.crate` file, for registry packages.
    pub checksum: Option<String>,
}

/// Every package of a Cargo.lock.
pub fn read_lock(text: &str) -> Result<Vec<LockedPackage>> {
    let mut packages = Vec::new();
    for (index, block) in text.split("[[package]]").enumerate().skip(1) {
        let field = |key: &str| {
            block.lines().find_map(|line| {
                line.strip_prefix(key)
                    .and_then(|rest| rest.strip_prefix(" = \""))
                    .and_then(|rest| rest.strip_suffix('"'))
                    .map(str::to_owned)
            })
        };
        let (Some(name), Some(version)) = (field("name"), field("version")) else {
            bail!("Cargo.lock: package {index} has no name or version");
        };
        packages.push(LockedPackage {
            name,
            version,
            source: field("source"),
            checksum: field("checksum"),
        });
    }
    Ok(packages)
}
