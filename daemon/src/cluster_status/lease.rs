//! Leader election on the coordination.k8s.io/v1 Lease `netseg-status-writer`:
//! the holder renews it; any node takes it once it has expired
//! (`renewTime + leaseDurationSeconds < now`), replacing it with the
//! resourceVersion it read, so that of two nodes racing for it one gets a 409.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};
use tokio::time::Instant;
use tracing::{info, warn};

use super::ClusterStatusConfig;

pub(super) const LEASE_NAME: &str = "netseg-status-writer";

/// What a node may do with the Lease as it reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum LeaseDecision {
    /// It holds the Lease: renew it.
    Renew,
    /// Nobody holds it or the holder let it expire: take it.
    Acquire,
    /// Another node holds it until `expires`.
    Wait { holder: String, expires: Timestamp },
}

/// May `me` take the Lease at `now`? A Lease without a renewal time or
/// duration cannot be held by anyone, so it is free.
pub(super) fn lease_decision(spec: Option<&LeaseSpec>, me: &str, now: Timestamp) -> LeaseDecision {
    let Some(spec) = spec else {
        return LeaseDecision::Acquire;
    };
    let holder = spec.holder_identity.as_deref().unwrap_or_default();
    if holder.is_empty() {
        return LeaseDecision::Acquire;
    }
    if holder == me {
        return LeaseDecision::Renew;
    }
    let (Some(renewed), Some(seconds)) = (&spec.renew_time, spec.lease_duration_seconds) else {
        return LeaseDecision::Acquire;
    };
    let expires = renewed.0 + SignedDuration::from_secs(i64::from(seconds));
    if expires < now {
        LeaseDecision::Acquire
    } else {
        LeaseDecision::Wait {
            holder: holder.to_owned(),
            expires,
        }
    }
}

/// This node's side of the election.
pub(super) struct LeaderLease {
    api: Api<Lease>,
    identity: String,
    /// Whole seconds, as the Lease carries it.
    duration_seconds: i32,
    /// Leadership lasts until the Lease this node last wrote expires.
    held_until: Option<Instant>,
}

impl LeaderLease {
    pub(super) fn new(client: kube::Client, config: &ClusterStatusConfig) -> Self {
        LeaderLease {
            api: Api::namespaced(client, &config.namespace),
            identity: config.node_name.clone(),
            duration_seconds: i32::try_from(config.lease_duration.as_secs().max(1))
                .unwrap_or(i32::MAX),
            held_until: None,
        }
    }

    pub(super) fn is_leader(&self) -> bool {
        self.held_until.is_some_and(|until| Instant::now() < until)
    }

    /// Renews or takes the Lease if this node may; errors are logged, and
    /// leadership then ends when the last written Lease expires.
    pub(super) async fn try_hold(&mut self) {
        let started = Instant::now();
        match self.renew_or_take().await {
            Ok(true) => {
                if !self.is_leader() {
                    info!(node = %self.identity, lease = LEASE_NAME, "cluster status: became the status writer");
                }
                let seconds = u64::try_from(self.duration_seconds).unwrap_or_default();
                self.held_until = Some(started + Duration::from_secs(seconds));
            }
            Ok(false) => self.step_down(),
            Err(error) if is_conflict(&error) => self.step_down(),
            Err(error) => {
                warn!(lease = LEASE_NAME, error = %error, "cluster status: could not read or write the Lease");
            }
        }
    }

    fn step_down(&mut self) {
        if self.is_leader() {
            info!(node = %self.identity, lease = LEASE_NAME, "cluster status: another node holds the Lease now");
        }
        self.held_until = None;
    }

    /// `Ok(true)` when this node holds the Lease after the call.
    async fn renew_or_take(&self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let Some(mut lease) = self.api.get_opt(LEASE_NAME).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(LEASE_NAME.to_owned()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.taken_spec(None, now)),
            };
            self.api.create(&PostParams::default(), &lease).await?;
            return Ok(true);
        };
        let spec = match lease_decision(lease.spec.as_ref(), &self.identity, now) {
            LeaseDecision::Wait { .. } => return Ok(false),
            LeaseDecision::Renew => LeaseSpec {
                renew_time: Some(MicroTime(now)),
                lease_duration_seconds: Some(self.duration_seconds),
                ..lease.spec.take().unwrap_or_default()
            },
            LeaseDecision::Acquire => self.taken_spec(lease.spec.take(), now),
        };
        lease.spec = Some(spec);
        // The resourceVersion read stays in the metadata: a concurrent writer makes this a 409.
        self.api
            .replace(LEASE_NAME, &PostParams::default(), &lease)
            .await?;
        Ok(true)
    }

    fn taken_spec(&self, previous: Option<LeaseSpec>, now: Timestamp) -> LeaseSpec {
        let transitions = previous.and_then(|spec| spec.lease_transitions);
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.duration_seconds),
            acquire_time: Some(MicroTime(now)),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions.map_or(0, |count| count + 1)),
            ..LeaseSpec::default()
        }
    }
}

fn is_conflict(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 409)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held_by(holder: &str, renewed: &str, seconds: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.to_owned()),
            renew_time: Some(MicroTime(renewed.parse().unwrap())),
            lease_duration_seconds: Some(seconds),
            ..LeaseSpec::default()
        }
    }

    fn at(time: &str) -> Timestamp {
        time.parse().unwrap()
    }

    #[test]
    fn a_missing_or_unheld_lease_is_taken() {
        let now = at("2026-01-01T00:00:00Z");
        assert_eq!(lease_decision(None, "node-a", now), LeaseDecision::Acquire);
        let released = LeaseSpec {
            holder_identity: Some(String::new()),
            ..held_by("x", "2026-01-01T00:00:00Z", 15)
        };
        assert_eq!(
            lease_decision(Some(&released), "node-a", now),
            LeaseDecision::Acquire
        );
    }

    #[test]
    fn the_holder_renews_even_after_expiry() {
        let lease = held_by("node-a", "2026-01-01T00:00:00Z", 15);
        let later = at("2026-01-01T00:01:00Z");
        assert_eq!(
            lease_decision(Some(&lease), "node-a", later),
            LeaseDecision::Renew
        );
    }

    #[test]
    fn another_holders_lease_is_taken_only_once_expired() {
        let lease = held_by("node-b", "2026-01-01T00:00:00Z", 15);
        let expires = at("2026-01-01T00:00:15Z");
        let waiting = LeaseDecision::Wait {
            holder: "node-b".to_owned(),
            expires,
        };
        let just_renewed = at("2026-01-01T00:00:05Z");
        assert_eq!(
            lease_decision(Some(&lease), "node-a", just_renewed),
            waiting
        );
        assert_eq!(lease_decision(Some(&lease), "node-a", expires), waiting);
        let after = at("2026-01-01T00:00:15.001Z");
        assert_eq!(
            lease_decision(Some(&lease), "node-a", after),
            LeaseDecision::Acquire
        );
    }

    #[test]
    fn a_lease_without_renewal_time_or_duration_is_free() {
        let now = at("2026-01-01T00:00:05Z");
        let no_time = LeaseSpec {
            renew_time: None,
            ..held_by("node-b", "2026-01-01T00:00:00Z", 15)
        };
        let no_duration = LeaseSpec {
            lease_duration_seconds: None,
            ..held_by("node-b", "2026-01-01T00:00:00Z", 15)
        };
        for lease in [no_time, no_duration] {
            assert_eq!(
                lease_decision(Some(&lease), "node-a", now),
                LeaseDecision::Acquire
            );
        }
    }
}
