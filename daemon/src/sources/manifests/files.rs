use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The manifest files under a directory, and the entries that could not be
/// read, so the caller can keep what those last yielded instead of dropping it.
#[derive(Debug, Default)]
pub(super) struct Listing {
    /// Sorted, so duplicates resolve the same way on every reload.
    pub(super) files: Vec<PathBuf>,
    pub(super) unreadable: Vec<(PathBuf, io::Error)>,
}

/// Lists `*.yaml`, `*.yml` and `*.json` files recursively, following
/// symlinks: a ConfigMap volume is a tree of symlinks into a hidden `..data`
/// directory, which the hidden-name rule skips while its visible links are read.
pub(super) fn list_manifest_files(dir: &Path) -> Listing {
    let mut listing = Listing::default();
    let mut visited = BTreeSet::new();
    walk(dir, &mut visited, &mut listing);
    listing.files.sort();
    listing
}

fn walk(dir: &Path, visited: &mut BTreeSet<PathBuf>, listing: &mut Listing) {
    // A symlink back to an ancestor would otherwise recurse forever.
    match fs::canonicalize(dir) {
        Ok(real) => {
            if !visited.insert(real) {
                return;
            }
        }
        Err(error) => return listing.unreadable.push((dir.to_path_buf(), error)),
    }
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) => return listing.unreadable.push((dir.to_path_buf(), error)),
    };
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(error) => return listing.unreadable.push((dir.to_path_buf(), error)),
        };
        let path = entry.path();
        if is_ignored_name(&path) {
            continue;
        }
        match fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => walk(&path, visited, listing),
            Ok(meta) if meta.is_file() && has_manifest_extension(&path) => {
                listing.files.push(path);
            }
            Ok(_) => {}
            Err(error) if has_manifest_extension(&path) => listing.unreadable.push((path, error)),
            Err(_) => {}
        }
    }
}

/// Hidden files and editor backup, swap, lock and autosave files (`.x.swp`,
/// `.#x`, `#x#`, `x~`): never what the user meant to enforce, and often a
/// half-written copy of a real manifest. The extension rule catches the rest.
pub(super) fn is_ignored_name(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|name| name.to_str()) else {
        return true;
    };
    name.starts_with('.') || name.starts_with('#') || name.ends_with('~')
}

fn has_manifest_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|ext| ext.to_str())
        .is_some_and(|ext| {
            ["yaml", "yml", "json"]
                .iter()
                .any(|e| ext.eq_ignore_ascii_case(e))
        })
}

pub(super) fn is_json(path: &Path) -> bool {
    path.extension()
        .and_then(|ext| ext.to_str())
        .is_some_and(|ext| ext.eq_ignore_ascii_case("json"))
}
