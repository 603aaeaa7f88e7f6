//! The janitor: removes what crashed or abandoned imports left behind.
//!
//! An import undoes its own work when it fails; what remains is what a process crash, a lost
//! database or S3 during the undo, or a killed task leaves: `IMPORTING` reservations past the
//! import deadline (with their objects), component rows no package links, and multipart uploads
//! never completed nor aborted. Each sweep runs at start-up and then every [`INTERVAL`], in
//! every replica — every step is safe to run concurrently (compare-and-swap on the reservation,
//! row locks on components).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sea_orm::sea_query::{Expr, Query};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};
use sw_http::ApiError;
use tokio_util::sync::CancellationToken;

use crate::ctx::{Ctx, now};
use crate::entity::{IMPORTING, app_package, app_package_component as link, component_package};
use crate::import::rows::{collect_component, purge};
use crate::keys::{APPS_PREFIX, COMPONENTS_PREFIX};

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
    for prefix in [APPS_PREFIX, COMPONENTS_PREFIX] {
        report.multipart_uploads += ctx.storage.abort_stale_uploads(prefix, before).await?;
    }
    Ok(report)
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
