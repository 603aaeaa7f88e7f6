//! The health watch: after `applied`, each component instance's objects are read back until they
//! are healthy or the command's deadline passes, and the result is reported through the outbox.
//!
//! The consumer cannot wait for health (a rollout outlasts the ack wait), so the handler only
//! writes a `health_watch` row in the command's transaction, and this task — one per replica,
//! stopped by the service's shutdown token — works the rows:
//! 1. every poll it claims the due rows by a compare-and-swap lease ([`Store::claim_watches`]):
//!    two replicas never check one row at once, and a dead replica's rows are taken over once its
//!    lease runs out (a stopping replica gives its leases up at once);
//! 2. it reads the objects through the [`ClusterProvider`], assesses and aggregates their health
//!    ([`crate::health`]) and asks the [`Deadline`] for a verdict;
//! 3. `Healthy` ends the watch: the row is deleted (compare-and-swap) and
//!    `executor.component.healthy` enqueued in one transaction; past the deadline the same with
//!    `executor.component.failed`, reason `Timeout`, saying what was seen last (or that the
//!    cluster could not be read); turning `Degraded` is reported once per revision as
//!    `executor.component.degraded` and the watch goes on. A read failure never ends a watch
//!    early; it is only the last word if it is still failing at the deadline.
//!
//! A lost compare-and-swap — a newer revision replaced the row, another replica took it over, a
//! delete removed it — means the work is someone else's now: it is dropped without a report.
//!
//! The same loop sweeps recorded command results older than the retention, a bounded batch at a
//! time.

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use futures::stream::{self, StreamExt};
use sea_orm::{DatabaseConnection, TransactionTrait};
use sw_bus::CloudEvent;
use sw_bus::outbox::Outbox;
use sw_contracts::executor::{ComponentResult, Health};
use tokio::time::{Instant, timeout};
use tokio_util::sync::CancellationToken;

use super::ClusterProvider;
use super::handler::{EVENT_SERVICE, FAILED, HEALTHY, instance_key};
use crate::health::{self, Assessment, Deadline, TIMEOUT_REASON, Verdict};
use crate::store::{Store, StoreError, Watch};

/// The component's objects turned degraded; it is still watched.
const DEGRADED: &str = "executor.component.degraded";

/// How many watches one pass claims at most.
const CLAIM_BATCH: u64 = 64;
/// How many claimed watches one pass checks at once.
const CHECKS_AT_ONCE: usize = 16;
/// How many recorded results one retention sweep deletes at most.
const RETENTION_BATCH: u64 = 1000;
/// How often the retention sweep runs, unless the last one had more to delete.
const RETENTION_EVERY: Duration = Duration::from_secs(60);
/// The limit of every database call of the watcher.
const DB_TIMEOUT: Duration = Duration::from_secs(10);

/// The watcher's timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchSettings {
    /// How often the due watches are checked (sooner when a deadline falls in between).
    pub poll: Duration,
    /// How long a claimed watch stays this replica's without being checked again; a dead
    /// replica's watches are taken over after it. Also bounds one check's cluster reads (half of
    /// it) and one pass.
    pub lease: Duration,
    /// How long a command's recorded result is kept for replay to its redeliveries.
    pub result_retention: Duration,
}

