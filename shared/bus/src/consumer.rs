//! Idempotent JetStream consumers: the effect of a message and the id of the message commit in one
//! MySQL transaction, the ack follows the commit, failures are retried with backoff, and a message
//! that keeps failing is dead-lettered instead of blocking the stream.
//!
//! How a message moves through [`run`]:
//! 1. The durable pull consumer `cfg.durable` on `cfg.stream` is created or updated (explicit ack,
//!    `ack_wait` as the lease after which the server redelivers an unanswered message). It pulls
//!    as many messages as it has free slots (`concurrency`), so none waits in a client buffer.
//! 2. A message the handler says has no effect ([`Handler::wants`] is false) is acked at once,
//!    without a transaction or an inbox row: applying nothing twice is harmless.
//!    Every other message opens a transaction and inserts `(consumer, msg_id)` into `sw_inbox`. The id is
//!    the `Nats-Msg-Id` header (the publisher's id, so a copy republished after the duplicate
//!    window is recognised too), else `seq:<stream sequence>`. A duplicate key means an earlier
//!    delivery already committed: roll back, ack, done. A handler that sends its writes in one
//!    round trip may write the inbox row with them instead ([`Handler::writes_inbox`]); a copy
//!    already applied then fails at that write, and after the rollback the committed row tells the
//!    consumer it is a duplicate.
//! 3. Otherwise the [`Handler`] applies the effect in that transaction, within `ack_wait`, while the
//!    consumer tells the server the message is still being worked on so its lease does not expire.
//! 4. `Ok` → commit, then ack and wait for the server to confirm. Should that ack be lost, the
//!    redelivery meets the inbox row in step 2 and is only acked.
//!    `Err(Retry)` → roll back and nak with the backoff delay of this delivery.
//!    `Err(Permanent)`, or `Err(Retry)` on the `max_deliver`-th delivery → roll back, publish the
//!    message (payload and headers, plus `Sw-Dlq-*` headers) on `{prefix}.dlq.{stream}`, publish the
//!    `bus.message.dead-lettered` event, then terminate the message so JetStream stops.
//!    The database failing (begin, inbox insert, commit, or the rollback after a retryable error)
//!    is not the message's fault: nak with delay; it is never acked and never dead-lettered for it.
//! 5. On shutdown the consumer stops pulling, naks what arrives after the signal so another replica
//!    takes it at once, and waits for in-flight messages (at most `ack_wait` plus a margin).
//!
//! The server-side `max_deliver` is unlimited on purpose and the limit is enforced here: JetStream
//! drops a message silently (an advisory only) once its deliveries are used up, which would lose
//! messages whose last delivery met a database outage or a crashed process. The price is that a
//! message which kills the process is redelivered until an operator acts (visible as restarts).
//! For the same reason the backoff is applied as nak delays rather than as the consumer's server
//! `backoff`: NATS requires `max_deliver` > the number of backoff values, i.e. a finite limit.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{AckKind, Message};
use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, Statement, TransactionTrait,
};
use sw_contracts::bus::DeadLettered;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::{Bus, BusError, CloudEvent};

mod config;

pub use async_trait::async_trait;
pub use config::ConsumerConfig;
use config::ensure_consumer;

/// The event announcing a dead-lettered message.
pub const DEAD_LETTERED_EVENT: &str = "bus.message.dead-lettered";
/// Dead-letter header: why the consumer gave up.
pub const HDR_DLQ_REASON: &str = "Sw-Dlq-Reason";
/// Dead-letter header: the durable consumer that gave up.
pub const HDR_DLQ_CONSUMER: &str = "Sw-Dlq-Consumer";
/// Dead-letter header: the subject the message was published on.
pub const HDR_DLQ_SUBJECT: &str = "Sw-Dlq-Subject";
/// Dead-letter header: how many times it was delivered.
pub const HDR_DLQ_DELIVERIES: &str = "Sw-Dlq-Deliveries";

