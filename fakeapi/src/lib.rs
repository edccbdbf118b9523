//! A fake Kubernetes API server on loopback, for tests of Kubernetes clients (the kube crate,
//! kubectl) without a cluster.
//!
//! It is a fake, not an API server. What it does: plain HTTP/1.1 on `127.0.0.1`, an in-memory
//! store of the kinds netseg uses (a fixed table, no CustomResourceDefinitions), one global
//! resourceVersion counter, list with label/field selectors and `limit`/`continue` paging,
//! watch as chunked JSON lines with resume from a resourceVersion, bookmarks,
//! `sendInitialEvents` (or, on request, ignoring it as a server without WatchList does),
//! GET/POST/PUT/PATCH/DELETE on objects and on `/status`, `metadata.generation` on spec
//! changes, legacy discovery for kubectl, and faults a test switches on: HTTP errors per
//! resource, expired watches and compacted history, abruptly dropped or stalled watches, and
//! restarts that drop every connection (optionally rewinding the resourceVersion counter).
//!
//! What it does not do: authentication, authorization, admission (no webhooks, no
//! ValidatingAdmissionPolicy, no CEL), schema validation or defaulting, field ownership
//! (server-side apply is a merge patch), strategic merge patch, dry run, graceful deletion,
//! finalizers, owner references and garbage collection, namespace lifecycle (objects may name
//! namespaces that do not exist), consistent snapshots across list pages, `resourceVersionMatch=Exact`
//! on lists (a list always reads the current state), table or protobuf output, TLS,
//! HTTP/2, aggregated discovery, and OpenAPI documents.
//!
//! ```no_run
//! # fn main() -> Result<(), netseg_fake_apiserver::Error> {
//! use netseg_fake_apiserver::FakeApiServer;
//! let api = FakeApiServer::start()?;
//! api.apply(serde_json::json!({
//!     "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}
//! }))?;
//! api.write_kubeconfig("/tmp/kubeconfig")?;
//! # Ok(()) }
//! ```

mod discovery;
mod faults;
mod reads;
mod resources;
mod routes;
mod selectors;
mod server;
mod status;
mod store;
mod watch;
mod writes;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch as signal;

use crate::server::Shared;
use crate::status::ApiError;

/// Whether watches honour `sendInitialEvents=true` (WatchList, Kubernetes ≥ 1.32 by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StreamingLists {
    /// ADDED for every object, then a BOOKMARK annotated `k8s.io/initial-events-end: "true"`.
    #[default]
    Supported,
    /// The parameter is ignored, as by a server without WatchList: a watch from
    /// resourceVersion 0 sends ADDED for every object and no end bookmark.
    Ignored,
}

