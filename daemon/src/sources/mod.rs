//! Where the objects to enforce come from: a directory of manifests
//! (`--manifests DIR`) or the Kubernetes API server. Both keep the last good
//! version of every object, report what they refuse as [`Problem`]s, and say
//! when they have read everything they watch at least once; the enforcer
//! neither knows nor cares which one it is driven by.

pub(crate) mod decode;
pub mod kube;
pub mod manifests;
pub(crate) mod object;

use std::error::Error;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use netseg_policy::Snapshot;

use self::kube::KubeSource;
use self::manifests::{ManifestStore, ManifestWatch, WatchError};

/// The one source a daemon enforces.
pub enum Source {
    Manifests(ManifestSource),
    Kube(KubeSource),
}

/// What a source holds after a change.
#[derive(Debug, Default)]
pub struct Update {
    /// Whether the objects in force differ from those of the last update.
    pub changed: bool,
    /// When the source first saw a change this update takes in (a file
    /// event, a watch event), if it saw one: where the policy
    /// implementation delay starts.
    pub seen_at: Option<Instant>,
    /// When the source started reading what this update holds.
    pub taken_at: Option<Instant>,
    /// Everything refused or unreadable, one line each.
    pub problems: Vec<Problem>,
    /// The objects refused for failing validation, as written (not
    /// enforced; their status conditions say why).
    pub invalid: Snapshot,
    /// Whether everything the source watches has been read whole: before
    /// that, its objects are no picture of the policy to enforce.
    pub synced: bool,
    /// The objects the API server holds that were refused, each with why
    /// (a manifests directory reports its refusals as problems only).
    pub refused: Vec<Refused>,
}

/// An object refused, and why.
#[derive(Clone, Debug)]
pub struct Refused {
    pub id: object::ObjectId,
    /// Its `metadata.uid`, when it could be read.
    pub uid: Option<String>,
    pub problems: Vec<Problem>,
}

impl Source {
    /// Waits until the source may hold something new. `None` once it can
    /// no longer tell.
    pub async fn changed(&mut self) -> Option<()> {
        match self {
            Self::Manifests(source) => {
                let seen_at = source.watch.changed().await?;
                source.seen_at.get_or_insert(seen_at);
                Some(())
            }
            Self::Kube(source) => {
                source.changed().await;
                Some(())
            }
        }
    }

    /// Takes in what changed (rereads the directory, or reads the watches).
    pub fn update(&mut self) -> Update {
        let taken_at = Some(Instant::now());
        let update = match self {
            Self::Manifests(source) => {
                let reload = source.store.reload(&source.dir);
                Update {
                    changed: reload.changed,
                    seen_at: source.seen_at.take(),
                    problems: reload.problems,
                    invalid: reload.invalid,
                    synced: reload.complete,
                    refused: Vec::new(),
                    taken_at: None,
                }
            }
            Self::Kube(source) => source.update(),
        };
        Update { taken_at, ..update }
    }

    /// The objects in force as of the last [`Source::update`].
    pub fn snapshot(&self) -> Snapshot {
        match self {
            Self::Manifests(source) => source.store.snapshot(),
            Self::Kube(source) => source.snapshot(),
        }
    }

    /// What stopped following the source for good, if anything did.
    pub fn stopped(&self) -> Option<String> {
        match self {
            Self::Manifests(_) => None,
            Self::Kube(source) => source
                .stopped_watch()
                .map(|watch| format!("the watch of {watch}")),
        }
    }

    /// What the source must do before it is synced, for messages.
    pub fn sync_awaited(&self) -> &'static str {
        match self {
            Self::Manifests(_) => "the manifests directory to be read whole",
            Self::Kube(_) => "every watch of the API server to list once",
        }
    }
}

/// A manifests directory, watched for changes.
pub struct ManifestSource {
    dir: PathBuf,
    store: ManifestStore,
    watch: ManifestWatch,
    /// When the watch first reported a change not yet reloaded.
    seen_at: Option<Instant>,
}

impl ManifestSource {
    pub fn open(dir: &Path) -> Result<Self, WatchError> {
        Ok(Self {
            dir: dir.to_path_buf(),
            store: ManifestStore::default(),
            watch: manifests::watch(dir)?,
            seen_at: None,
        })
    }
}

/// Something refused or unreadable, as one line for the user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub origin: Origin,
    /// `NetworkPolicy shop/allow-web`, or where in the file when the object has no name.
    pub object: Option<String>,
    /// `spec.ingress[0].ports[0].port`
    pub field: Option<String>,
    pub message: String,
}

/// Where a [`Problem`] was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A file (or directory) of the manifests directory.
    File(PathBuf),
    /// An object or a watch of the API server.
    Api,
}

impl Problem {
    pub(crate) fn in_file(
        file: &Path,
        object: Option<String>,
        field: Option<&str>,
        error: &dyn Error,
    ) -> Self {
        Self::new(Origin::File(file.to_path_buf()), object, field, error)
    }

    pub(crate) fn from_api(object: String, field: Option<&str>, error: &dyn Error) -> Self {
        Self::new(Origin::Api, Some(object), field, error)
    }

    fn new(origin: Origin, object: Option<String>, field: Option<&str>, error: &dyn Error) -> Self {
        Self {
            origin,
            object,
            field: field.map(str::to_owned),
            message: message_with_sources(error),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Origin::File(file) = &self.origin {
            parts.push(file.display().to_string());
        }
        parts.extend(self.object.iter().cloned());
        parts.extend(self.field.iter().cloned());
        parts.push(self.message.clone());
        write!(f, "{}", parts.join(": "))
    }
}

/// The whole chain on one line, skipping a source whose text the outer
/// message already carries.
pub(crate) fn message_with_sources(error: &dyn Error) -> String {
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