/// Deadline of each of the consumer's own database steps (begin, inbox insert, commit, rollback).
const DB_STEP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one pull request waits on the server for messages.
const FETCH_EXPIRES: Duration = Duration::from_secs(1);
/// Width of `sw_inbox.consumer` and `sw_inbox.msg_id`.
const MAX_ID_LEN: usize = 128;
/// Longest `Sw-Dlq-Reason` header value.
const MAX_REASON_LEN: usize = 1000;
/// How long handing a nak, term or progress signal to the client may take (it blocks while the
/// client's outgoing buffer is full during a disconnect).
const SIGNAL_TIMEOUT: Duration = Duration::from_secs(5);

/// The metrics of a consumer, each labelled `consumer=<durable>`.
#[derive(Debug, Clone, Copy)]
enum Counter {
    /// Messages whose effect committed.
    Processed,
    /// Deliveries of messages already processed (acked without running the handler).
    Duplicates,
    /// Messages acked without a transaction: no effect to apply ([`Handler::wants`]).
    Unwanted,
    /// Naks: handler asked for a retry, or the database was unavailable.
    Retries,
    /// Messages moved to the dead-letter subject.
    DeadLettered,
}

impl Counter {
    fn name(self) -> &'static str {
        match self {
            Self::Processed => "sw_consumer_processed_total",
            Self::Duplicates => "sw_consumer_duplicates_total",
            Self::Unwanted => "sw_consumer_unwanted_total",
            Self::Retries => "sw_consumer_retries_total",
            Self::DeadLettered => "sw_consumer_dead_lettered_total",
        }
    }
    fn inc(self, consumer: &str) {
        metrics::counter!(self.name(), "consumer" => consumer.to_owned()).increment(1);
    }
}

/// What a handler says about a message it could not apply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandlerError {
    /// Worth another try later (a dependency is down, a conflict): nak with backoff.
    #[error("{0}")]
    Retry(String),
    /// Will never work (malformed, refers to nothing): dead-letter at once.
    #[error("{0}")]
    Permanent(String),
}

impl HandlerError {
    /// A retryable error carrying `e`'s message.
    pub fn retry(e: impl std::fmt::Display) -> Self {
        Self::Retry(e.to_string())
    }
    /// A permanent error carrying `e`'s message.
    pub fn permanent(e: impl std::fmt::Display) -> Self {
        Self::Permanent(e.to_string())
    }
}

/// Database errors inside a handler are usually transient, so `?` on them asks for a retry.
impl From<DbErr> for HandlerError {
    fn from(e: DbErr) -> Self {
        Self::Retry(e.to_string())
    }
}

/// Applies messages. One instance serves every message of a consumer, possibly concurrently.
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Apply the message's effect inside `txn` (do not commit it). Return `Ok` to commit and ack,
    /// `Err(Retry)` to roll back and nak with backoff, `Err(Permanent)` to dead-letter at once.
    async fn handle(&self, txn: &DatabaseTransaction, msg: &Delivery) -> Result<(), HandlerError>;

    /// Whether `msg` has an effect to apply. `false` acks it at once, with no transaction and no
    /// inbox row: only for messages that change nothing (a redelivery of one is harmless). Keep it
    /// cheap and free of I/O. Default: every message has an effect.
    fn wants(&self, _msg: &Delivery) -> bool {
        true
    }

    /// Whether the handler writes the inbox row of `msg` itself, with its own writes, instead of
    /// the consumer inserting it before the handler runs: a handler that sends its writes in one
    /// round trip (an `sw_db::Batch`) saves one. When true the consumer calls
    /// [`Handler::handle_with_inbox`] instead of [`Handler::handle`]. Keep it cheap and free of
    /// I/O. Default: false.
    fn writes_inbox(&self, _msg: &Delivery) -> bool {
        false
    }

    /// [`Handler::handle`] for a message whose inbox row the handler writes
    /// ([`Handler::writes_inbox`]): execute `inbox` in `txn` on every path that returns `Ok`, or
    /// the message is not deduplicated. Should `inbox` fail as a duplicate (an earlier delivery
    /// committed), return the error: the consumer rolls back, finds the row and acks the message
    /// as a duplicate. Default: `inbox` first, then [`Handler::handle`].
    async fn handle_with_inbox(
        &self,
        txn: &DatabaseTransaction,
        msg: &Delivery,
        inbox: Statement,
    ) -> Result<(), HandlerError> {
        txn.execute(inbox).await?;
        self.handle(txn, msg).await
    }

    /// Called once the effect of `msg` committed (before the ack), for work that must not start
    /// before it is visible to others, such as waking a worker that reads it. Default: nothing.
    async fn committed(&self, _msg: &Delivery) {}
}

