//! The leader's Warning Events (events.k8s.io/v1) about the objects the
//! source refused: at most one per object and reason per five minutes,
//! however often the same rejection is reported.

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, PostParams};
use netseg_policy::PolicyKind;
use tokio::time::Instant;
use tracing::warn;

use super::{Rejection, policy_resource};

/// The Event reason of a rejection.
pub(super) const REJECTED: &str = "Rejected";
const REPORTING_CONTROLLER: &str = "netseg.dev/netseg";
/// The most one (object, reason) gets: one Event per window.
pub(super) const EVENT_WINDOW: Duration = Duration::from_secs(5 * 60);
/// The label that marks netseg's Events, with the value [`NETSEG`].
const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
const NETSEG: &str = "netseg";
/// The API's limit on an Event's note.
const MAX_NOTE_BYTES: usize = 1024;

/// The object and reason an Event is about, the unit of rate limiting.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct EventKey {
    pub(super) kind: PolicyKind,
    pub(super) namespace: Option<String>,
    pub(super) name: String,
    pub(super) reason: &'static str,
}

/// One Event per key per window; the caller passes the clock.
#[derive(Debug)]
pub(super) struct EventRateLimiter {
    window: Duration,
    sent: HashMap<EventKey, Instant>,
}

impl EventRateLimiter {
    pub(super) fn new(window: Duration) -> Self {
        EventRateLimiter {
            window,
            sent: HashMap::new(),
        }
    }

    pub(super) fn may_send(&self, key: &EventKey, now: Instant) -> bool {
        self.sent
            .get(key)
            .is_none_or(|sent| now.duration_since(*sent) >= self.window)
    }

    /// Records an Event written at `at` (the latest one counts), and forgets
    /// those whose window is over.
    pub(super) fn sent(&mut self, key: EventKey, at: Instant) {
        let window = self.window;
        self.sent
            .retain(|_, sent| at.duration_since(*sent) < window);
        let latest = self.sent.entry(key).or_insert(at);
        *latest = (*latest).max(at);
    }
}

pub(super) struct EventWriter {
    api: Api<Event>,
    namespace: String,
    /// This node, as the Events' reporting instance.
    instance: String,
    limiter: EventRateLimiter,
    /// Whether the limiter knows the Events written before this node led.
    caught_up: bool,
}

impl EventWriter {
    pub(super) fn new(client: kube::Client, namespace: &str, instance: &str) -> Self {
        EventWriter {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
            instance: instance.to_owned(),
            limiter: EventRateLimiter::new(EVENT_WINDOW),
            caught_up: false,
        }
    }

    /// To be called when this node becomes the leader: the previous one may
    /// have written Events since this one last did.
    pub(super) fn forget(&mut self) {
        self.caught_up = false;
    }

    /// Counts the recent Events of every netseg node, so that a new leader
    /// does not repeat what the previous one reported.
    async fn catch_up(&mut self) -> Result<(), kube::Error> {
        let selector = format!("{MANAGED_BY}={NETSEG}");
        let events = self
            .api
            .list(&ListParams::default().labels(&selector))
            .await?;
        let (now, wall_clock) = (Instant::now(), Timestamp::now());
        for event in &events.items {
            if let Some((key, age)) = recorded(event, wall_clock)
                && let Some(at) = now.checked_sub(age)
            {
                self.limiter.sent(key, at);
            }
        }
        self.caught_up = true;
        Ok(())
    }

    /// Writes the Events the limiter allows; returns how many writes failed
    /// (each logged, and retried on the next call).
    pub(super) async fn write(&mut self, rejected: &[Rejection]) -> usize {
        if !self.caught_up
            && !rejected.is_empty()
            && let Err(error) = self.catch_up().await
        {
            warn!(error = %error, "cluster status: could not read the recent Events, none written");
            return 1;
        }
        let mut failures = 0;
        for rejection in rejected.iter().filter(|r| r.namespace.is_none()) {
            let key = EventKey {
                kind: rejection.kind,
                namespace: rejection.namespace.clone(),
                name: rejection.name.clone(),
                reason: REJECTED,
            };
            if !self.limiter.may_send(&key, Instant::now()) {
                continue;
            }
            let event = rejection_event(rejection, &self.namespace, &self.instance);
            match self.api.create(&PostParams::default(), &event).await {
                Ok(_) => self.limiter.sent(key, Instant::now()),
                Err(error) => {
                    warn!(kind = %rejection.kind, name = %rejection.name, error = %error,
                          "cluster status: could not write the Event about a rejected object");
                    failures += 1;
                }
            }
        }
        failures
    }
}

