//! The build workers: `build_workers` loops per process that claim tasks from the database and
//! run them under a renewed lease.
//!
//! No queue is needed for durability: the task row is the queue. A worker that dies leaves its
//! task `RUNNING` with a lease that stops being renewed; once `lease_until` passes, any worker
//! takes it over and starts again (at most [`MAX_ATTEMPTS`] takes). Builds are reproducible —
//! the same binders, charts and version give the same bytes — so a takeover that finds its
//! version already imported with exactly the bytes it assembled (the previous worker died after
//! the import, before marking the task) adopts that package instead of failing.
//!
//! The deadline bounds the wait and the assembly; the import, once started, runs under the
//! import deadline instead, so a task never ends `FAILURE` while its package is being stored.
//! On shutdown workers stop claiming, give the build in hand the grace period, and hand back
//! what is still unfinished (the lease ends at once and the attempt does not count).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use sw_contracts::AppId;
use sw_contracts::packages::{PackageSource, PackageTaskStatus};
use sw_http::ApiError;
use tempfile::TempDir;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::rows::{self, Transition};
use super::{LEASE_RENEWAL, MAX_ATTEMPTS, POLL_INTERVAL, build_problem, failure_message};
use crate::build::{AssembleRequest, AssembledPackage, BuildLimits, ComponentBinder, assemble};
use crate::ctx::{Ctx, now};
use crate::entity::package_task::{self, Column as C, Entity as Task};
use crate::entity::{IMPORTING, READY, app_package};
use crate::import::{ImportEvent, ImportRequest, Importer, VersionChoice};
use crate::store::corrupt;

/// Tasks looked at per claim query.
const CLAIM_BATCH: u64 = 8;
/// Claim queries per wake-up when every candidate was ended or taken by someone else.
const CLAIM_ROUNDS: usize = 4;

/// Starts the workers; they stop claiming when `stop` fires and the tracker empties once each
/// has finished or handed back its task (within `grace`).
pub(crate) fn start(ctx: Arc<Ctx>, stop: CancellationToken, grace: Duration) -> TaskTracker {
    let tracker = TaskTracker::new();
    for worker in 0..ctx.cfg.build_workers {
        tracker.spawn(work(ctx.clone(), worker, stop.clone(), grace));
    }
    tracker.close();
    tracker
}

