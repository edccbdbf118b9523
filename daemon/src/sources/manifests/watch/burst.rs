//! When a burst of file events may be read: at once when every file it
//! touched is whole again, else once it has been quiet.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind, RenameMode};
use notify::{Event, EventKind};

use crate::sources::manifests::files::is_ignored_name;

/// What one filesystem event means for the directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Change {
    /// A file is being written: read now, it may be half of what it will be.
    Writing(PathBuf),
    /// A file is whole: closed after writing, renamed into place, or a
    /// symlink made.
    Whole(PathBuf),
    /// A file went away (removed, renamed out): often the first half of
    /// replacing it, so its replacement is waited for.
    Gone(PathBuf),
    /// Something that needs a reread but completes nothing (attributes
    /// changed, a directory made or removed).
    Touched,
    /// The directory itself was created, removed, renamed or replaced (or
    /// events were lost): its recursive watch must be set up again.
    Directory,
}

/// What `event` means for `dir`; nothing for what the store never reads
/// (hidden and backup files, siblings of the directory) except the swap
/// of a ConfigMap volume's `..data` link, which replaces every file at once.
pub(super) fn classify(event: &notify::Result<Event>, dir: &Path) -> Vec<Change> {
    let event = match event {
        Ok(event) => event,
        Err(error) => {
            tracing::warn!(error = %error, "manifests watch error; rescanning");
            return vec![Change::Directory];
        }
    };
    let closed_after_writing =
        event.kind == EventKind::Access(AccessKind::Close(AccessMode::Write));
    // Opening and reading files and directories (our own reloads
    // included) changes nothing.
    if matches!(event.kind, EventKind::Access(_)) && !closed_after_writing {
        return Vec::new();
    }
    if event.need_rescan() || event.paths.iter().any(|path| path == dir) {
        return vec![Change::Directory];
    }
    let read = |path: &&PathBuf| read_by_store(path, dir);
    match event.kind {
        EventKind::Access(_) => event
            .paths
            .iter()
            .filter(read)
            .cloned()
            .map(Change::Whole)
            .collect(),
        EventKind::Create(CreateKind::Folder) | EventKind::Remove(_) if is_dir_event(event) => {
            event
                .paths
                .iter()
                .filter(read)
                .map(|_| Change::Touched)
                .collect()
        }
        EventKind::Create(_) => event
            .paths
            .iter()
            .filter(read)
            .map(|path| match path.is_symlink() {
                true => Change::Whole(path.clone()),
                false => Change::Writing(path.clone()),
            })
            .collect(),
        EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Any | ModifyKind::Other) => event
            .paths
            .iter()
            .filter(read)
            .cloned()
            .map(Change::Writing)
            .collect(),
        EventKind::Modify(ModifyKind::Name(RenameMode::To)) => event
            .paths
            .iter()
            .filter(|path| read(path) || swaps_configmap_data(path, dir))
            .cloned()
            .map(Change::Whole)
            .collect(),
        // `From` and `To` come as events of their own too.
        EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => Vec::new(),
        EventKind::Modify(ModifyKind::Name(_)) | EventKind::Remove(_) => event
            .paths
            .iter()
            .filter(read)
            .cloned()
            .map(Change::Gone)
            .collect(),
        EventKind::Modify(ModifyKind::Metadata(_)) | EventKind::Any | EventKind::Other => event
            .paths
            .iter()
            .filter(read)
            .map(|_| Change::Touched)
            .collect(),
    }
}

fn is_dir_event(event: &Event) -> bool {
    matches!(
        event.kind,
        EventKind::Create(CreateKind::Folder)
            | EventKind::Remove(notify::event::RemoveKind::Folder)
    )
}

/// Whether the store reads `path` (or what is under it): it is inside
/// `dir` and no part of it below `dir` has a name the store skips.
fn read_by_store(path: &Path, dir: &Path) -> bool {
    path.strip_prefix(dir).is_ok_and(|relative| {
        relative
            .components()
            .all(|part| !is_ignored_name(Path::new(part.as_os_str())))
    })
}

/// kubelet swaps a ConfigMap volume's contents by renaming a new `..data`
/// link into place; the visible files are links through it.
fn swaps_configmap_data(path: &Path, dir: &Path) -> bool {
    path.parent() == Some(dir)
        && path
            .file_name()
            .and_then(|name| name.to_str())
            .is_some_and(|name| name.starts_with(".."))
}

/// The changes since the last notification.
#[derive(Debug, Default)]
pub(super) struct Burst {
    /// Files written to and not closed since.
    writing: BTreeSet<PathBuf>,
    /// Files gone and not back since.
    gone: BTreeSet<PathBuf>,
    /// Whether a file became whole (or the directory was replaced).
    completed: bool,
    pub(super) rewatch: bool,
}

impl Burst {
    pub(super) fn take(&mut self, change: Change) {
        match change {
            Change::Writing(path) => {
                self.gone.remove(&path);
                self.writing.insert(path);
            }
            Change::Whole(path) => {
                self.writing.remove(&path);
                self.gone.remove(&path);
                self.completed = true;
            }
            Change::Gone(path) => {
                self.writing.remove(&path);
                self.gone.insert(path);
            }
            Change::Touched => {}
            Change::Directory => {
                self.rewatch = true;
                self.completed = true;
            }
        }
    }

    /// Whether the directory may be read now without finding a file half
    /// written or half replaced: something completed, and nothing is in
    /// the middle of a write or a replacement.
    pub(super) fn is_whole(&self) -> bool {
        self.completed && self.writing.is_empty() && self.gone.is_empty()
    }
}