/// One request the fake answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRequest {
    pub method: String,
    pub path_and_query: String,
    /// The HTTP status; a watch logs its 200 when the stream starts.
    pub status: u16,
    pub user_agent: Option<String>,
    /// The Kubernetes verb: get, list, watch, create, update, patch, delete; or discovery,
    /// deletecollection, unsupported, unknown (a path the fake does not serve).
    pub verb: &'static str,
    /// The length of the response body, when it was sent whole (None for a watch stream:
    /// see [`FakeApiServer::watch_bytes_sent`]).
    pub body_bytes: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("starting the fake API server: {0}")]
    Start(#[source] std::io::Error),
    #[error("writing the kubeconfig {path}: {source}")]
    Kubeconfig {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the fake API server does not serve kind {kind} of apiVersion {api_version}")]
    UnknownKind { api_version: String, kind: String },
    #[error("the fake API server does not serve a resource named {plural:?}")]
    UnknownResource { plural: String },
    #[error("HTTP {code} cannot be injected: only 400 to 599")]
    NotAnErrorCode { code: u16 },
    #[error("the object was refused (HTTP {code}): {message}")]
    Refused { code: u16, message: String },
}

impl From<ApiError> for Error {
    fn from(e: ApiError) -> Error {
        Error::Refused {
            code: e.code,
            message: e.message,
        }
    }
}

/// The server. It runs on its own thread with its own tokio runtime, so it serves plain
/// `#[test]`s and tokio tests alike; it stops when dropped.
pub struct FakeApiServer {
    shared: Arc<Shared>,
    shutdown: signal::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeApiServer {
    /// Listens on `127.0.0.1` on a free port.
    pub fn start() -> Result<FakeApiServer, Error> {
        let listener =
            std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(Error::Start)?;
        listener.set_nonblocking(true).map_err(Error::Start)?;
        let addr: SocketAddr = listener.local_addr().map_err(Error::Start)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(Error::Start)?;
        let shared = Arc::new(Shared::new(addr));
        let (shutdown, stop_requested) = signal::channel(false);
        let listener = {
            let _entered = runtime.enter();
            tokio::net::TcpListener::from_std(listener).map_err(Error::Start)?
        };
        let serving = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("fake-apiserver-{}", addr.port()))
            .spawn(move || runtime.block_on(server::accept_loop(listener, serving, stop_requested)))
            .map_err(Error::Start)?;
        Ok(FakeApiServer {
            shared,
            shutdown,
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    /// A kubeconfig (cluster, context and a user without credentials) pointing at the fake.
    pub fn write_kubeconfig(&self, path: impl AsRef<Path>) -> Result<(), Error> {
        let path = path.as_ref();
        let kubeconfig = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\n\
             contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n\
             current-context: fake\nusers:\n- name: fake\n  user: {{}}\n",
            self.url()
        );
        std::fs::write(path, kubeconfig).map_err(|source| Error::Kubeconfig {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Creates or replaces (status included) the object named by its apiVersion, kind,
    /// namespace and name; watches see ADDED or MODIFIED. Returns the stored object, with its
    /// new resourceVersion (unchanged if the object was).
    pub fn apply(&self, object: Value) -> Result<Value, Error> {
        let resource = kind_of(
            object["apiVersion"].as_str().unwrap_or(""),
            object["kind"].as_str().unwrap_or(""),
        )?;
        let stored = self.shared.store().apply(resource, object)?;
        Ok((*stored).clone())
    }

    /// Deletes an object; watches see DELETED. Returns it, or None if there was none.
    pub fn delete(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>, Error> {
        let resource = kind_of(api_version, kind)?;
        let key = (namespace.unwrap_or("").to_string(), name.to_string());
        match self.shared.store().delete(resource, &key, None, None) {
            Ok(deleted) => Ok(Some((*deleted).clone())),
            Err(e) if e.code == 404 => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The stored object (what clients wrote, status included); None for an unknown kind too.
    pub fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let resource = resources::by_kind(api_version, kind)?;
        let key = (namespace.unwrap_or("").to_string(), name.to_string());
        self.shared
            .store()
            .get(resource, &key)
            .map(|o| (*o).clone())
    }

    /// Every stored object of a kind, in all namespaces, ordered by namespace and name.
    pub fn list(&self, api_version: &str, kind: &str) -> Vec<Value> {
        let Some(resource) = resources::by_kind(api_version, kind) else {
            return Vec::new();
        };
        let everything = selectors::Selection::default();
        let page = self.shared.store().list(resource, &everything, None, None);
        page.items.iter().map(|o| (**o).clone()).collect()
    }

    /// From now on every request on the resource `plural` (for example "pods"; "events"
    /// covers both Event kinds) answers HTTP `code` with a metav1.Status; None clears it.
    pub fn fail(&self, plural: &str, code: Option<u16>) -> Result<(), Error> {
        if !resources::RESOURCES.iter().any(|r| r.plural == plural) {
            return Err(Error::UnknownResource {
                plural: plural.to_string(),
            });
        }
        if let Some(code) = code.filter(|c| !faults::INJECTABLE.contains(c)) {
            return Err(Error::NotAnErrorCode { code });
        }
        self.shared.faults.set(plural, code);
        Ok(())
    }

    /// Every open watch gets an ERROR 410 Expired event and ends; the history is compacted,
    /// so resuming from an older resourceVersion gets 410 too (and so does an old continue token).
    pub fn expire_watches(&self) {
        self.shared.store().compact();
        self.shared.control.send_modify(|c| c.expired += 1);
    }

    /// Every open watch stream is cut mid-event, without its terminating chunk.
    pub fn drop_watches(&self) {
        self.shared.control.send_modify(|c| c.dropped += 1);
    }

    /// While true, open watches send nothing (no bookmarks, no end at their timeout).
    pub fn stall(&self, stalled: bool) {
        self.shared.control.send_modify(|c| c.stalled = stalled);
    }

    /// Drops every connection. With `older_rv`, the resourceVersion counter goes back (a
    /// restored etcd): objects keep their content but carry the older resourceVersion, and a
    /// watch from any resourceVersion seen before gets 410.
    pub fn restart(&self, older_rv: bool) {
        if older_rv {
            self.shared.store().rewind();
        }
        self.shared.control.send_modify(|c| c.restarts += 1);
    }

    pub fn set_streaming_lists(&self, mode: StreamingLists) {
        self.shared
            .control
            .send_modify(|c| c.streaming_lists = mode);
    }

    /// How often each watch that allows bookmarks gets one (default 60 s); open watches
    /// take it up after their next bookmark.
    pub fn set_bookmark_interval(&self, interval: Duration) {
        self.shared
            .control
            .send_modify(|c| c.bookmark_interval = interval);
    }

    /// Every request answered so far, in order.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Bytes of watch event lines (bookmarks included) handed to connections so far, all
    /// watches together.
    pub fn watch_bytes_sent(&self) -> u64 {
        self.shared
            .watch_bytes_sent
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Stops serving and closes every connection; the store stays readable.
    pub fn stop(&mut self) {
        self.shutdown.send_replace(true);
        if let Some(thread) = self.thread.take() {
            // A panic on the server thread has already been reported by the panic hook.
            let _ = thread.join();
        }
    }
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn kind_of(api_version: &str, kind: &str) -> Result<&'static resources::Resource, Error> {
    resources::by_kind(api_version, kind).ok_or_else(|| Error::UnknownKind {
        api_version: api_version.to_string(),
        kind: kind.to_string(),
    })
}