fn rejection_event(rejection: &Rejection, namespace: &str, instance: &str) -> Event {
    let now = Timestamp::now();
    let resource = policy_resource(rejection.kind);
    let note = truncated(
        format!(
            "netseg does not enforce this version: {}: {}",
            rejection.field, rejection.message
        ),
        MAX_NOTE_BYTES,
    );
    Event {
        metadata: ObjectMeta {
            name: Some(format!("{}.{:x}", rejection.name, now.as_nanosecond())),
            labels: Some([(MANAGED_BY.to_owned(), NETSEG.to_owned())].into()),
            namespace: Some(namespace.to_owned()),
            ..ObjectMeta::default()
        },
        event_time: Some(MicroTime(now)),
        type_: Some("Warning".to_owned()),
        reason: Some(REJECTED.to_owned()),
        action: Some("Validate".to_owned()),
        note: Some(note),
        reporting_controller: Some(REPORTING_CONTROLLER.to_owned()),
        reporting_instance: Some(instance.to_owned()),
        regarding: Some(ObjectReference {
            api_version: Some(resource.api_version),
            kind: Some(resource.kind),
            namespace: rejection.namespace.clone(),
            name: Some(rejection.name.clone()),
            uid: rejection.uid.clone(),
            ..ObjectReference::default()
        }),
        ..Event::default()
    }
}

/// The key and age of an Event netseg wrote.
fn recorded(event: &Event, now: Timestamp) -> Option<(EventKey, Duration)> {
    let reason = (event.reason.as_deref() == Some(REJECTED)).then_some(REJECTED)?;
    let regarding = event.regarding.as_ref()?;
    let kind = [
        PolicyKind::NetworkPolicy,
        PolicyKind::ClusterNetworkPolicy,
        PolicyKind::SegmentPolicy,
        PolicyKind::Segment,
    ]
    .into_iter()
    .find(|kind| regarding.kind.as_deref() == Some(policy_resource(*kind).kind.as_str()))?;
    let written = event
        .series
        .as_ref()
        .map(|series| &series.last_observed_time)
        .or(event.event_time.as_ref())?;
    let age = Duration::try_from(now.duration_since(written.0)).unwrap_or_default();
    let key = EventKey {
        kind,
        namespace: regarding.namespace.clone(),
        name: regarding.name.clone()?,
        reason,
    };
    Some((key, age))
}

fn truncated(mut text: String, max_bytes: usize) -> String {
    if text.len() > max_bytes {
        let mut end = max_bytes - '…'.len_utf8();
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> EventKey {
        EventKey {
            kind: PolicyKind::SegmentPolicy,
            namespace: None,
            name: name.to_owned(),
            reason: REJECTED,
        }
    }

    #[test]
    fn one_event_per_object_and_reason_per_window() {
        let mut limiter = EventRateLimiter::new(EVENT_WINDOW);
        let start = Instant::now();
        assert!(limiter.may_send(&key("web"), start));
        limiter.sent(key("web"), start);
        let almost = start + EVENT_WINDOW - Duration::from_millis(1);
        assert!(!limiter.may_send(&key("web"), almost));
        assert!(
            limiter.may_send(&key("db"), almost),
            "another object has its own window"
        );
        let other_reason = EventKey {
            reason: "Superseded",
            ..key("web")
        };
        assert!(limiter.may_send(&other_reason, almost));
        assert!(limiter.may_send(&key("web"), start + EVENT_WINDOW));
    }

    #[test]
    fn expired_windows_are_forgotten() {
        let mut limiter = EventRateLimiter::new(EVENT_WINDOW);
        let start = Instant::now();
        limiter.sent(key("web"), start);
        limiter.sent(key("db"), start + EVENT_WINDOW);
        assert_eq!(limiter.sent.len(), 1);
        assert!(!limiter.may_send(&key("db"), start + EVENT_WINDOW));
    }

    #[test]
    fn a_long_note_is_cut_at_a_character_boundary() {
        let note = truncated("é".repeat(600), MAX_NOTE_BYTES);
        assert!(note.len() <= MAX_NOTE_BYTES);
        assert!(note.ends_with("é…"));
    }
}
