use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout_at};
use tracing::{debug, warn};

/// An editor save or `kubectl`-style apply is a burst of events within a few
/// milliseconds; one reload after it settles is enough.
const QUIET: Duration = Duration::from_millis(50);
/// A directory that never settles still gets reloaded this often, well
/// inside the one second within which a change must be enforced.
const MAX_DELAY: Duration = Duration::from_millis(250);

/// Why a manifests directory could not be watched; the daemon cannot start.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("watching needs a Tokio runtime")]
    NoRuntime {
        #[source]
        source: tokio::runtime::TryCurrentError,
    },
    #[error("cannot resolve {}", path.display())]
    Resolve {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot create a file watcher")]
    Create {
        #[source]
        source: notify::Error,
    },
    #[error("cannot watch {}", path.display())]
    Watch {
        path: PathBuf,
        #[source]
        source: notify::Error,
    },
}

/// Change notifications for a manifests directory, each with when its
/// burst began. Dropping it stops the watch.
#[derive(Debug)]
pub struct ManifestWatch {
    notifications: mpsc::Receiver<std::time::Instant>,
    task: JoinHandle<()>,
}

impl ManifestWatch {
    /// Waits until something under the directory changed since the last
    /// notification was taken, and says when the first event of that
    /// change came. `None` once the watcher has stopped.
    pub async fn changed(&mut self) -> Option<std::time::Instant> {
        self.notifications.recv().await
    }
}

impl Drop for ManifestWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What one filesystem event means for the directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Change {
    Contents,
    /// The directory itself was created, removed, renamed or replaced (or
    /// events were lost): its recursive watch must be set up again.
    Directory,
}

/// Watches `dir` recursively, and its parent for the directory being
/// replaced (`mv new dir`, a swapped symlink) or created later. A missing
/// `dir` is not an error; its parent must exist.
pub fn watch(dir: &Path) -> Result<ManifestWatch, WatchError> {
    let runtime =
        tokio::runtime::Handle::try_current().map_err(|source| WatchError::NoRuntime { source })?;
    let dir = std::path::absolute(dir).map_err(|source| WatchError::Resolve {
        path: dir.to_path_buf(),
        source,
    })?;
    let (changes, raw) = mpsc::unbounded_channel();
    let watched = dir.clone();
    let mut watcher = notify::recommended_watcher(move |event| {
        if let Some(change) = classify(&event, &watched) {
            // The receiver only goes away when the watch is dropped.
            let _ = changes.send(change);
        }
    })
    .map_err(|source| WatchError::Create { source })?;
    if let Some(parent) = dir.parent() {
        watcher
            .watch(parent, RecursiveMode::NonRecursive)
            .map_err(|source| WatchError::Watch {
                path: parent.to_path_buf(),
                source,
            })?;
    }
    watch_dir(&mut watcher, &dir);
    let (notify_tx, notifications) = mpsc::channel(1);
    let task = runtime.spawn(debounce(watcher, dir, raw, notify_tx));
    Ok(ManifestWatch {
        notifications,
        task,
    })
}

fn classify(event: &notify::Result<Event>, dir: &Path) -> Option<Change> {
    let event = match event {
        Ok(event) => event,
        Err(error) => {
            warn!(error = %error, "manifests watch error; rescanning");
            return Some(Change::Directory);
        }
    };
    // Opening and reading files (our own reloads included) changes nothing.
    if let EventKind::Access(kind) = event.kind
        && kind != AccessKind::Close(AccessMode::Write)
    {
        return None;
    }
    if event.need_rescan() || event.paths.iter().any(|path| path == dir) {
        Some(Change::Directory)
    } else if event.paths.iter().any(|path| path.starts_with(dir)) {
        Some(Change::Contents)
    } else {
        // A sibling of the directory, seen through the parent's watch.
        None
    }
}

fn watch_dir(watcher: &mut RecommendedWatcher, dir: &Path) {
    // Drops watches on an inode that may no longer be at this path.
    let _ = watcher.unwatch(dir);
    match watcher.watch(dir, RecursiveMode::Recursive) {
        Ok(()) => debug!(dir = %dir.display(), "watching manifests directory"),
        // The parent's watch tells us when it appears.
        Err(error) => {
            debug!(dir = %dir.display(), error = %error, "manifests directory not watchable yet")
        }
    }
}

async fn debounce(
    mut watcher: RecommendedWatcher,
    dir: PathBuf,
    mut raw: mpsc::UnboundedReceiver<Change>,
    notifications: mpsc::Sender<std::time::Instant>,
) {
    while let Some(first) = raw.recv().await {
        let seen_at = std::time::Instant::now();
        let mut rewatch = first == Change::Directory;
        let deadline = Instant::now() + MAX_DELAY;
        loop {
            let quiet_until = (Instant::now() + QUIET).min(deadline);
            match timeout_at(quiet_until, raw.recv()).await {
                Ok(Some(change)) => rewatch |= change == Change::Directory,
                Ok(None) => return,
                Err(_elapsed) => break,
            }
        }
        if rewatch {
            watch_dir(&mut watcher, &dir);
        }
        // A full channel already holds a notification that covers this
        // one, and an earlier start.
        if let Err(mpsc::error::TrySendError::Closed(_)) = notifications.try_send(seen_at) {
            return;
        }
    }
}