/// One delivery of a message, as the handler sees it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub subject: String,
    /// The deduplication key: the `Nats-Msg-Id` header, else `seq:<stream sequence>`.
    pub msg_id: String,
    pub payload: Bytes,
    pub headers: HeaderMap,
    /// 1 on the first delivery.
    pub delivered: i64,
}

/// What [`apply`] did with a delivery.
#[derive(Debug)]
pub enum Outcome {
    /// The effect and the inbox row committed.
    Committed,
    /// An earlier delivery already committed; nothing was done.
    Duplicate,
    /// The handler said the message has no effect ([`Handler::wants`]); nothing was done.
    Unwanted,
    /// The handler refused; everything was rolled back.
    Failed(HandlerError),
    /// The database failed around the handler; nothing is known to have committed.
    DbUnavailable(DbErr),
}

/// The idempotent core of the consumer: records `msg` as processed by `consumer` and applies its
/// effect in one transaction, giving the handler at most `deadline`. Public so a delivery that
/// arrives some other way (and tests) can use exactly the same path.
pub async fn apply(
    db: &DatabaseConnection,
    consumer: &str,
    handler: &dyn Handler,
    msg: &Delivery,
    deadline: Duration,
) -> Outcome {
    let started = std::time::Instant::now();
    let outcome = if handler.wants(msg) {
        apply_once(db, consumer, handler, msg, deadline).await
    } else {
        Outcome::Unwanted
    };
    let seconds = started.elapsed().as_secs_f64();
    metrics::histogram!(HANDLE_SECONDS, "consumer" => consumer.to_owned()).record(seconds);
    // Per message, for a benchmark that attributes the time to what the message was about.
    tracing::debug!(target: TIMING_TARGET, consumer, msg_id = %msg.msg_id, seconds, "delivery applied");
    outcome
}

/// Histogram of one delivery's transaction (begin, inbox row, the handler's effect, commit or
/// rollback), seconds, by consumer.
pub const HANDLE_SECONDS: &str = "sw_consumer_handle_seconds";

/// Tracing target of the per-message timing events (`debug`: `consumer`, `msg_id`, `seconds`).
pub const TIMING_TARGET: &str = "sw_bus::timing";

