//! Kubernetes objects read from a directory of manifest files instead of an
//! API server: `netseg daemon --manifests DIR`, `netseg check DIR` and
//! `netseg explain DIR`.
//!
//! The store keeps the last good version of every object, so a typo saved in
//! an editor is reported but never weakens or drops enforcement.

mod files;
mod object;
mod parse;
mod store;
mod superseded;
mod watch;

#[cfg(test)]
mod tests;

use std::error::Error;
use std::fmt;
use std::path::{Path, PathBuf};

// `Reload`, `ManifestWatch` and `WatchError` are reached through these
// signatures; re-exporting names nobody spells would only warn.
pub use store::ManifestStore;
pub use watch::watch;

/// Something wrong in a manifests directory, as one line for the user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    /// `NetworkPolicy shop/allow-web`, or where in the file when the object has no name.
    pub object: Option<String>,
    /// `spec.ingress[0].ports[0].port`
    pub field: Option<String>,
    pub message: String,
}

impl Problem {
    fn new(file: &Path, object: Option<String>, field: Option<&str>, error: &dyn Error) -> Self {
        Self {
            file: file.to_path_buf(),
            object,
            field: field.map(str::to_owned),
            message: message_with_sources(error),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(object) = &self.object {
            write!(f, ": {object}")?;
        }
        if let Some(field) = &self.field {
            write!(f, ": {field}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// The whole chain on one line, skipping a source whose text the outer
/// message already carries.
fn message_with_sources(error: &dyn Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message = format!("{message}: {text}");
        }
        source = cause.source();
    }
    message
}

/// Every problem in `dir`, validation included (`netseg check DIR` adds
/// warnings and status conditions: see [`crate::check`]).
pub fn check_dir(dir: &Path) -> Vec<Problem> {
    ManifestStore::default().reload(dir).problems
}