async fn work(ctx: Arc<Ctx>, worker: usize, stop: CancellationToken, grace: Duration) {
    while !stop.is_cancelled() {
        match claim(&ctx).await {
            Ok(Some(task)) => {
                run(&ctx, task, &stop, grace).await;
                continue;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(worker, error = %e, "Looking for build tasks failed; trying again shortly.")
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ctx.builds.notified() => {}
            _ = tokio::time::sleep(POLL_INTERVAL) => {}
        }
    }
}

/// What a worker does with a task it looked at.
fn decide(task: &package_task::Model, at: chrono::DateTime<chrono::Utc>, owner: &str) -> Transition {
    if task.deadline_at <= at {
        Transition::Fail {
            message: format!(
                "Timeout: the build did not finish by its deadline ({})",
                task.deadline_at.to_rfc3339()
            ),
        }
    } else if task.attempts >= MAX_ATTEMPTS {
        Transition::Fail {
            message: format!(
                "attempts_exhausted: {} workers took the task and stopped without finishing it",
                task.attempts
            ),
        }
    } else {
        Transition::Run { owner: owner.to_owned() }
    }
}

/// Claims the oldest task waiting for a worker (`CREATED`, or `RUNNING` with an expired lease),
/// ending on the way those past their deadline or their attempts.
async fn claim(ctx: &Ctx) -> Result<Option<package_task::Model>, ApiError> {
    let created = PackageTaskStatus::Created.as_str();
    let running = PackageTaskStatus::Running.as_str();
    for _ in 0..CLAIM_ROUNDS {
        let at = now();
        let candidates = Task::find()
            .filter(
                Condition::any()
                    .add(C::Status.eq(created))
                    .add(Condition::all().add(C::Status.eq(running)).add(C::LeaseUntil.lt(at))),
            )
            .order_by_asc(C::Id)
            .limit(CLAIM_BATCH)
            .all(&ctx.db)
            .await
            .map_err(sw_db::api_error)?;
        if candidates.is_empty() {
            return Ok(None);
        }
        for task in candidates {
            match rows::apply(ctx, &task, decide(&task, at, &ctx.instance)).await? {
                Some(next) if next.status == running => return Ok(Some(next)),
                Some(ended) => {
                    let outcome = if task.deadline_at <= at { "timeout" } else { "exhausted" };
                    ended_task(ctx, &ended, outcome).await;
                }
                // Someone else moved it first.
                None => {}
            }
        }
    }
    Ok(None)
}

/// After a task ended: its build inputs go, the outcome is counted and logged.
async fn ended_task(ctx: &Ctx, task: &package_task::Model, outcome: &'static str) {
    metrics::counter!(crate::METRIC_BUILDS, "outcome" => outcome).increment(1);
    match task.status().ok() {
        Some(PackageTaskStatus::Success) => tracing::info!(
            task_id = task.id, app_id = %task.app_id, package_version = %task.package_version,
            app_package_id = task.app_package_id, attempts = task.attempts, "Build task succeeded."
        ),
        _ => tracing::info!(
            task_id = task.id, app_id = %task.app_id, package_version = %task.package_version,
            reason = task.error_message.as_deref().unwrap_or(""), attempts = task.attempts, "Build task failed."
        ),
    }
    match task.charts() {
        Ok(charts) => super::create::delete_objects(ctx, &charts.into_values().collect::<Vec<_>>()).await,
        Err(e) => {
            tracing::warn!(task_id = task.id, error = %e, "Unreadable chart list; the janitor removes the charts.")
        }
    }
}

/// What a task needs to be built, read from its row.
#[derive(Debug)]
struct Job {
    app: AppId,
    version: String,
    tags: Vec<String>,
    binders: Vec<ComponentBinder>,
    /// Component name → chart key.
    charts: BTreeMap<String, String>,
    created_by: String,
    traceparent: Option<String>,
}

impl Job {
    fn from_row(t: &package_task::Model) -> Result<Self, ApiError> {
        Ok(Self {
            app: AppId::parse(&t.app_id).map_err(|e| ApiError::internal(&e))?,
            version: t.package_version.clone(),
            tags: t.tag_list().map_err(corrupt)?,
            binders: t.binders().map_err(corrupt)?,
            charts: t.charts().map_err(corrupt)?,
            created_by: t.created_by.clone(),
            traceparent: t.traceparent.clone(),
        })
    }
}

/// How a supervised stage ended.
enum Supervised<T> {
    Done(T),
    /// The task's deadline passed.
    Timeout,
    /// Another worker holds the task now.
    Lost,
    /// The process is stopping and the grace period is over.
    Stopped,
}

type Stopping = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Runs a claimed task to its end (or hands it back).
async fn run(ctx: &Arc<Ctx>, claimed: package_task::Model, stop: &CancellationToken, grace: Duration) {
    let mut held = claimed;
    let stop = stop.clone();
    let mut stopping: Stopping = Box::pin(async move {
        stop.cancelled().await;
        tokio::time::sleep(grace).await;
    });
    let left = (held.deadline_at - chrono::Utc::now()).to_std().unwrap_or_default();
    let deadline = Instant::now() + left;
    let outcome = match Job::from_row(&held) {
        Err(e) => Supervised::Done(Err(e)),
        Ok(job) => match supervise(ctx, &mut held, prepare(ctx, &job), Some(deadline), &mut stopping).await {
            Supervised::Done(Ok((dir, assembled))) => {
                let stored =
                    supervise(ctx, &mut held, import(ctx, &job, &assembled), None, &mut stopping).await;
                drop(dir);
                stored
            }
            Supervised::Done(Err(e)) => Supervised::Done(Err(e)),
            Supervised::Timeout => Supervised::Timeout,
            Supervised::Lost => Supervised::Lost,
            Supervised::Stopped => Supervised::Stopped,
        },
    };
    let (transition, label) = match outcome {
        Supervised::Done(Ok(app_package_id)) => (Transition::Succeed { app_package_id }, "succeeded"),
        Supervised::Done(Err(e)) => (Transition::Fail { message: failure_message(&e) }, "failed"),
        Supervised::Timeout => (Transition::Fail { message: timeout_message(&held) }, "timeout"),
        Supervised::Lost => {
            tracing::warn!(
                task_id = held.id,
                "Lost the lease of a build task; another worker has taken it over."
            );
            return;
        }
        Supervised::Stopped => {
            match rows::release(ctx, &held, held.version, &ctx.instance).await {
                Ok(true) => {
                    tracing::info!(task_id = held.id, "Handed an unfinished build task back at shutdown.")
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(task_id = held.id, error = %e, "Could not hand a build task back; its lease will expire.")
                }
            }
            return;
        }
    };
    match rows::apply(ctx, &held, transition).await {
        Ok(Some(ended)) => ended_task(ctx, &ended, label).await,
        Ok(None) => tracing::warn!(
            task_id = held.id,
            "A build task moved on while it was built; its result is dropped."
        ),
        Err(e) => {
            tracing::warn!(task_id = held.id, error = %e, "Could not record the end of a build task; it will be taken over.")
        }
    }
}

/// Why a task past its deadline failed.
fn timeout_message(task: &package_task::Model) -> String {
    format!("Timeout: the build did not finish by its deadline ({})", task.deadline_at.to_rfc3339())
}

/// Drives `stage` while renewing the lease on `held` (whose `version` follows the renewals).
async fn supervise<T>(
    ctx: &Ctx,
    held: &mut package_task::Model,
    stage: impl Future<Output = T>,
    deadline: Option<Instant>,
    stopping: &mut Stopping,
) -> Supervised<T> {
    tokio::pin!(stage);
    let mut renewal = tokio::time::interval_at(Instant::now() + LEASE_RENEWAL, LEASE_RENEWAL);
    renewal.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let timeout = async {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(timeout);
    loop {
        tokio::select! {
            out = &mut stage => return Supervised::Done(out),
            _ = renewal.tick() => match rows::renew(ctx, held.id, held.version, &ctx.instance).await {
                Ok(Some(version)) => held.version = version,
                Ok(None) => return Supervised::Lost,
                Err(e) => tracing::warn!(task_id = held.id, error = %e, "Could not renew a build lease; trying again."),
            },
            _ = &mut timeout => return Supervised::Timeout,
            _ = stopping.as_mut() => return Supervised::Stopped,
        }
    }
}

/// Downloads the charts and assembles the package in a fresh folder (returned: it holds the zip).
async fn prepare(ctx: &Ctx, job: &Job) -> Result<(TempDir, AssembledPackage), ApiError> {
    let mut builder = tempfile::Builder::new();
    builder.prefix("sw-build-");
    let dir = match &ctx.cfg.spool_dir {
        Some(d) => builder.tempdir_in(d),
        None => builder.tempdir(),
    }
    .map_err(|e| ApiError::internal(&e))?;
    let charts_dir = dir.path().join("charts");
    let out_dir = dir.path().join("out");
    for d in [&charts_dir, &out_dir] {
        tokio::fs::create_dir(d).await.map_err(|e| ApiError::internal(&e))?;
    }
    let mut charts = HashMap::new();
    for (component, key) in &job.charts {
        // Component names were checked as file-name safe when the task was created.
        let name = key.rsplit('/').next().unwrap_or(component);
        let path = charts_dir.join(name);
        ctx.storage.get_to_file(key, &path).await?;
        charts.insert(component.clone(), path);
    }
    let limits = BuildLimits::from_config(&ctx.cfg);
    let package_limits = ctx.limits();
    let app = job.app.clone();
    let (version, tags, creator, binders) =
        (job.version.clone(), job.tags.clone(), job.created_by.clone(), job.binders.clone());
    let assembled = tokio::task::spawn_blocking(move || {
        let req = AssembleRequest {
            app_id: &app,
            package_version: &version,
            tags: &tags,
            creator: &creator,
            binders: &binders,
            charts: &charts,
            limits: &limits,
            package_limits: &package_limits,
        };
        assemble(&req, &out_dir)
    })
    .await
    .map_err(|e| ApiError::internal(&e))?
    .map_err(build_problem)?;
    Ok((dir, assembled))
}

/// Imports the assembled zip under the task's version; returns the package id.
async fn import(ctx: &Arc<Ctx>, job: &Job, assembled: &AssembledPackage) -> Result<i64, ApiError> {
    let req = ImportRequest {
        expected_app: Some(job.app.clone()),
        version: VersionChoice::Explicit(job.version.clone()),
        force: false,
        source: PackageSource::Build,
        created_by: job.created_by.clone(),
        event: ImportEvent::Built,
        traceparent: job.traceparent.clone(),
    };
    match Importer::new(ctx.clone()).import_local_zip(&assembled.app_zip, req).await {
        Ok(out) => Ok(out.id as i64),
        Err(e) if e.code() == "package_version_exists" => match adopt(ctx, job, &assembled.sha256).await? {
            Some(id) => {
                tracing::info!(app_id = %job.app, package_version = %job.version, "Adopted the package an earlier attempt of the task stored.");
                Ok(id)
            }
            None => Err(e),
        },
        Err(e) => Err(e),
    }
}

/// The package stored under the job's version if it holds exactly `sha256` — what an earlier
/// attempt of this task imported. Waits while that package is still being imported.
async fn adopt(ctx: &Ctx, job: &Job, sha256: &str) -> Result<Option<i64>, ApiError> {
    let until = Instant::now() + Duration::from_secs(ctx.cfg.import_deadline_secs) + crate::janitor::GRACE;
    loop {
        let row: Option<(i64, String, String)> = app_package::Entity::find()
            .select_only()
            .column(app_package::Column::Id)
            .column(app_package::Column::Status)
            .column(app_package::Column::Sha256)
            .filter(app_package::Column::AppId.eq(job.app.as_str()))
            .filter(app_package::Column::PackageVersion.eq(job.version.as_str()))
            .into_tuple()
            .one(&ctx.db)
            .await
            .map_err(sw_db::api_error)?;
        match row {
            Some((id, status, sha)) if status == READY => return Ok((sha == sha256).then_some(id)),
            Some((_, status, _)) if status == IMPORTING && Instant::now() < until => {
                tokio::time::sleep(POLL_INTERVAL).await;
            }
            _ => return Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration as D, Utc};

    use super::*;

    fn task(attempts: i32, deadline_in: D) -> package_task::Model {
        let at = Utc::now();
        package_task::Model {
            id: 1,
            app_id: "demo".into(),
            status: "RUNNING".into(),
            package_version: "1.0.0+1".into(),
            tags: "[]".into(),
            components: "[]".into(),
            binders: "[]".into(),
            charts: "{}".into(),
            app_package_id: None,
            error_message: None,
            attempts,
            lease_owner: Some("w".into()),
            lease_until: Some(at),
            deadline_at: at + deadline_in,
            traceparent: None,
            created_by: "user:u".into(),
            created_at: at,
            updated_at: at,
            version: 1,
        }
    }

    #[test]
    fn claims_respect_deadline_then_attempts() {
        let now = Utc::now();
        assert_eq!(decide(&task(0, D::seconds(60)), now, "me"), Transition::Run { owner: "me".into() });
        assert_eq!(
            decide(&task(MAX_ATTEMPTS - 1, D::seconds(60)), now, "me"),
            Transition::Run { owner: "me".into() }
        );
        let Transition::Fail { message } = decide(&task(MAX_ATTEMPTS, D::seconds(60)), now, "me") else {
            panic!("a task taken {MAX_ATTEMPTS} times is not taken again")
        };
        assert!(message.starts_with("attempts_exhausted"), "{message}");
        let Transition::Fail { message } = decide(&task(0, D::seconds(-1)), now, "me") else {
            panic!("a task past its deadline is not run")
        };
        assert!(message.starts_with("Timeout"), "{message}");
    }
}