async fn apply_once(
    db: &DatabaseConnection,
    consumer: &str,
    handler: &dyn Handler,
    msg: &Delivery,
    deadline: Duration,
) -> Outcome {
    let txn = match step(db.begin()).await {
        Ok(t) => t,
        Err(e) => return Outcome::DbUnavailable(e),
    };
    let deferred = handler.writes_inbox(msg);
    if !deferred && let Err(e) = step(txn.execute(inbox_statement(consumer, msg))).await {
        let _ = step(txn.rollback()).await;
        return if sw_db::is_duplicate(&e) { Outcome::Duplicate } else { Outcome::DbUnavailable(e) };
    }
    let handled = async {
        if deferred {
            handler.handle_with_inbox(&txn, msg, inbox_statement(consumer, msg)).await
        } else {
            handler.handle(&txn, msg).await
        }
    };
    let verdict = match tokio::time::timeout(deadline, AssertUnwindSafe(handled).catch_unwind()).await {
        Ok(Ok(v)) => v,
        Ok(Err(_)) => Err(HandlerError::Retry("the handler panicked".into())),
        Err(_) => {
            Err(HandlerError::Retry(format!("the handler took longer than {}ms", deadline.as_millis())))
        }
    };
    match verdict {
        Ok(()) => match step(txn.commit()).await {
            Ok(()) => Outcome::Committed,
            Err(e) => Outcome::DbUnavailable(e),
        },
        // The handler wrote the inbox row, so a copy of a message already applied fails there:
        // after the rollback, the row an earlier delivery committed tells.
        Err(e) if deferred => {
            if let Err(db) = step(txn.rollback()).await {
                return Outcome::DbUnavailable(db);
            }
            match step(inbox_has(db, consumer, msg)).await {
                Ok(true) => Outcome::Duplicate,
                Ok(false) => Outcome::Failed(e),
                Err(db) => Outcome::DbUnavailable(db),
            }
        }
        // A failed rollback after a retryable error most likely means the database is what failed.
        Err(e @ HandlerError::Retry(_)) => match step(txn.rollback()).await {
            Ok(()) => Outcome::Failed(e),
            Err(db) => Outcome::DbUnavailable(db),
        },
        Err(e @ HandlerError::Permanent(_)) => {
            let _ = step(txn.rollback()).await;
            Outcome::Failed(e)
        }
    }
}

/// The statement that records `msg` as processed by `consumer`: its `sw_inbox` row, whose
/// primary key refuses a second one.
pub fn inbox_statement(consumer: &str, msg: &Delivery) -> Statement {
    Statement::from_sql_and_values(
        DbBackend::MySql,
        "INSERT INTO sw_inbox (consumer, msg_id) VALUES (?, ?)",
        [consumer.into(), msg.msg_id.clone().into()],
    )
}

/// Whether an inbox row of `msg` for `consumer` has committed.
async fn inbox_has(db: &DatabaseConnection, consumer: &str, msg: &Delivery) -> Result<bool, DbErr> {
    let row = db
        .query_one(Statement::from_sql_and_values(
            DbBackend::MySql,
            "SELECT 1 FROM sw_inbox WHERE consumer = ? AND msg_id = ?",
            [consumer.into(), msg.msg_id.clone().into()],
        ))
        .await?;
    Ok(row.is_some())
}

/// One database step under [`DB_STEP_TIMEOUT`].
async fn step<T>(f: impl Future<Output = Result<T, DbErr>>) -> Result<T, DbErr> {
    tokio::time::timeout(DB_STEP_TIMEOUT, f).await.unwrap_or_else(|_| {
        Err(DbErr::Custom(format!("database step timed out after {}s", DB_STEP_TIMEOUT.as_secs())))
    })
}

/// The dedup key of a message: its `Nats-Msg-Id` when it has a usable one.
fn msg_id_of(headers: Option<&HeaderMap>, stream_sequence: u64) -> String {
    match headers.and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID)).map(|v| v.as_str().trim()) {
        Some(id) if !id.is_empty() && id.len() <= MAX_ID_LEN => id.to_owned(),
        // An id too long for the inbox column falls back to the sequence: redeliveries are still
        // deduplicated, only a republished copy is not.
        _ => format!("seq:{stream_sequence}"),
    }
}

/// A header value without line breaks or other control characters, at most [`MAX_REASON_LEN`].
fn header_safe(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).take(MAX_REASON_LEN).collect()
}

