//! One watch of the API server, run as a task that feeds its [`KindState`]
//! and tells the source when something changed.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::Api;
use kube::core::{DeserializeGuard, Resource};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde::de::DeserializeOwned;
use tracing::{debug, warn};

use super::judge::{self, object_id};
use super::state::{Judged, KindState};
use super::{Shared, Watch};
use crate::sources::object::ObjectId;

/// kube's watcher retries a watch that the server refuses with HTTP 410 at
/// the same resource version forever (a proxy that does not stream the
/// error as an event); after this many in a row the watch starts over with
/// a fresh list.
const EXPIRED_STARTS_BEFORE_RELIST: u32 = 3;

/// A server without streaming lists (WatchList) ignores `sendInitialEvents`:
/// it sends the objects but never the bookmark that ends them. With no event
/// for this long while the first list is not done, the watch lists instead.
const STREAMING_SILENCE: Duration = Duration::from_secs(5);

/// Runs `watch` until the task is aborted: errors are recorded (they keep
/// the last state in force) and retried with kube's backoff. The first list
/// is streamed (one watch request, served from the API server's cache) if
/// the server can; otherwise it is paged.
pub(super) async fn run<K, J>(
    watch: Watch,
    api: Api<DeserializeGuard<K>>,
    config: watcher::Config,
    judge: J,
    shared: Arc<Shared>,
) where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    J: Fn(&ObjectId, K) -> Judged,
{
    let mut streaming = true;
    loop {
        let attempt = match streaming {
            true => config.clone().streaming_lists(),
            false => config.clone(),
        };
        let mut events = watcher::watcher(api.clone(), attempt)
            .default_backoff()
            .boxed();
        let mut listed = false;
        let mut expired_starts = 0;
        loop {
            let next = if streaming && !listed {
                match tokio::time::timeout(STREAMING_SILENCE, events.next()).await {
                    Ok(next) => next,
                    Err(_) => {
                        warn!(watch = %watch, "the API server does not end streamed lists; listing page by page instead");
                        streaming = false;
                        break;
                    }
                }
            } else {
                events.next().await
            };
            let Some(event) = next else { break };
            match event {
                Ok(event) => {
                    expired_starts = 0;
                    listed |= matches!(event, Event::InitDone);
                    shared.record(watch, |state| apply(watch, state, event, &judge));
                }
                Err(error) => {
                    let message = crate::sources::message_with_sources(&error);
                    warn!(watch = %watch, error = message, "watching the API server; the last good state stays enforced");
                    if is_expired_start(&error) {
                        expired_starts += 1;
                    }
                    shared.record(watch, |state| {
                        state.error = Some(message);
                        true
                    });
                    if expired_starts >= EXPIRED_STARTS_BEFORE_RELIST {
                        break;
                    }
                }
            }
        }
    }
}

/// Applies one watcher event; returns whether the source should look again.
fn apply<K: Resource>(
    watch: Watch,
    state: &mut KindState,
    event: Event<DeserializeGuard<K>>,
    judge: &impl Fn(&ObjectId, K) -> Judged,
) -> bool {
    match event {
        Event::Init => {
            state.init();
            false
        }
        Event::InitApply(object) => {
            let (id, judged) = judged(watch, object, judge);
            state.init_apply(id, judged);
            false
        }
        Event::InitDone => {
            debug!(watch = %watch, "listed");
            state.init_done();
            true
        }
        // Most pod updates are the kubelet's status writes (conditions,
        // restarts), which trim to the pod in force: they wake nothing,
        // where a wake costs the source a pass over every object of the
        // cluster.
        Event::Apply(object) => {
            let (id, judged) = judged(watch, object, judge);
            let reported = state.error.is_some()
                || matches!(judged, Judged::Refused { .. })
                || state.current().refused.contains_key(&id);
            state.apply(id, judged) || reported
        }
        Event::Delete(object) => {
            let id = object_id(watch.kind(), object.meta());
            let reported = state.error.is_some() || state.current().refused.contains_key(&id);
            state.delete(&id) || reported
        }
    }
}

fn judged<K: Resource>(
    watch: Watch,
    object: DeserializeGuard<K>,
    judge: &impl Fn(&ObjectId, K) -> Judged,
) -> (ObjectId, Judged) {
    let id = object_id(watch.kind(), object.meta());
    let object_uid = object.meta().uid.clone();
    let mut judged = match object.0 {
        Ok(object) => judge(&id, object),
        Err(invalid) => judge::invalid(&id, &invalid),
    };
    if let Judged::Refused { uid, .. } = &mut judged {
        *uid = object_uid;
    }
    (id, judged)
}

fn is_expired_start(error: &watcher::Error) -> bool {
    matches!(error, watcher::Error::WatchStartFailed(kube::Error::Api(status)) if status.code == 410)
}
