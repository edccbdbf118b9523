//! Watch streams: HTTP 200, chunked, one JSON event per line.
//!
//! A watch replays the store's history after its resourceVersion (or starts with synthetic
//! ADDED events for the current state), then follows new changes. Bookmarks go out every
//! bookmark interval when asked for. A resourceVersion the history no longer covers (compacted,
//! or newer than the store after a rewind) gets one ERROR 410 Expired event and the end of the
//! stream, never an HTTP 410 (kube would retry the same resourceVersion forever).
//! Unlike the API server, a resourceVersion newer than the store is "expired" rather than
//! "too large" (504): the client relists either way.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep_until};

use crate::resources::Resource;
use crate::routes::Body;
use crate::selectors::Selection;
use crate::server::{Control, Shared};
use crate::status::ApiError;
use crate::store::{EventType, HistoryEvent};

type Chunk = Result<Frame<Bytes>, io::Error>;

/// Where a watch starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Start {
    /// ADDED for every selected object, then changes. With `end_bookmark`, a BOOKMARK
    /// annotated `k8s.io/initial-events-end` follows the ADDED events (sendInitialEvents).
    Current { end_bookmark: bool },
    /// Changes after this resourceVersion.
    After(u64),
}

pub(crate) struct WatchRequest {
    pub resource: &'static Resource,
    pub selection: Selection,
    pub start: Start,
    pub bookmarks: bool,
    pub timeout: Duration,
}

/// Starts a watch: its response body, fed by a task until the watch ends. A fault switched on
/// after this returns reaches the watch.
pub(crate) fn start(shared: &Arc<Shared>, request: WatchRequest) -> Body {
    let control = shared.control.subscribe();
    let changes = shared.store().subscribe();
    let (chunks, mut received) = mpsc::channel(64);
    tokio::spawn(run(shared.clone(), request, control, changes, chunks));
    StreamBody::new(futures::stream::poll_fn(move |cx| received.poll_recv(cx))).boxed_unsync()
}

async fn run(
    shared: Arc<Shared>,
    request: WatchRequest,
    mut control: watch::Receiver<Control>,
    mut changes: watch::Receiver<u64>,
    out: mpsc::Sender<Chunk>,
) {
    let started = control.borrow_and_update().clone();
    let deadline = Instant::now() + request.timeout;
    let mut watch = Watch {
        request,
        out,
        cursor: 0,
        bytes_sent: shared.watch_bytes_sent.clone(),
    };
    if !watch.begin(&shared).await {
        return;
    }
    let mut next_bookmark = Instant::now() + started.bookmark_interval;
    loop {
        let now = control.borrow_and_update().clone();
        if now.restarts != started.restarts || now.dropped != started.dropped {
            watch.close_abruptly().await;
            return;
        }
        if now.expired != started.expired {
            let oldest = shared.store().oldest_resumable_rv();
            watch.send_line(&expired_event(watch.cursor, oldest)).await;
            return;
        }
        if now.stalled {
            // A hung server: no events, no bookmarks, and no clean end at the timeout.
            if control.changed().await.is_err() {
                return;
            }
            continue;
        }
        if !watch.send_changes(&shared).await {
            return;
        }
        if Instant::now() >= next_bookmark {
            if watch.request.bookmarks && !watch.send_line(&watch.bookmark(false)).await {
                return;
            }
            next_bookmark = Instant::now() + now.bookmark_interval;
        }
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            changed = control.changed() => if changed.is_err() { return },
            _ = sleep_until(next_bookmark) => {}
            // The end of the body, with its terminating chunk: a clean close.
            _ = sleep_until(deadline) => return,
        }
    }
}

struct Watch {
    request: WatchRequest,
    out: mpsc::Sender<Chunk>,
    /// Every change up to here has been sent (or filtered out).
    cursor: u64,
    /// The server's count of watch bytes sent.
    bytes_sent: Arc<AtomicU64>,
}

impl Watch {
    /// Sends what comes before live changes; false when the watch is over.
    async fn begin(&mut self, shared: &Shared) -> bool {
        let (lines, live) = {
            let store = shared.store();
            match self.request.start {
                Start::After(rv) if !store.can_resume_from(rv) => {
                    (vec![expired_event(rv, store.oldest_resumable_rv())], false)
                }
                Start::After(rv) => {
                    self.cursor = rv;
                    (Vec::new(), true)
                }
                Start::Current { end_bookmark } => {
                    self.cursor = store.resource_version();
                    let page =
                        store.list(self.request.resource, &self.request.selection, None, None);
                    let mut lines: Vec<Value> =
                        page.items.iter().map(|o| event("ADDED", o)).collect();
                    if end_bookmark {
                        lines.push(self.bookmark(true));
                    }
                    (lines, true)
                }
            }
        };
        for line in &lines {
            if !self.send_line(line).await {
                return false;
            }
        }
        live
    }

    async fn send_changes(&mut self, shared: &Shared) -> bool {
        let lines: Vec<Value> = {
            let store = shared.store();
            let lines = store
                .history_since(self.cursor, self.request.resource)
                .filter_map(|change| as_seen_by(&self.request.selection, change))
                .collect();
            self.cursor = store.resource_version();
            lines
        };
        for line in &lines {
            if !self.send_line(line).await {
                return false;
            }
        }
        true
    }

    fn bookmark(&self, initial_events_end: bool) -> Value {
        let mut object = json!({
            "kind": self.request.resource.kind,
            "apiVersion": self.request.resource.api_version(),
            "metadata": {"resourceVersion": self.cursor.to_string()},
        });
        if initial_events_end {
            object["metadata"]["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        json!({"type": "BOOKMARK", "object": object})
    }

    /// False when the client has gone.
    async fn send_line(&self, event: &Value) -> bool {
        let mut line = event.to_string().into_bytes();
        line.push(b'\n');
        let length = line.len() as u64;
        let sent = self
            .out
            .send(Ok(Frame::data(Bytes::from(line))))
            .await
            .is_ok();
        if sent {
            self.bytes_sent.fetch_add(length, Ordering::Relaxed);
        }
        sent
    }

    /// Half an event line, then the connection is cut without the terminating chunk.
    async fn close_abruptly(&self) {
        let line = self.bookmark(false).to_string();
        let half = Bytes::from(line.as_bytes()[..line.len() / 2].to_vec());
        if self.out.send(Ok(Frame::data(half))).await.is_err() {
            return;
        }
        // Lets hyper put the half line on the wire before the error aborts the connection.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let cut = io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "watch dropped by the fake",
        );
        let _gone = self.out.send(Err(cut)).await;
    }
}

/// The event a watcher with `selection` sees for a change: a change that moves an object into
/// the selection is ADDED, out of it DELETED.
fn as_seen_by(selection: &Selection, change: &HistoryEvent) -> Option<Value> {
    let now = selection.matches(&change.object);
    let before = change
        .previous
        .as_deref()
        .is_some_and(|p| selection.matches(p));
    let event_type = match (change.event_type, before, now) {
        (EventType::Deleted, true, _) => "DELETED",
        (EventType::Deleted, false, _) => return None,
        (_, false, true) => "ADDED",
        (_, true, true) => "MODIFIED",
        (_, true, false) => "DELETED",
        (_, false, false) => return None,
    };
    Some(event(event_type, &change.object))
}

fn event(event_type: &str, object: &Value) -> Value {
    json!({"type": event_type, "object": object})
}

fn expired_event(rv: u64, oldest: u64) -> Value {
    let error = ApiError::expired(format!("too old resource version: {rv} ({oldest})"));
    json!({"type": "ERROR", "object": error.to_status()})
}