/// Consumes `cfg.stream` through `handler` until `shutdown`, then drains in-flight messages.
///
/// `db` must have `sw_inbox` (the service's migrator lists [`crate::outbox::Migration`]). Fails
/// only when the consumer cannot be set up; later NATS errors are logged and retried.
pub async fn run(
    bus: Bus,
    db: DatabaseConnection,
    cfg: ConsumerConfig,
    handler: Arc<dyn Handler>,
    shutdown: CancellationToken,
) -> Result<(), BusError> {
    cfg.validate().map_err(|message| BusError::Stream { stream: cfg.stream.clone(), message })?;
    let mut consumer = ensure_consumer(&bus, &cfg).await?;
    let cfg = Arc::new(cfg);
    let worker = Arc::new(Worker { bus: bus.clone(), db, cfg: cfg.clone(), handler });
    let slots = Arc::new(Semaphore::new(cfg.concurrency));
    let mut tasks = JoinSet::new();
    let mut pause = Duration::from_millis(200);
    tracing::info!(stream = %cfg.stream, consumer = %cfg.durable, "Consumer started.");

    while !shutdown.is_cancelled() {
        // Pull only for free slots, so no message waits (and its lease runs) in a client buffer.
        let first = tokio::select! {
            _ = shutdown.cancelled() => break,
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let mut permits = vec![first];
        while let Ok(p) = slots.clone().try_acquire_owned() {
            permits.push(p);
        }
        while let Some(done) = tasks.try_join_next() {
            log_join(done);
        }
        let batch = tokio::time::timeout(
            bus.config().request_timeout(),
            consumer.batch().max_messages(permits.len()).expires(FETCH_EXPIRES).messages(),
        )
        .await;
        let mut batch = match batch {
            Ok(Ok(b)) => b,
            failed => {
                let error = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => "timed out".to_owned(),
                };
                tracing::warn!(consumer = %cfg.durable, error, retry_in_ms = pause.as_millis() as u64, "Pulling messages failed; will retry.");
                drop(permits);
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(Duration::from_secs(5));
                // The consumer may have been deleted or changed from outside; put it back.
                match ensure_consumer(&bus, &cfg).await {
                    Ok(c) => consumer = c,
                    Err(e) => tracing::warn!(consumer = %cfg.durable, error = %e, "Consumer not available."),
                }
                continue;
            }
        };
        pause = Duration::from_millis(200);
        // The batch ends after `permits.len()` messages or when the pull request expires.
        while let Ok(Some(next)) = tokio::time::timeout(FETCH_EXPIRES * 2, batch.next()).await {
            let msg = match next {
                Ok(m) => m,
                Err(e) => {
                    tracing::debug!(consumer = %cfg.durable, error = %e, "Pull request ended.");
                    break;
                }
            };
            match (shutdown.is_cancelled(), permits.pop()) {
                (false, Some(permit)) => {
                    let w = worker.clone();
                    tasks.spawn(async move {
                        w.process(msg).await;
                        drop(permit);
                    });
                }
                // Arrived after the shutdown signal (or beyond the batch): hand it to another replica now.
                _ => {
                    let _ = signal(&msg, AckKind::Nak(None)).await;
                }
            }
        }
    }

    // Each attempt is bounded by ack_wait plus its database steps and the ack, so this suffices.
    let drain = cfg.ack_wait + DB_STEP_TIMEOUT * 2 + bus.config().request_timeout();
    let drained = tokio::time::timeout(drain, async {
        while let Some(done) = tasks.join_next().await {
            log_join(done);
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!(consumer = %cfg.durable, left = tasks.len(), "In-flight messages did not finish in time; they roll back and are redelivered.");
        tasks.shutdown().await;
    }
    let _ = tokio::time::timeout(bus.config().request_timeout(), bus.client().flush()).await;
    tracing::info!(stream = %cfg.stream, consumer = %cfg.durable, "Consumer stopped.");
    Ok(())
}

fn log_join(r: Result<(), tokio::task::JoinError>) {
    if let Err(e) = r
        && e.is_panic()
    {
        tracing::error!(error = %e, "A consumer task panicked; its message will be redelivered.");
    }
}

/// Everything a message task needs.
struct Worker {
    bus: Bus,
    db: DatabaseConnection,
    cfg: Arc<ConsumerConfig>,
    handler: Arc<dyn Handler>,
}

impl Worker {
    async fn process(&self, msg: Message) {
        let consumer = self.cfg.durable.as_str();
        let (delivered, sequence) = match msg.info() {
            Ok(i) => (i.delivered, i.stream_sequence),
            Err(e) => {
                tracing::warn!(consumer, error = %e, "Not a JetStream message; ignored.");
                return;
            }
        };
        let delivery = Delivery {
            subject: msg.subject.to_string(),
            msg_id: msg_id_of(msg.headers.as_ref(), sequence),
            payload: msg.payload.clone(),
            headers: msg.headers.clone().unwrap_or_default(),
            delivered,
        };
        let work = apply(&self.db, consumer, self.handler.as_ref(), &delivery, self.cfg.ack_wait);
        let outcome = keep_alive(&msg, self.cfg.ack_wait, work).await;
        let msg_id = delivery.msg_id.as_str();
        match outcome {
            Outcome::Committed => {
                Counter::Processed.inc(consumer);
                self.handler.committed(&delivery).await;
                self.confirm_ack(&msg, msg_id).await;
            }
            Outcome::Unwanted => {
                Counter::Unwanted.inc(consumer);
                self.confirm_ack(&msg, msg_id).await;
            }
            Outcome::Duplicate => {
                Counter::Duplicates.inc(consumer);
                tracing::debug!(consumer, msg_id, "Message already processed; acking the redelivery.");
                self.confirm_ack(&msg, msg_id).await;
            }
            Outcome::Failed(HandlerError::Retry(reason)) if delivered < self.cfg.max_deliver => {
                Counter::Retries.inc(consumer);
                tracing::info!(consumer, msg_id, delivered, reason, "Message will be retried.");
                self.nak(&msg, delivered).await;
            }
            Outcome::Failed(e) => {
                let reason = match e {
                    HandlerError::Retry(r) => format!("gave up after {delivered} deliveries: {r}"),
                    HandlerError::Permanent(r) => format!("permanent error: {r}"),
                };
                self.dead_letter(&msg, &delivery, &reason).await;
            }
            Outcome::DbUnavailable(e) => {
                Counter::Retries.inc(consumer);
                tracing::warn!(consumer, msg_id, delivered, error = %e, "Database unavailable; message will be redelivered.");
                self.nak(&msg, delivered).await;
            }
        }
    }

    /// Acks and waits for the server to confirm. A lost ack is harmless: the inbox row dedups.
    async fn confirm_ack(&self, msg: &Message, msg_id: &str) {
        let timeout = self.bus.config().request_timeout();
        match tokio::time::timeout(timeout, msg.double_ack()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(consumer = %self.cfg.durable, msg_id, error = %e, "Ack not confirmed; the redelivery will be deduplicated.")
            }
            Err(_) => {
                tracing::warn!(consumer = %self.cfg.durable, msg_id, "Ack timed out; the redelivery will be deduplicated.")
            }
        }
    }

    async fn nak(&self, msg: &Message, delivered: i64) {
        if let Err(e) = signal(msg, AckKind::Nak(self.cfg.nak_delay(delivered))).await {
            // The lease expires and the server redelivers anyway.
            tracing::debug!(consumer = %self.cfg.durable, error = %e, "Nak not sent.");
        }
    }

    /// Moves the message to the dead-letter subject, announces it, then terminates it. If either
    /// publish fails the message is nak'ed and dead-lettered on a later delivery.
    async fn dead_letter(&self, msg: &Message, d: &Delivery, reason: &str) {
        let consumer = self.cfg.durable.as_str();
        match self.publish_dead_letter(d, reason).await {
            Ok(()) => {
                Counter::DeadLettered.inc(consumer);
                tracing::warn!(consumer, msg_id = %d.msg_id, subject = %d.subject, reason, "Message dead-lettered.");
                if let Err(e) = signal(msg, AckKind::Term).await {
                    tracing::warn!(consumer, msg_id = %d.msg_id, error = %e, "Terminating the message failed; it may be dead-lettered twice.");
                }
            }
            Err(e) => {
                tracing::warn!(consumer, msg_id = %d.msg_id, error = %e, "Dead-lettering failed; will try again.");
                self.nak(msg, d.delivered).await;
            }
        }
    }

    async fn publish_dead_letter(&self, d: &Delivery, reason: &str) -> Result<(), BusError> {
        let subject = self.bus.names().dlq_subject(&self.cfg.stream);
        let fail = |message: String| BusError::Publish { subject: subject.clone(), message };
        let mut headers = HeaderMap::new();
        for (name, values) in d.headers.iter() {
            // Publish expectations of the original (expected stream, last sequence) would make a
            // dead-letter stream reject the copy.
            if AsRef::<str>::as_ref(name).to_ascii_lowercase().starts_with("nats-expected") {
                continue;
            }
            for v in values {
                headers.append(name.clone(), v.clone());
            }
        }
        headers.insert(HDR_DLQ_REASON, header_safe(reason));
        headers.insert(HDR_DLQ_CONSUMER, self.cfg.durable.as_str());
        headers.insert(HDR_DLQ_SUBJECT, d.subject.as_str());
        headers.insert(HDR_DLQ_DELIVERIES, d.delivered.to_string());
        // A core publish: subscribers and any stream an operator keeps on `{prefix}.dlq.>` get it;
        // the event below is the durable record.
        let publish = self.bus.client().publish_with_headers(subject.clone(), headers, d.payload.clone());
        tokio::time::timeout(SIGNAL_TIMEOUT, publish)
            .await
            .map_err(|_| fail("timed out publishing".into()))?
            .map_err(|e| fail(e.to_string()))?;
        tokio::time::timeout(self.bus.config().request_timeout(), self.bus.client().flush())
            .await
            .map_err(|_| fail("timed out flushing".into()))?
            .map_err(|e| fail(e.to_string()))?;
        let data = DeadLettered {
            stream: self.cfg.stream.clone(),
            consumer: self.cfg.durable.clone(),
            subject: d.subject.clone(),
            msg_id: d.msg_id.clone(),
            deliveries: d.delivered,
            reason: reason.to_owned(),
        };
        let event = CloudEvent::new("bus", DEAD_LETTERED_EVENT, Some(d.msg_id.clone()), data);
        self.bus.publish_event(&event).await.map(|_| ())
    }
}

/// Sends a nak, term or progress signal for `msg` (fire and forget, as the server sends no answer).
async fn signal(msg: &Message, kind: AckKind) -> Result<(), String> {
    match tokio::time::timeout(SIGNAL_TIMEOUT, msg.ack_with(kind)).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err("timed out".into()),
    }
}

