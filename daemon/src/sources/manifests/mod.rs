//! Kubernetes objects read from a directory of manifest files instead of an
//! API server: `netseg daemon --manifests DIR`, `netseg check DIR` and
//! `netseg explain DIR`.
//!
//! The store keeps the last good version of every object, so a typo saved in
//! an editor is reported but never weakens or drops enforcement.

mod file_state;
mod files;
mod index;
mod parse;
mod stamp;
mod store;
mod superseded;
mod watch;

#[cfg(test)]
mod tests;

use std::path::Path;

use crate::sources::Problem;

pub(crate) use parse::yaml_options;
pub use store::ManifestStore;
pub use watch::{ManifestWatch, WatchError, watch};

/// Every problem in `dir`, validation included (`netseg check DIR` adds
/// warnings and status conditions: see [`crate::check`]).
pub fn check_dir(dir: &Path) -> Vec<Problem> {
    ManifestStore::default().reload(dir).problems
}
