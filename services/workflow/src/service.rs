//! The running service: the operations on NATS, the consumer of executor results, the engine's
//! driver and the outbox relay, started and stopped together.
//!
//! The driver is the engine's loop. Each replica claims due rows of the wake-up list by lease
//! ([`store::claim_due`]), runs a [`Pass`] per claimed deployment (up to `workflow.concurrency` at
//! once), and gives each row back due at the deployment's next deadline or timer, or deletes it when
//! nothing is left to do. It looks when woken by this replica's own writes (a launch, an operator's
//! action, an executor result) and otherwise every `workflow.poll_ms`, which is how it picks up work
//! other replicas caused, timers that came due, and rows whose holder died (lease passed). So a crash
//! at any point leaves either the old state with its wake-up row or the new state with its own: a
//! restart carries every deployment on.
//!
//! A `webhook` step is called between two passes, outside any transaction: the first pass commits
//! the task `RUNNING` and hands back the call; the result (delivered, retry later, rejected) is fed to
//! the next pass. A crash in between repeats the call with the same `webhook-id`.

use std::sync::Arc;
use std::time::Duration;

use chrono::{Duration as ChronoDuration, Utc};
use sea_orm::DatabaseConnection;
use sw_authz::Verifier;
use sw_bus::consumer::ConsumerConfig;
use sw_bus::outbox::Outbox;
use sw_bus::{Bus, BusError};
use sw_config::Config;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::engine::{Pass, PassError, Settings, WebhookResult};
use crate::migration::Migrator;
use crate::ops::{self, Ctx};
use crate::results::{DURABLE, ResultHandler, TIMING_TARGET};
use crate::store::{self, SERVICE};
use crate::webhook::{WebhookOutcome, WebhookSender};

/// Histogram of one engine pass (load, decide, write, commit), seconds.
pub const PASS_SECONDS: &str = "sw_workflow_pass_seconds";

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Db(#[from] sw_db::DbError),
    #[error(transparent)]
    Bus(#[from] BusError),
    /// The HTTP client of webhook steps could not be set up.
    #[error("webhook client: {0}")]
    Webhooks(String),
}

/// The driver's timing.
#[derive(Debug, Clone)]
pub struct DriverSettings {
    pub poll: Duration,
    pub lease: Duration,
    pub concurrency: usize,
}

/// A built workflow service.
pub struct Service {
    bus: Bus,
    ctx: Arc<Ctx>,
    /// The engine's own pool (driver, results consumer, outbox relay), sized to its concurrency so
    /// a burst of API calls on the operations' pool never leaves a pass waiting for a connection.
    engine_db: DatabaseConnection,
    consumer: ConsumerConfig,
    driver: DriverSettings,
    webhooks: Option<Arc<WebhookSender>>,
    grace: Duration,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service").field("consumer", &self.consumer).finish_non_exhaustive()
    }
}

/// Connects and migrates `{prefix}workflow`, makes sure the streams exist, and sets up the
/// operations, the results consumer and the driver.
pub async fn build(cfg: &Config, bus: Bus, verifier: Verifier) -> Result<Service, BuildError> {
    let db = sw_db::connect_read_committed(&cfg.database, SERVICE).await?;
    sw_db::migrate::<Migrator>(&db, &sw_db::database_name(&cfg.database, SERVICE)).await?;
    bus.ensure_streams().await?;
    let names = bus.names().clone();
    let mut consumer = ConsumerConfig::new(names.events_stream(), DURABLE);
    consumer.filter_subjects = vec![names.event_subject("executor.component.>")];
    let wf = &cfg.workflow;
    consumer.concurrency = usize::try_from(wf.results_concurrency).unwrap_or(8).max(1);
    consumer.ack_wait = Duration::from_secs(wf.results_ack_wait_secs);
    let webhooks = match &wf.webhook_signing_key {
        Some(k) => Some(Arc::new(
            WebhookSender::new(
                k.expose().as_bytes(),
                Duration::from_secs(wf.webhook_timeout_secs),
                wf.webhook_allow_private,
            )
            .map_err(|e| BuildError::Webhooks(e.to_string()))?,
        )),
        None => None,
    };
    let ctx = Arc::new(Ctx {
        db,
        bus: bus.clone(),
        outbox: Outbox::new(names),
        verifier,
        settings: Settings::from_config(wf),
        on_conflict: wf.on_conflict,
        webhooks_enabled: webhooks.is_some(),
        webhooks_private: wf.webhook_allow_private,
        engine: Arc::new(Notify::new()),
        launches: tokio::sync::Semaphore::new(
            usize::try_from(wf.launch_concurrency)
                .unwrap_or(usize::MAX)
                .clamp(1, tokio::sync::Semaphore::MAX_PERMITS),
        ),
    });
    let driver = DriverSettings {
        poll: Duration::from_millis(wf.poll_ms),
        lease: Duration::from_secs(wf.lease_secs),
        concurrency: usize::try_from(wf.concurrency).unwrap_or(8).max(1),
    };
    let mut engine_cfg = cfg.database.clone();
    // Every pass and every result message holds one connection; the relay one more; one spare.
    engine_cfg.max_connections =
        u32::try_from(driver.concurrency + consumer.concurrency + 2).unwrap_or(u32::MAX);
    let engine_db = sw_db::connect_read_committed(&engine_cfg, SERVICE).await?;
    Ok(Service {
        bus,
        ctx,
        engine_db,
        consumer,
        driver,
        webhooks,
        grace: Duration::from_secs(cfg.shutdown_grace_secs),
    })
}

