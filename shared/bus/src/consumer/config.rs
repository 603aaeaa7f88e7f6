//! The consumer's configuration and the JetStream consumer it asks the server for.

use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, PullConsumer, pull};

use super::MAX_ID_LEN;
use crate::{Bus, BusError};

/// How a consumer is set up.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// The stream to consume (e.g. `SW_COMMANDS`).
    pub stream: String,
    /// Durable consumer name, shared by the replicas of a service; also the `consumer` column of
    /// `sw_inbox`. `[A-Za-z0-9_-]`, at most 128 characters.
    pub durable: String,
    /// Subjects to take from the stream; empty = all. More than one needs NATS 2.10.
    pub filter_subjects: Vec<String>,
    /// A retryable failure on this delivery or a later one dead-letters the message (default 5).
    /// Deliveries that met a database outage count too, so after a long outage a message may get
    /// fewer handler attempts; it is never dead-lettered for the outage itself.
    pub max_deliver: i64,
    /// How long one attempt (the handler) may take, and how long the server waits for an answer
    /// before redelivering a message whose consumer died (default 30s).
    pub ack_wait: Duration,
    /// Delay before delivery n+1 after n failed deliveries; the last value repeats (default 1s, 5s,
    /// 30s). Empty = retry at once.
    pub backoff: Vec<Duration>,
    /// Messages handled at once (default 1: one at a time, in stream order except across retries).
    pub concurrency: usize,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            stream: String::new(),
            durable: String::new(),
            filter_subjects: Vec::new(),
            max_deliver: 5,
            ack_wait: Duration::from_secs(30),
            backoff: vec![Duration::from_secs(1), Duration::from_secs(5), Duration::from_secs(30)],
            concurrency: 1,
        }
    }
}

impl ConsumerConfig {
    /// The defaults for consumer `durable` of `stream`.
    pub fn new(stream: impl Into<String>, durable: impl Into<String>) -> Self {
        Self { stream: stream.into(), durable: durable.into(), ..Self::default() }
    }