/// Runs `work`, telling the server every third of the lease that `msg` is in progress, so an
/// attempt whose database steps run past `ack_wait` is not redelivered to another replica meanwhile.
async fn keep_alive<F: Future>(msg: &Message, lease: Duration, work: F) -> F::Output {
    let every = (lease / 3).max(Duration::from_millis(20));
    tokio::pin!(work);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            out = &mut work => return out,
            _ = tick.tick() => {
                if let Err(e) = signal(msg, AckKind::Progress).await {
                    tracing::debug!(error = %e, "Progress ack not sent.");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msg_id_prefers_the_header_and_falls_back_to_the_sequence() {
        let mut h = HeaderMap::new();
        h.insert(async_nats::header::NATS_MESSAGE_ID, "evt-1");
        assert_eq!(msg_id_of(Some(&h), 7), "evt-1");
        assert_eq!(msg_id_of(None, 7), "seq:7");
        let mut long = HeaderMap::new();
        long.insert(async_nats::header::NATS_MESSAGE_ID, "x".repeat(129).as_str());
        assert_eq!(msg_id_of(Some(&long), 8), "seq:8");
    }

    #[test]
    fn reasons_become_single_line_bounded_headers() {
        assert_eq!(header_safe("bad\r\nthing\t!"), "bad  thing !");
        assert_eq!(header_safe(&"é".repeat(2000)).chars().count(), MAX_REASON_LEN);
    }
}