impl Service {
    pub fn db(&self) -> DatabaseConnection {
        self.ctx.db.clone()
    }

    /// The results consumer's settings (tests shorten the backoff).
    pub fn consumer_config_mut(&mut self) -> &mut ConsumerConfig {
        &mut self.consumer
    }

    /// The driver's settings (tests shorten the poll).
    pub fn driver_settings_mut(&mut self) -> &mut DriverSettings {
        &mut self.driver
    }

    /// Runs until `shutdown`: operations drain within the grace period, the driver finishes the
    /// passes it is in (and leaves the rest to its wake-up rows), then the relay makes a last pass.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> Result<(), BusError> {
        let relay_stop = CancellationToken::new();
        let relay = tokio::spawn(
            self.ctx
                .outbox
                .relay(self.engine_db.clone(), self.bus.clone())
                .session_read_committed()
                .run(relay_stop.clone()),
        );
        let driver_stop = shutdown.child_token();
        let driver = tokio::spawn(drive(
            self.ctx.clone(),
            self.engine_db.clone(),
            self.driver.clone(),
            self.webhooks.clone(),
            driver_stop.clone(),
        ));
        let handler = Arc::new(ResultHandler::new(
            self.ctx.outbox.clone(),
            self.ctx.engine.clone(),
            self.ctx.settings.clone(),
        ));
        let consuming = tokio::spawn(sw_bus::consumer::run(
            self.bus.clone(),
            self.engine_db.clone(),
            self.consumer.clone(),
            handler,
            shutdown.clone(),
        ));
        let served =
            sw_bus::rpc::serve(self.bus.clone(), ops::router(&self.ctx), shutdown.clone(), self.grace).await;
        shutdown.cancel();
        let consumed = consuming.await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "Results consumer task ended abnormally.");
            Ok(())
        });
        driver_stop.cancel();
        if let Err(e) = driver.await {
            tracing::warn!(error = %e, "Workflow driver task ended abnormally.");
        }
        relay_stop.cancel();
        if let Err(e) = relay.await {
            tracing::warn!(error = %e, "Outbox relay task ended abnormally.");
        }
        served.and(consumed)
    }
}

/// The engine's loop (see the module docs): keeps up to `concurrency` passes running, claiming due
/// deployments whenever a slot frees up, and waits for this replica's wake-ups or the poll
/// interval when nothing is due. On `stop` it claims nothing more and lets running passes finish.
async fn drive(
    ctx: Arc<Ctx>,
    db: DatabaseConnection,
    s: DriverSettings,
    webhooks: Option<Arc<WebhookSender>>,
    stop: CancellationToken,
) {
    let replica = uuid::Uuid::now_v7().to_string();
    let mut claims = 0u64;
    let mut running = tokio::task::JoinSet::new();
    // After a wake-up that found nothing due yet (its transaction had not committed), look again
    // soon rather than after a whole poll interval.
    let mut recheck = false;
    while !stop.is_cancelled() {
        let free = s.concurrency.saturating_sub(running.len());
        if free > 0 {
            let now = Utc::now();
            let lease_until = now + ChronoDuration::from_std(s.lease).unwrap_or(ChronoDuration::seconds(30));
            // The owner of the rows of this claim: the replica and a count, so the claim's rows can
            // be read back and each release touches only its own hold.
            claims += 1;
            let claim = format!("{replica}:{claims}");
            match store::claim_due(&db, &claim, now, lease_until, free as u64).await {
                Ok(claimed) if !claimed.is_empty() => {
                    for (id, seq) in claimed {
                        let held = Hold { id, seq, claim: claim.clone() };
                        running.spawn(advance_one(ctx.clone(), db.clone(), held, webhooks.clone()));
                    }
                    continue;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "Could not read the wake-up list; trying again."),
            }
        }
        let wait = if recheck { Duration::from_millis(20) } else { s.poll };
        tokio::select! {
            _ = stop.cancelled() => {}
            Some(_) = running.join_next(), if !running.is_empty() => {}
            _ = ctx.engine.notified() => { recheck = true; continue; }
            _ = tokio::time::sleep(wait) => {}
        }
        recheck = false;
    }
    while let Some(done) = running.join_next().await {
        if let Err(e) = done {
            tracing::warn!(error = %e, "A deployment pass ended abnormally.");
        }
    }
}