impl Default for WatchSettings {
    /// Poll every 2 s, lease 30 s, keep results 7 days.
    fn default() -> Self {
        Self {
            poll: Duration::from_secs(2),
            lease: Duration::from_secs(30),
            result_retention: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// Why a pass of the watcher stopped early; the next pass tries again.
#[derive(Debug, thiserror::Error)]
enum PassError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no answer from the database within {0:?}")]
    Timeout(Duration),
}

impl From<sea_orm::DbErr> for PassError {
    fn from(e: sea_orm::DbErr) -> Self {
        PassError::Store(e.into())
    }
}

/// What one check of a watch saw.
struct Seen {
    /// The aggregated health, or `Unknown` with the reason the objects could not be read.
    now: Assessment,
    /// Whether the objects were read at all.
    read: bool,
}

/// One replica's watcher; see the module docs.
pub(super) struct Watcher {
    store: Store,
    db: DatabaseConnection,
    outbox: Outbox,
    clusters: Arc<dyn ClusterProvider>,
    settings: WatchSettings,
    /// This replica's lease owner id, unique per start.
    owner: String,
}

impl Watcher {
    pub(super) fn new(
        store: Store,
        db: DatabaseConnection,
        outbox: Outbox,
        clusters: Arc<dyn ClusterProvider>,
        settings: WatchSettings,
    ) -> Self {
        let owner = format!("{EVENT_SERVICE}-{}", uuid::Uuid::new_v4());
        Self { store, db, outbox, clusters, settings, owner }
    }

    /// Checks the due watches every poll until `shutdown`, then gives up this replica's leases.
    /// A pass cut short by the shutdown leaves nothing half done: every write is one transaction.
    pub(super) async fn run(self, shutdown: CancellationToken) {
        let mut next_sweep = Instant::now();
        loop {
            let pass = tokio::select! {
                _ = shutdown.cancelled() => break,
                pass = timeout(self.settings.lease, self.pass()) => pass,
            };
            let wait = match pass {
                Ok(Ok(wait)) => wait,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "Health watch pass failed; will retry.");
                    self.settings.poll
                }
                Err(_) => {
                    tracing::warn!(
                        after_ms = self.settings.lease.as_millis() as u64,
                        "Health watch pass timed out; will retry."
                    );
                    self.settings.poll
                }
            };
            if Instant::now() >= next_sweep {
                let more = tokio::select! {
                    _ = shutdown.cancelled() => break,
                    more = self.sweep() => more,
                };
                next_sweep = if more { Instant::now() } else { Instant::now() + RETENTION_EVERY };
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(wait) => {}
            }
        }
        match timeout(DB_TIMEOUT, self.store.release_watches(&self.owner)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "Could not give up health watch leases; they run out."),
            Err(_) => tracing::warn!("Giving up health watch leases timed out; they run out."),
        }
    }

    /// Claims and checks the due watches; returns how long to sleep before the next pass.
    async fn pass(&self) -> Result<Duration, PassError> {
        let claim = self.store.claim_watches(&self.owner, Utc::now(), self.settings.lease, CLAIM_BATCH);
        let claimed = timeout(DB_TIMEOUT, claim).await.map_err(|_| PassError::Timeout(DB_TIMEOUT))??;
        let valid = claimed.into_iter().filter_map(|watch| match watch {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::error!(error = %e, "A stored health watch is invalid; it needs an operator.");
                None
            }
        });
        // Checked side by side, so a slow or unreachable cluster delays only the checks of its own
        // components (each bounded by half the lease), not every other watch of the pass.
        let mut checks =
            stream::iter(valid).map(|w| async move { self.check(&w).await }).buffer_unordered(CHECKS_AT_ONCE);
        let (mut wait, mut failed) = (self.settings.poll, None);
        while let Some(checked) = checks.next().await {
            match checked {
                Ok(Some(remaining)) => wait = wait.min(remaining),
                Ok(None) => {}
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
        }
        failed.map_or(Ok(wait), Err)
    }

    /// Reads, judges and reports one watch; the time left when it goes on.
    async fn check(&self, w: &Watch) -> Result<Option<Duration>, PassError> {
        let seen = self.observe(w).await;
        let deadline = Deadline::from_secs(w.started_at, w.deadline_secs);
        match deadline.judge(&seen.now, Utc::now()) {
            Verdict::Healthy => {
                self.finish(w, HEALTHY, result(w, &seen.now, None, seen.now.message.clone())).await?;
                Ok(None)
            }
            Verdict::TimedOut { mut message } => {
                if !seen.read
                    && let Some(last) = &w.observed
                {
                    message = format!("{message}; last seen: {:?}", last.health);
                    if let Some(detail) = &last.message {
                        message = format!("{message}: {detail}");
                    }
                }
                let out = result(w, &seen.now, Some(TIMEOUT_REASON), Some(message));
                self.finish(w, FAILED, out).await?;
                Ok(None)
            }
            Verdict::Wait { remaining } => {
                let degraded = seen.read && seen.now.health == Health::Degraded;
                let report = degraded && w.reported != Some(Health::Degraded);
                let reported = if report { Some(Health::Degraded) } else { w.reported };
                let observed = seen.read.then_some(&seen.now);
                let txn = timed(self.db.begin()).await?;
                let touched = timed(self.store.touch_watch(
                    &txn,
                    w.id,
                    w.version,
                    observed,
                    reported,
                    Utc::now(),
                    self.settings.lease,
                ))
                .await?;
                if touched.is_none() {
                    tracing::debug!(command_id = %w.command_id, "Health watch moved on; dropped.");
                    return Ok(None);
                }
                if report {
                    let out = result(w, &seen.now, None, seen.now.message.clone());
                    let event = CloudEvent::new(EVENT_SERVICE, DEGRADED, Some(instance_key(&w.target)), &out);
                    timed(self.outbox.enqueue(&txn, &event)).await?;
                }
                timed(txn.commit()).await?;
                if report {
                    self.outbox.wake();
                }
                Ok(Some(remaining))
            }
        }
    }

    /// The component's health now; a cluster that cannot be had or read is `Unknown` with why.
    async fn observe(&self, w: &Watch) -> Seen {
        let budget = self.settings.lease / 2;
        let read = async {
            let cluster = self.clusters.cluster(&w.target.cluster_id).await.map_err(|e| e.to_string())?;
            cluster.read_all(&w.target.namespace, &w.objects).await.map_err(|e| e.to_string())
        };
        let answer = match timeout(budget, read).await {
            Ok(answer) => answer,
            Err(_) => Err(format!("no answer within {budget:?}")),
        };
        match answer {
            Ok(objects) => {
                let assessed: Vec<_> = objects.iter().map(|(_, obj)| health::assess(obj)).collect();
                Seen { now: health::aggregate(&assessed), read: true }
            }
            Err(why) => Seen {
                now: Assessment::new(Health::Unknown, format!("cluster unreachable: {why}")),
                read: false,
            },
        }
    }

    /// Ends the watch and enqueues its final event in one transaction; nothing when the row moved
    /// on since the claim.
    async fn finish(&self, w: &Watch, event_type: &str, out: ComponentResult) -> Result<(), PassError> {
        let event = CloudEvent::new(EVENT_SERVICE, event_type, Some(instance_key(&w.target)), &out);
        let txn = timed(self.db.begin()).await?;
        if !timed(self.store.finish_watch(&txn, w.id, w.version)).await? {
            tracing::debug!(command_id = %w.command_id, "Health watch moved on; dropped.");
            return Ok(());
        }
        timed(self.outbox.enqueue(&txn, &event)).await?;
        timed(txn.commit()).await?;
        self.outbox.wake();
        let (command_id, revision) = (&w.command_id, w.revision);
        tracing::info!(%command_id, revision, event = event_type, "Health watch ended.");
        Ok(())
    }

    /// Deletes a batch of results past the retention; whether there may be more.
    async fn sweep(&self) -> bool {
        let keep = TimeDelta::from_std(self.settings.result_retention).unwrap_or(TimeDelta::MAX);
        let Some(cutoff) = Utc::now().checked_sub_signed(keep) else {
            return false;
        };
        match timeout(DB_TIMEOUT, self.store.delete_results_before(cutoff, RETENTION_BATCH)).await {
            Ok(Ok(n)) => {
                if n > 0 {
                    tracing::info!(deleted = n, "Recorded results past the retention deleted.");
                }
                n == RETENTION_BATCH
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "Retention sweep of recorded results failed; will retry.");
                false
            }
            Err(_) => {
                tracing::warn!("Retention sweep of recorded results timed out; will retry.");
                false
            }
        }
    }
}

/// `call` within [`DB_TIMEOUT`].
async fn timed<T, E>(call: impl Future<Output = Result<T, E>>) -> Result<T, PassError>
where
    PassError: From<E>,
{
    timeout(DB_TIMEOUT, call).await.map_err(|_| PassError::Timeout(DB_TIMEOUT))?.map_err(PassError::from)
}

/// The payload of a watch's event.
fn result(w: &Watch, seen: &Assessment, reason: Option<&str>, message: Option<String>) -> ComponentResult {
    ComponentResult {
        command_id: w.command_id.clone(),
        target: w.target.clone(),
        revision: w.revision,
        health: seen.health,
        reason: reason.map(str::to_owned),
        message,
        objects: w.objects.clone(),
        pruned: Vec::new(),
    }
}
