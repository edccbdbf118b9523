mod burst;

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout_at};
use tracing::debug;

use burst::{Burst, Change, classify};

/// A burst whose files are not all whole (one still written to, one gone
/// and not replaced) is read once it has been quiet this long; and after a
/// notification, what follows within this long is gathered into one more,
/// so an editor's save or a `git checkout` costs two reloads, not one a file.
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
        for change in classify(&event, &watched) {
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

/// Notifies at once when a burst leaves every file it touched whole (a
/// rename into place, a file closed after writing), else once the burst
/// has been quiet for [`QUIET`]; never sooner than [`QUIET`] after the
/// previous notification, and never later than [`MAX_DELAY`] after the
/// burst began.
async fn debounce(
    mut watcher: RecommendedWatcher,
    dir: PathBuf,
    mut raw: mpsc::UnboundedReceiver<Change>,
    notifications: mpsc::Sender<std::time::Instant>,
) {
    let mut held_until = Instant::now();
    loop {
        let mut burst = Burst::default();
        let Some(first) = raw.recv().await else {
            return;
        };
        let seen_at = std::time::Instant::now();
        burst.take(first);
        let deadline = Instant::now() + MAX_DELAY;
        loop {
            while let Ok(change) = raw.try_recv() {
                burst.take(change);
            }
            let now = Instant::now();
            if burst.is_whole() && now >= held_until {
                break;
            }
            let wake = match burst.is_whole() {
                true => held_until,
                false => now + QUIET,
            };
            match timeout_at(wake.min(deadline), raw.recv()).await {
                Ok(Some(change)) => burst.take(change),
                Ok(None) => return,
                Err(_elapsed) if burst.is_whole() && wake < deadline => {}
                Err(_elapsed) => break,
            }
        }
        if burst.rewatch {
            watch_dir(&mut watcher, &dir);
        }
        held_until = Instant::now() + QUIET;
        // A full channel already holds a notification that covers this
        // one, and an earlier start.
        if let Err(mpsc::error::TrySendError::Closed(_)) = notifications.try_send(seen_at) {
            return;
        }
    }
}