/// One claimed deployment: advance it; its wake-up row is given back in the pass's own
/// transaction, or here, due again in a second, when the pass failed.
async fn advance_one(
    ctx: Arc<Ctx>,
    db: DatabaseConnection,
    held: Hold,
    webhooks: Option<Arc<WebhookSender>>,
) {
    let Err(e) = run_deployment(&ctx, &db, &held, webhooks.as_deref()).await else { return };
    let id = held.id;
    tracing::warn!(deployment = id, error = %e, "Advancing a deployment failed; it is retried.");
    let next = Some(Utc::now() + ChronoDuration::seconds(1));
    for attempt in 1..=5 {
        match store::release(&db, id, held.seq, &held.claim, next).await {
            Ok(()) => return,
            Err(e) if sw_db::is_lock_conflict(&e) && attempt < 5 => continue,
            Err(e) => {
                tracing::warn!(deployment = id, error = %e, "Could not release a deployment; its lease will pass.");
                return;
            }
        }
    }
}

/// A deployment this replica holds: its wake-up row's `seq` when claimed, and the claim.
struct Hold {
    id: i64,
    seq: i64,
    claim: String,
}

/// Advances the held deployment as far as it goes now; the last pass releases its wake-up row
/// (due at the deployment's next deadline or timer, or gone) in the same transaction.
async fn run_deployment(
    ctx: &Ctx,
    db: &DatabaseConnection,
    held: &Hold,
    webhooks: Option<&WebhookSender>,
) -> Result<(), PassError> {
    let id = held.id;
    let mut fed: Option<(i64, i32, WebhookResult)> = None;
    let mut conflicts = 0;
    loop {
        let started = std::time::Instant::now();
        let txn = store::begin(db).await?;
        let now = ops::now();
        let Some(mut pass) = Pass::load(&txn, id, now).await? else {
            store::release(&txn, id, held.seq, &held.claim, None).await?;
            txn.commit().await?;
            return Ok(());
        };
        let step = pass.tasks.iter().filter(|t| t.state == "SUCCESS").count();
        if let Some((task_id, attempt, result)) = fed.take()
            && let Some(i) = pass.tasks.iter().position(|t| t.id == task_id && t.attempt == attempt)
            && matches!(pass.task_state(i), crate::state::TaskState::Running)
        {
            pass.webhook_result(i, result);
        }
        let holder = if pass.dep.state == "CREATED" {
            store::holder_before(&txn, &pass.dep.instance_key, id).await?
        } else {
            None
        };
        let call = pass.advance(&ctx.settings, holder);
        let next = pass.next_due();
        // The hold ends with the last pass; a webhook call comes first.
        let release = call.is_none().then(|| store::release_stmts(id, held.seq, &held.claim, next));
        let written = pass.commit(&txn, &ctx.outbox, &ctx.settings, release.into_iter().flatten()).await;
        let committed = match written {
            Ok(w) => txn.commit().await.map(|()| w).map_err(PassError::Db),
            Err(e) => Err(e),
        };
        let wakes = match committed {
            Ok(w) => w,
            // Lost a race (a result or an operator changed it, or a lock): run the pass again at once.
            Err(PassError::Conflict(_)) if conflicts < 10 => {
                conflicts += 1;
                continue;
            }
            Err(PassError::Db(e)) if sw_db::is_lock_conflict(&e) && conflicts < 10 => {
                conflicts += 1;
                continue;
            }
            Err(e) => return Err(e),
        };
        // The engine's own time for one pass: load, decide, write, commit (no webhook call).
        let seconds = started.elapsed().as_secs_f64();
        metrics::histogram!(PASS_SECONDS).record(seconds);
        tracing::debug!(target: TIMING_TARGET, kind = "pass", deployment = id, step, seconds, "pass committed");
        ctx.outbox.wake();
        if !wakes.is_empty() {
            ctx.kick();
        }
        let Some(call) = call else { return Ok(()) };
        let Some(sender) = webhooks else {
            // Refused at launch without a key; a key removed since makes the step fail.
            let message = "webhooks are not configured on this server".to_owned();
            fed = Some((call.payload.task_id as i64, call.attempt, WebhookResult::Rejected { message }));
            continue;
        };
        let body = serde_json::to_value(&call.payload).unwrap_or_default();
        let outcome = sender.send(&call.url, &call.msg_id, &body).await;
        let result = match outcome {
            WebhookOutcome::Delivered { context, .. } => WebhookResult::Delivered { context },
            WebhookOutcome::Retry { message } => {
                let delay = crate::webhook::backoff(call.calls + 1);
                WebhookResult::Retry {
                    message,
                    at: Utc::now() + ChronoDuration::from_std(delay).unwrap_or_default(),
                }
            }
            WebhookOutcome::Rejected { status, message } => {
                let _ = status;
                WebhookResult::Rejected { message }
            }
        };
        fed = Some((call.payload.task_id as i64, call.attempt, result));
    }
}