    pub(super) fn validate(&self) -> Result<(), String> {
        let name_ok = |s: &str| {
            !s.is_empty()
                && s.len() <= MAX_ID_LEN
                && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        if !name_ok(&self.stream) {
            return Err(format!("invalid stream name {:?}", self.stream));
        }
        if !name_ok(&self.durable) {
            return Err(format!("invalid durable name {:?} (use [A-Za-z0-9_-], at most 128)", self.durable));
        }
        if self.max_deliver < 1 {
            return Err("max_deliver must be at least 1".into());
        }
        if self.concurrency < 1 {
            return Err("concurrency must be at least 1".into());
        }
        if self.ack_wait.is_zero() || self.backoff.iter().any(Duration::is_zero) {
            return Err("ack_wait and backoff delays must be positive".into());
        }
        Ok(())
    }

    /// The nak delay after the `delivered`-th delivery failed.
    pub(super) fn nak_delay(&self, delivered: i64) -> Option<Duration> {
        let last = self.backoff.len().checked_sub(1)?;
        let i = usize::try_from(delivered.saturating_sub(1)).unwrap_or(0).min(last);
        Some(self.backoff[i])
    }

    /// What the server is told: no `max_deliver` and no `backoff` (see the module docs).
    fn server_config(&self) -> pull::Config {
        let mut c = pull::Config {
            durable_name: Some(self.durable.clone()),
            description: Some(format!(
                "sreworks idempotent consumer; the client dead-letters after {} deliveries",
                self.max_deliver
            )),
            ack_policy: AckPolicy::Explicit,
            ack_wait: self.ack_wait,
            max_deliver: -1,
            ..Default::default()
        };
        match self.filter_subjects.as_slice() {
            [] => {}
            [one] => c.filter_subject = one.clone(),
            many => c.filter_subjects = many.to_vec(),
        }
        c
    }
}

/// Creates the durable consumer or brings it to `cfg`.
pub(super) async fn ensure_consumer(bus: &Bus, cfg: &ConsumerConfig) -> Result<PullConsumer, BusError> {
    let err = |message: String| BusError::Stream { stream: cfg.stream.clone(), message };
    if cfg.filter_subjects.len() > 1 && !supports_multiple_filters(&bus.client().server_info().version) {
        // An older server would ignore the list and deliver the whole stream.
        return Err(err("several filter subjects need NATS 2.10 or later".into()));
    }
    let timeout = bus.config().request_timeout();
    let stream = tokio::time::timeout(timeout, bus.jetstream().get_stream(&cfg.stream))
        .await
        .map_err(|_| err("timed out looking up the stream".into()))?
        .map_err(|e| err(e.to_string()))?;
    tokio::time::timeout(timeout, stream.create_consumer(cfg.server_config()))
        .await
        .map_err(|_| err(format!("timed out creating consumer {}", cfg.durable)))?
        .map_err(|e| err(format!("consumer {}: {e}", cfg.durable)))
}

fn supports_multiple_filters(version: &str) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (2, 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn nak_delay_follows_the_backoff_and_repeats_the_last() {
        let cfg = ConsumerConfig { backoff: vec![ms(100), ms(500)], ..ConsumerConfig::new("S", "c") };
        assert_eq!(cfg.nak_delay(1), Some(ms(100)));
        assert_eq!(cfg.nak_delay(2), Some(ms(500)));
        assert_eq!(cfg.nak_delay(9), Some(ms(500)));
        assert_eq!(cfg.nak_delay(0), Some(ms(100)));
        let none = ConsumerConfig { backoff: vec![], ..ConsumerConfig::new("S", "c") };
        assert_eq!(none.nak_delay(3), None);
    }

    #[test]
    fn server_config_is_explicit_and_unlimited() {
        let cfg = ConsumerConfig {
            backoff: vec![ms(200), ms(50)],
            filter_subjects: vec!["sw.work.>".into()],
            ack_wait: ms(700),
            ..ConsumerConfig::new("S", "c")
        };
        let s = cfg.server_config();
        assert_eq!(s.ack_policy, AckPolicy::Explicit);
        assert_eq!(s.max_deliver, -1, "the client enforces max_deliver");
        assert!(s.backoff.is_empty(), "NATS would demand a finite max_deliver");
        assert_eq!(s.ack_wait, ms(700));
        assert_eq!(s.filter_subject, "sw.work.>");
        assert!(s.filter_subjects.is_empty());
        let two = ConsumerConfig { filter_subjects: vec!["a".into(), "b".into()], ..cfg };
        let s = two.server_config();
        assert_eq!((s.filter_subject.as_str(), s.filter_subjects.len()), ("", 2));
    }

    #[test]
    fn validation_rejects_what_the_inbox_or_server_cannot_take() {
        assert!(ConsumerConfig::new("SW_COMMANDS", "k8s-executor").validate().is_ok());
        assert!(ConsumerConfig::new("SW_COMMANDS", "has.dot").validate().is_err());
        assert!(ConsumerConfig::new("SW_COMMANDS", "x".repeat(129)).validate().is_err());
        assert!(ConsumerConfig::new("", "c").validate().is_err());
        assert!(ConsumerConfig { max_deliver: 0, ..ConsumerConfig::new("S", "c") }.validate().is_err());
        assert!(ConsumerConfig { concurrency: 0, ..ConsumerConfig::new("S", "c") }.validate().is_err());
        assert!(
            ConsumerConfig { backoff: vec![Duration::ZERO], ..ConsumerConfig::new("S", "c") }
                .validate()
                .is_err()
        );
    }

    #[test]
    fn multiple_filters_need_nats_2_10() {
        assert!(!supports_multiple_filters("2.9.10"));
        assert!(supports_multiple_filters("2.10.0"));
        assert!(supports_multiple_filters("3.0.1"));
        assert!(!supports_multiple_filters("garbage"));
    }
}
