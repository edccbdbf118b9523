//! `netseg check DIR`: everything wrong or doubtful in a manifests
//! directory, offline. Three parts, each line standing alone:
//!
//! 1. problems: what is refused (one line per field error, unreadable file,
//!    unsupported kind ...), `FILE: OBJECT: FIELD: MESSAGE`;
//! 2. warnings about valid objects ([`netseg_policy::warnings`]),
//!    `warning: KIND NAME: FIELD: MESSAGE`;
//! 3. the status conditions of every ClusterNetworkPolicy, Segment and
//!    SegmentPolicy, refused ones included ([`netseg_policy::conditions`]),
//!    `status: KIND NAME: TYPE=STATUS REASON[: MESSAGE]`.

use std::io::{self, Write};
use std::path::Path;

use netseg_policy::Snapshot;

use crate::sources::manifests::ManifestStore;

/// Prints the report on `dir` to `out`; `Ok(true)` when it passes: no
/// problem and, when `strict`, no warning either.
pub fn check(dir: &Path, strict: bool, out: &mut impl Write) -> io::Result<bool> {
    let mut store = ManifestStore::default();
    let reload = store.reload(dir);
    let valid = store.snapshot();
    for problem in &reload.problems {
        writeln!(out, "{problem}")?;
    }
    let warnings = netseg_policy::warnings(&valid);
    for warning in &warnings {
        writeln!(out, "warning: {warning}")?;
    }
    for (object, conditions) in netseg_policy::conditions(&as_written(valid, reload.invalid)) {
        for condition in conditions {
            writeln!(out, "status: {object}: {condition}")?;
        }
    }
    Ok(reload.problems.is_empty() && (!strict || warnings.is_empty()))
}

/// The valid objects and the refused ones together, for their conditions.
fn as_written(mut valid: Snapshot, invalid: Snapshot) -> Snapshot {
    valid
        .cluster_network_policies
        .extend(invalid.cluster_network_policies);
    valid.segments.extend(invalid.segments);
    valid.segment_policies.extend(invalid.segment_policies);
    valid
}

#[cfg(test)]
mod tests;
