//! How long a component may take to become healthy.
//!
//! An apply command carries `health_deadline_secs`; the executor watches the component's objects
//! until they are healthy or the deadline passes, and then reports `failed` with reason
//! [`TIMEOUT_REASON`] — never waiting forever, which is what KubeVela #7045 got wrong. The decision
//! is pure: the caller passes `now`, so it is tested without sleeping and a watcher can compute
//! how long to sleep before looking again.
//!
//! The clock is the wall clock ([`DateTime<Utc>`]) rather than a monotonic `Instant` because the
//! start has to outlive the process: a command redelivered after the executor was killed keeps the
//! deadline of its first attempt instead of starting a fresh one.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use super::{Assessment, Health};

/// The `reason` of the `failed` result reported when the deadline passes.
pub const TIMEOUT_REASON: &str = "Timeout";

/// A start and the time allowed from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    started_at: DateTime<Utc>,
    limit: TimeDelta,
}

/// What to do with a component's current health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// It is healthy: report `healthy` and stop watching.
    Healthy,
    /// Not healthy yet and time remains: keep watching, and look again within `remaining`.
    Wait { remaining: Duration },
    /// Not healthy at the deadline: report `failed` with reason [`TIMEOUT_REASON`] and `message`.
    TimedOut { message: String },
}

impl Deadline {
    /// `limit` from `started_at`. A limit beyond what a timestamp can hold never expires.
    pub fn new(started_at: DateTime<Utc>, limit: Duration) -> Self {
        Self { started_at, limit: TimeDelta::from_std(limit).unwrap_or(TimeDelta::MAX) }
    }

    /// From a command's `health_deadline_secs`.
    pub fn from_secs(started_at: DateTime<Utc>, secs: u64) -> Self {
        Self::new(started_at, Duration::from_secs(secs))
    }

    pub fn started_at(&self) -> DateTime<Utc> {
        self.started_at
    }

    /// The instant by which the component must be healthy; `None` if it lies beyond the range of a
    /// timestamp (the deadline never comes).
    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.started_at.checked_add_signed(self.limit)
    }

    /// Whether time is up at `now`. The deadline instant itself is already too late: the limit is
    /// the time allowed, and at `started_at + limit` all of it has been used.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at().is_some_and(|at| now >= at)
    }

    /// Time left at `now`; zero once expired. A `now` before the start (a clock stepped back)
    /// leaves more than the limit rather than less, so a clock step never fails a component early.
    pub fn remaining(&self, now: DateTime<Utc>) -> Duration {
        match self.expires_at() {
            None => Duration::MAX,
            Some(at) => (at - now).to_std().unwrap_or(Duration::ZERO),
        }
    }

    /// The verdict on `current`, the component's aggregated health observed at `now`.
    ///
    /// Healthy is final whenever it is observed, even past the deadline: the observation is what
    /// counts, not when it was processed. Every other health — Progressing, and also Degraded,
    /// Suspended, Missing and Unknown — keeps the watch going until the deadline, because each can
    /// still turn healthy (a crash loop fixed by a ConfigMap arriving, a paused Deployment resumed,
    /// an object created late) and each must end in `failed(Timeout)` if it does not.
    pub fn judge(&self, current: &Assessment, now: DateTime<Utc>) -> Verdict {
        if current.health == Health::Healthy {
            return Verdict::Healthy;
        }
        if !self.is_expired(now) {
            return Verdict::Wait { remaining: self.remaining(now) };
        }
        let limit = self.limit.num_seconds();
        let mut message = format!("not healthy within {limit}s: {:?}", current.health);
        if let Some(detail) = &current.message {
            message = format!("{message}: {detail}");
        }
        Verdict::TimedOut { message }
    }
}

#[cfg(test)]
#[path = "deadline_tests.rs"]
mod tests;
