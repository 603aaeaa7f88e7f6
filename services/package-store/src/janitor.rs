//! The janitor: removes what crashed or abandoned imports left behind.
//!
//! An import undoes its own work when it fails; what remains is what a process crash, a lost
//! database or S3 during the undo, or a killed task leaves: `IMPORTING` reservations past the
//! import deadline (with their objects), component rows no package links, and multipart uploads
//! never completed nor aborted. Build inputs (`tasks/{taskId}/…`) are deleted by the worker when
//! their task ends; the janitor removes those of ended tasks that a crash kept, and those of
//! tasks whose creation never committed. Each sweep runs at start-up and then every [`INTERVAL`], in
//! every replica — every step is safe to run concurrently (compare-and-swap on the reservation,
//! row locks on components).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sea_orm::sea_query::{Expr, Query};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};
use sw_contracts::packages::PackageTaskStatus;
use sw_http::ApiError;
use tokio_util::sync::CancellationToken;

use crate::ctx::{Ctx, now};
use crate::entity::{IMPORTING, app_package, app_package_component as link, component_package, package_task};
use crate::import::rows::{collect_component, purge};
use crate::keys::{self, APPS_PREFIX, COMPONENTS_PREFIX, TASKS_PREFIX};

/// Time between sweeps.
pub const INTERVAL: Duration = Duration::from_secs(300);
/// How long past the import deadline a reservation is left alone (commit and undo run after the
/// deadline's S3 stage).
pub const GRACE: Duration = Duration::from_secs(60);
/// Rows handled per sweep and kind (the next sweep takes the rest).
const BATCH: u64 = 100;

/// What one sweep removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Abandoned `IMPORTING` reservations, with their objects.
    pub reservations: usize,
    /// Component zips no package links.
    pub components: usize,
    /// Multipart uploads aborted.
    pub multipart_uploads: usize,
    /// Build inputs of tasks that ended or never came to be.
    pub task_objects: usize,
}

/// A handle to sweep on demand.
#[derive(Debug, Clone)]
pub struct Janitor {
    ctx: Arc<Ctx>,
}

impl Janitor {
    pub(crate) fn new(ctx: Arc<Ctx>) -> Self {
        Self { ctx }
    }

    /// One sweep now, removing what was abandoned more than `stale_after` ago (the periodic
    /// sweep uses the import deadline plus [`GRACE`]).
    pub async fn sweep(&self, stale_after: Duration) -> Result<SweepReport, ApiError> {
        sweep(&self.ctx, stale_after).await
    }
}

/// Removes what is older than `stale_after` and abandoned. Stops at the first S3 or database
/// failure (the next sweep continues).
pub(crate) async fn sweep(ctx: &Ctx, stale_after: Duration) -> Result<SweepReport, ApiError> {
    let cutoff = now() - chrono::Duration::from_std(stale_after).unwrap_or(chrono::Duration::MAX);
    let mut report = SweepReport::default();

    let stale = app_package::Entity::find()
        .filter(app_package::Column::Status.eq(IMPORTING))
        .filter(app_package::Column::UpdatedAt.lt(cutoff))
        .limit(BATCH)
        .all(&ctx.db)
        .await
        .map_err(sw_db::api_error)?;
    for seen in stale {
        let same = |r: &app_package::Model| {
            if r.status == IMPORTING && r.version == seen.version {
                Ok(())
            } else {
                Err(ApiError::conflict("version_conflict", "the reservation moved on"))
            }
        };
        // A taken-over package (generation > 1) existed before: its removal is announced.
        let announce = seen.generation > 1;
        match purge(ctx, seen.id, None, same, announce, None).await {
            Ok(Some(_)) => {
                tracing::warn!(app_id = %seen.app_id, package_version = %seen.package_version, "Removed an abandoned package import.");
                report.reservations += 1;
            }
            Ok(None) => {}
            Err(e) if e.status() == 409 => {}
            Err(e) => return Err(e),
        }
    }

    let linked = Query::select().column(link::Column::ComponentPackageId).from(link::Entity).to_owned();
    let unlinked: Vec<i64> = component_package::Entity::find()
        .select_only()
        .column(component_package::Column::Id)
        .filter(component_package::Column::UpdatedAt.lt(cutoff))
        .filter(Expr::col((component_package::Entity, component_package::Column::Id)).not_in_subquery(linked))
        .limit(BATCH)
        .into_tuple()
        .all(&ctx.db)
        .await
        .map_err(sw_db::api_error)?;
    for id in unlinked {
        if collect_component(ctx, id, false).await? {
            report.components += 1;
        }
    }

    let before = SystemTime::now() - stale_after;
    report.task_objects = sweep_task_objects(ctx, before).await?;
    for prefix in [APPS_PREFIX, COMPONENTS_PREFIX, TASKS_PREFIX] {
        report.multipart_uploads += ctx.storage.abort_stale_uploads(prefix, before).await?;
    }
    Ok(report)
}

/// Deletes build inputs whose task has ended, and those older than `before` whose task does not
/// exist (its creating transaction never committed; a younger one may still be committing).
async fn sweep_task_objects(ctx: &Ctx, before: SystemTime) -> Result<usize, ApiError> {
    let objects = ctx.storage.list(TASKS_PREFIX, (BATCH * 10) as usize).await?;
    let ids: HashSet<i64> = objects.iter().filter_map(|(k, _)| keys::task_of_key(k)).collect();
    if ids.is_empty() {
        return Ok(0);
    }
    let status: HashMap<i64, String> = package_task::Entity::find()
        .select_only()
        .column(package_task::Column::Id)
        .column(package_task::Column::Status)
        .filter(package_task::Column::Id.is_in(ids))
        .into_tuple()
        .all(&ctx.db)
        .await
        .map_err(sw_db::api_error)?
        .into_iter()
        .collect();
    let mut removed = 0;
    for (key, modified) in objects {
        let remove = match keys::task_of_key(&key).map(|id| status.get(&id)) {
            Some(Some(s)) => PackageTaskStatus::parse(s).is_some_and(PackageTaskStatus::is_final),
            Some(None) => modified.is_some_and(|m| m < before),
            // Not a task's key at all: nothing of ours writes such a key, so nothing removes it.
            None => false,
        };
        if remove {
            ctx.storage.delete(&key).await?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Sweeps at start-up and every [`INTERVAL`] until `stop`.
pub(crate) async fn run(ctx: Arc<Ctx>, stop: CancellationToken) {
    let stale_after = Duration::from_secs(ctx.cfg.import_deadline_secs) + GRACE;
    loop {
        match sweep(&ctx, stale_after).await {
            Ok(r) if r != SweepReport::default() => tracing::info!(?r, "Janitor sweep removed leftovers."),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "Janitor sweep stopped early; the next one continues."),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(INTERVAL) => {}
        }
    }
}
