//! The database steps of an import, and the removal of packages and component zips, written so
//! that rows and objects stay consistent whatever runs concurrently.
//!
//! The rules that make it safe:
//! - an app package version is reserved by its row (`UNIQUE(app_id, package_version)`) before
//!   anything is written to S3;
//! - a component zip is claimed by inserting its link in the same transaction that locks (or
//!   creates) its `component_package` row, so a component with a link is never removed;
//! - a component row is removed only under its row lock, when no link points at it, and its
//!   object is deleted before the row (a failed delete keeps the row, and the janitor retries).

use std::collections::HashSet;

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect, TransactionTrait,
};
use sw_bus::CloudEvent;
use sw_contracts::AppId;
use sw_contracts::packages::{AppPackageDeleted, AppPackageOut, Md5Status};
use sw_http::ApiError;

use crate::ctx::{Ctx, event, now, subject};
use crate::entity::{
    IMPORTING, PENDING, READY, app_package, app_package_component as link, component_package,
    md5_status_to_db,
};
use crate::store;

/// Attempts of a compare-and-swap or a deadlocked transaction before giving up.
const ATTEMPTS: usize = 5;

/// The values of an app package row, from the inspection.
#[derive(Debug, Clone)]
pub(crate) struct NewRow {
    pub app_id: AppId,
    pub package_version: String,
    pub source: &'static str,
    pub size: i64,
    pub sha256: String,
    /// JSON array.
    pub tags: String,
    pub creator: Option<String>,
    /// JSON of the parsed `meta.yaml`.
    pub meta: String,
    pub created_by: String,
}

/// The row an import holds while it writes to S3.
#[derive(Debug, Clone)]
pub(crate) struct Reservation {
    pub id: i64,
    /// The generation this import's links get.
    pub generation: i64,
    /// The row's `version` while this import holds it.
    pub version: i64,
    /// The READY row this import took over (`force`), as it was.
    pub previous: Option<app_package::Model>,
}

/// A component zip this import will link.
#[derive(Debug, Clone)]
pub(crate) struct PlannedComponent {
    pub position: i32,
    pub key: String,
    pub component_type: String,
    pub component_name: String,
    pub package_version: String,
    pub relative_path: String,
    pub size: i64,
    pub md5: String,
    pub sha256: String,
    pub md5_status: Md5Status,
}

/// The outcome of claiming one component zip.
#[derive(Debug, Clone)]
pub(crate) struct Claimed {
    pub id: i64,
    /// Whether this import must upload the object (it is not known to be in S3 with these bytes).
    pub upload: bool,
    /// Whether this import created the row (so, before any upload began, no object can exist).
    pub inserted: bool,
}

fn version_exists(row: &NewRow, detail: &str) -> ApiError {
    ApiError::conflict(
        "package_version_exists",
        format!("App {} already has package version {}{detail}.", row.app_id, row.package_version),
    )
}

/// A deadlock or lock wait timeout: the transaction was rolled back and may simply be retried.
fn is_transient(e: &DbErr) -> bool {
    let s = e.to_string();
    s.contains("Deadlock found") || s.contains("Lock wait timeout")
}

/// Reserves `row`'s version: a new `IMPORTING` row, or with `force` the existing `READY` row
/// taken over by compare-and-swap. A duplicate without `force`, or a row another import holds,
/// is 409 `package_version_exists`; nothing has been written to S3 at that point.
pub(crate) async fn reserve(ctx: &Ctx, row: &NewRow, force: bool) -> Result<Reservation, ApiError> {
    for _ in 0..ATTEMPTS {
        let at = now();
        let insert = app_package::ActiveModel {
            id: NotSet,
            app_id: Set(row.app_id.to_string()),
            package_version: Set(row.package_version.clone()),
            status: Set(IMPORTING.into()),
            source: Set(row.source.into()),
            size: Set(row.size),
            sha256: Set(row.sha256.clone()),
            tags: Set(row.tags.clone()),
            creator: Set(row.creator.clone()),
            meta: Set(row.meta.clone()),
            created_by: Set(row.created_by.clone()),
            generation: Set(1),
            version: Set(1),
            created_at: Set(at),
            updated_at: Set(at),
        };
        match app_package::Entity::insert(insert).exec(&ctx.db).await {
            Ok(r) => {
                return Ok(Reservation { id: r.last_insert_id, generation: 1, version: 1, previous: None });
            }
            Err(e) if sw_db::is_duplicate(&e) => {}
            Err(e) => return Err(sw_db::api_error(e)),
        }
        let existing = app_package::Entity::find()
            .filter(app_package::Column::AppId.eq(row.app_id.as_str()))
            .filter(app_package::Column::PackageVersion.eq(row.package_version.as_str()))
            .one(&ctx.db)
            .await
            .map_err(sw_db::api_error)?;
        // Deleted since the insert failed: try the insert again.
        let Some(existing) = existing else { continue };
        if existing.status == IMPORTING {
            return Err(version_exists(row, ", being imported right now"));
        }
        if !force {
            return Err(version_exists(row, "; import with force=true to replace it"));
        }
        let taken = app_package::Entity::update_many()
            .col_expr(app_package::Column::Status, Expr::value(IMPORTING))
            .col_expr(app_package::Column::Generation, Expr::value(existing.generation + 1))
            .col_expr(app_package::Column::Version, Expr::value(existing.version + 1))
            .col_expr(app_package::Column::UpdatedAt, Expr::value(at))
            .filter(app_package::Column::Id.eq(existing.id))
            .filter(app_package::Column::Version.eq(existing.version))
            .filter(app_package::Column::Status.eq(READY))
            .exec(&ctx.db)
            .await
            .map_err(sw_db::api_error)?;
        if taken.rows_affected == 1 {
            return Ok(Reservation {
                id: existing.id,
                generation: existing.generation + 1,
                version: existing.version + 1,
                previous: Some(existing),
            });
        }
    }
    Err(ApiError::conflict("version_conflict", "The package changed concurrently too often; retry."))
}

/// Links `components` to the reservation's generation, creating `PENDING` component rows for
/// zips not stored yet. A component stored with other bytes under the same version is 409
/// `component_version_conflict` unless `force` (which replaces it for every package using it).
/// Rows are locked in key order, so concurrent imports sharing components cannot deadlock on
/// existing rows; the gap-lock deadlocks of two first inserts are retried.
pub(crate) async fn claim(
    ctx: &Ctx,
    res: &Reservation,
    app_id: &AppId,
    components: &[PlannedComponent],
    force: bool,
) -> Result<Vec<Claimed>, ApiError> {
    let mut last = None;
    for _ in 0..ATTEMPTS {
        match claim_once(ctx, res, app_id, components, force).await {
            Err(ClaimError::Db(e)) if is_transient(&e) => last = Some(e),
            Err(ClaimError::Db(e)) => return Err(sw_db::api_error(e)),
            Err(ClaimError::Api(e)) => return Err(e),
            Ok(c) => return Ok(c),
        }
    }
    Err(last.map_or_else(
        || ApiError::conflict("version_conflict", "Components changed concurrently too often; retry."),
        sw_db::api_error,
    ))
}

enum ClaimError {
    Db(DbErr),
    Api(ApiError),
}

impl From<DbErr> for ClaimError {
    fn from(e: DbErr) -> Self {
        Self::Db(e)
    }
}

async fn claim_once(
    ctx: &Ctx,
    res: &Reservation,
    app_id: &AppId,
    components: &[PlannedComponent],
    force: bool,
) -> Result<Vec<Claimed>, ClaimError> {
    let txn = ctx.db.begin().await?;
    let mut order: Vec<usize> = (0..components.len()).collect();
    order.sort_by(|a, b| components[*a].key.cmp(&components[*b].key));
    let mut claimed: Vec<Option<Claimed>> = vec![None; components.len()];
    for i in order {
        let c = &components[i];
        let at = now();
        let existing = component_package::Entity::find()
            .filter(component_package::Column::S3Key.eq(c.key.as_str()))
            .lock_exclusive()
            .one(&txn)
            .await?;
        let outcome = match existing {
            None => {
                let row = component_package::ActiveModel {
                    id: NotSet,
                    app_id: Set(app_id.to_string()),
                    component_type: Set(c.component_type.clone()),
                    component_name: Set(c.component_name.clone()),
                    package_version: Set(c.package_version.clone()),
                    s3_key: Set(c.key.clone()),
                    status: Set(PENDING.into()),
                    size: Set(c.size),
                    md5: Set(c.md5.clone()),
                    sha256: Set(c.sha256.clone()),
                    created_at: Set(at),
                    updated_at: Set(at),
                };
                let id = component_package::Entity::insert(row).exec(&txn).await?.last_insert_id;
                Claimed { id, upload: true, inserted: true }
            }
            Some(r) if r.sha256 == c.sha256 => {
                Claimed { id: r.id, upload: r.status != READY, inserted: false }
            }
            Some(_) if !force => {
                return Err(ClaimError::Api(ApiError::conflict(
                    "component_version_conflict",
                    format!(
                        "Component {}|{} version {} is already stored with different content; \
                         give it a new version, or import with force=true to replace it.",
                        c.component_type, c.component_name, c.package_version
                    ),
                )));
            }
            Some(r) => {
                component_package::Entity::update_many()
                    .col_expr(component_package::Column::Status, Expr::value(PENDING))
                    .col_expr(component_package::Column::Size, Expr::value(c.size))
                    .col_expr(component_package::Column::Md5, Expr::value(c.md5.clone()))
                    .col_expr(component_package::Column::Sha256, Expr::value(c.sha256.clone()))
                    .col_expr(component_package::Column::UpdatedAt, Expr::value(at))
                    .filter(component_package::Column::Id.eq(r.id))
                    .exec(&txn)
                    .await?;
                Claimed { id: r.id, upload: true, inserted: false }
            }
        };
        link::Entity::insert(link::ActiveModel {
            app_package_id: Set(res.id),
            generation: Set(res.generation),
            position: Set(c.position),
            component_package_id: Set(outcome.id),
            relative_path: Set(c.relative_path.clone()),
            md5_status: Set(md5_status_to_db(c.md5_status).into()),
        })
        .exec_without_returning(&txn)
        .await?;
        claimed[i] = Some(outcome);
    }
    txn.commit().await?;
    Ok(claimed.into_iter().flatten().collect())
}

/// Makes the reservation the READY package `row` with the event `make_event(out)`, marks the
/// components this import uploaded as READY, and drops the links of the generation it replaced.
/// Returns the package and the components those old links named (to collect if now unused).
pub(crate) async fn commit(
    ctx: &Ctx,
    res: &Reservation,
    row: &NewRow,
    components: &[PlannedComponent],
    claimed: &[Claimed],
    uploaded: &HashSet<i64>,
    make_event: impl FnOnce(&AppPackageOut) -> CloudEvent,
) -> Result<(AppPackageOut, Vec<i64>), ApiError> {
    let txn = ctx.begin().await?;
    let at = now();
    let done = app_package::Entity::update_many()
        .col_expr(app_package::Column::Status, Expr::value(READY))
        .col_expr(app_package::Column::Source, Expr::value(row.source))
        .col_expr(app_package::Column::Size, Expr::value(row.size))
        .col_expr(app_package::Column::Sha256, Expr::value(row.sha256.clone()))
        .col_expr(app_package::Column::Tags, Expr::value(row.tags.clone()))
        .col_expr(app_package::Column::Creator, Expr::value(row.creator.clone()))
        .col_expr(app_package::Column::Meta, Expr::value(row.meta.clone()))
        .col_expr(app_package::Column::CreatedBy, Expr::value(row.created_by.clone()))
        .col_expr(app_package::Column::Version, Expr::value(res.version + 1))
        .col_expr(app_package::Column::CreatedAt, Expr::value(at))
        .col_expr(app_package::Column::UpdatedAt, Expr::value(at))
        .filter(app_package::Column::Id.eq(res.id))
        .filter(app_package::Column::Version.eq(res.version))
        .filter(app_package::Column::Status.eq(IMPORTING))
        .exec(&txn)
        .await
        .map_err(sw_db::api_error)?;
    if done.rows_affected != 1 {
        // Only the janitor takes a reservation away, once the import deadline has long passed.
        return Err(ApiError::unavailable("timeout", &"the import outlived its deadline and was cleaned up"));
    }
    for (c, p) in claimed.iter().zip(components) {
        if uploaded.contains(&c.id) {
            component_package::Entity::update_many()
                .col_expr(component_package::Column::Status, Expr::value(READY))
                .col_expr(component_package::Column::UpdatedAt, Expr::value(at))
                .filter(component_package::Column::Id.eq(c.id))
                .filter(component_package::Column::Sha256.eq(p.sha256.as_str()))
                .exec(&txn)
                .await
                .map_err(sw_db::api_error)?;
        }
    }
    let mut replaced = Vec::new();
    if res.previous.is_some() {
        let old = link::Entity::find()
            .filter(link::Column::AppPackageId.eq(res.id))
            .filter(link::Column::Generation.ne(res.generation))
            .all(&txn)
            .await
            .map_err(sw_db::api_error)?;
        replaced = old.iter().map(|l| l.component_package_id).collect();
        link::Entity::delete_many()
            .filter(link::Column::AppPackageId.eq(res.id))
            .filter(link::Column::Generation.ne(res.generation))
            .exec(&txn)
            .await
            .map_err(sw_db::api_error)?;
    }
    let stored = app_package::Entity::find_by_id(res.id)
        .one(&txn)
        .await
        .map_err(sw_db::api_error)?
        .ok_or_else(|| ApiError::unavailable("timeout", &"the reserved package row vanished"))?;
    let out = store::to_out(&txn, &stored).await?;
    ctx.outbox.enqueue(&txn, &make_event(&out)).await.map_err(sw_db::api_error)?;
    txn.commit().await.map_err(sw_db::api_error)?;
    ctx.outbox.wake();
    Ok((out, replaced))
}

/// Removes component `id` with its object when no package links it any more. `no_object` says
/// no object can exist (this import created the row and never started its upload), which saves
/// the S3 call — and lets cleanup finish while S3 is down. Returns whether it was removed.
pub(crate) async fn collect_component(ctx: &Ctx, id: i64, no_object: bool) -> Result<bool, ApiError> {
    let txn = ctx.begin().await?;
    let row = component_package::Entity::find_by_id(id)
        .lock_exclusive()
        .one(&txn)
        .await
        .map_err(sw_db::api_error)?;
    let Some(row) = row else { return Ok(false) };
    let links = link::Entity::find()
        .filter(link::Column::ComponentPackageId.eq(id))
        .count(&txn)
        .await
        .map_err(sw_db::api_error)?;
    if links > 0 {
        return Ok(false);
    }
    if !no_object {
        // Under the row lock: nobody can claim the component between the delete and the row's.
        ctx.storage.delete(&row.s3_key).await?;
    }
    component_package::Entity::delete_by_id(id).exec(&txn).await.map_err(sw_db::api_error)?;
    txn.commit().await.map_err(sw_db::api_error)?;
    Ok(true)
}

/// [`collect_component`] for each of `ids`, logging (not failing on) what could not be removed:
/// the janitor finds unlinked components again.
pub(crate) async fn collect_components(ctx: &Ctx, ids: impl IntoIterator<Item = i64>) {
    let mut seen = HashSet::new();
    for id in ids.into_iter().filter(|id| seen.insert(*id)) {
        if let Err(e) = collect_component(ctx, id, false).await {
            tracing::warn!(component_package_id = id, error = %e, "Could not remove an unused component zip; the janitor will retry.");
        }
    }
}

/// Removes package `id` (of `app_id` when given) with its zip, its links and, afterwards, the
/// component zips no other package uses. `check` sees the locked row first and may refuse.
/// With `announce`, `package.app.deleted` is published (carrying `traceparent`). The zip is
/// deleted while the row is locked and before the rows, so an S3 failure leaves everything as
/// it was. Returns the removed row, or `None` when there was none.
pub(crate) async fn purge(
    ctx: &Ctx,
    id: i64,
    app_id: Option<&AppId>,
    check: impl FnOnce(&app_package::Model) -> Result<(), ApiError>,
    announce: bool,
    traceparent: Option<&str>,
) -> Result<Option<app_package::Model>, ApiError> {
    let txn = ctx.begin().await?;
    let mut select = app_package::Entity::find_by_id(id).lock_exclusive();
    if let Some(app) = app_id {
        select = select.filter(app_package::Column::AppId.eq(app.as_str()));
    }
    let Some(row) = select.one(&txn).await.map_err(sw_db::api_error)? else { return Ok(None) };
    check(&row)?;
    ctx.storage.delete(&row.key()).await?;
    let links = link::Entity::find()
        .filter(link::Column::AppPackageId.eq(id))
        .all(&txn)
        .await
        .map_err(sw_db::api_error)?;
    link::Entity::delete_many()
        .filter(link::Column::AppPackageId.eq(id))
        .exec(&txn)
        .await
        .map_err(sw_db::api_error)?;
    app_package::Entity::delete_by_id(id).exec(&txn).await.map_err(sw_db::api_error)?;
    if announce {
        let data = AppPackageDeleted {
            id: id as u64,
            app_id: AppId::parse(&row.app_id).map_err(|e| ApiError::internal(&e))?,
            package_version: row.package_version.clone(),
        };
        let ev = event("package.app.deleted", subject(&row.app_id, &row.package_version), traceparent, &data);
        ctx.outbox.enqueue(&txn, &ev).await.map_err(sw_db::api_error)?;
    }
    txn.commit().await.map_err(sw_db::api_error)?;
    if announce {
        ctx.outbox.wake();
    }
    collect_components(ctx, links.into_iter().map(|l| l.component_package_id)).await;
    Ok(Some(row))
}

/// What an import had done to the app zip when it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ZipState {
    /// No request for it was sent.
    Untouched,
    /// An upload was started and did not finish cleanly: an object may or may not exist.
    Attempted,
    /// The new zip is in S3.
    Written,
}

/// Undoes a failed import: its links, the components only it used, and the reservation (a new
/// row is deleted, a taken-over row restored). Failures are logged and left to the janitor,
/// which removes reservations past the import deadline.
pub(crate) async fn undo(
    ctx: &Ctx,
    res: &Reservation,
    claimed: &[Claimed],
    started: &HashSet<i64>,
    zip: ZipState,
    traceparent: Option<&str>,
) {
    if let Err(e) = undo_inner(ctx, res, claimed, started, zip, traceparent).await {
        tracing::warn!(app_package_id = res.id, error = %e, "Could not fully undo a failed import; the janitor will finish.");
    }
}

async fn undo_inner(
    ctx: &Ctx,
    res: &Reservation,
    claimed: &[Claimed],
    started: &HashSet<i64>,
    zip: ZipState,
    traceparent: Option<&str>,
) -> Result<(), ApiError> {
    if !claimed.is_empty() {
        link::Entity::delete_many()
            .filter(link::Column::AppPackageId.eq(res.id))
            .filter(link::Column::Generation.eq(res.generation))
            .exec(&ctx.db)
            .await
            .map_err(sw_db::api_error)?;
    }
    let mut seen = HashSet::new();
    for c in claimed.iter().filter(|c| seen.insert(c.id)) {
        let no_object = c.inserted && !started.contains(&c.id);
        if let Err(e) = collect_component(ctx, c.id, no_object).await {
            tracing::warn!(component_package_id = c.id, error = %e, "Could not remove a component zip of a failed import; the janitor will retry.");
        }
    }
    let held = |r: &app_package::Model| {
        if r.version == res.version && r.status == IMPORTING {
            Ok(())
        } else {
            Err(ApiError::conflict("version_conflict", "the reservation is no longer ours"))
        }
    };
    match (&res.previous, zip) {
        (None, ZipState::Untouched) => {
            app_package::Entity::delete_many()
                .filter(app_package::Column::Id.eq(res.id))
                .filter(app_package::Column::Version.eq(res.version))
                .exec(&ctx.db)
                .await
                .map_err(sw_db::api_error)?;
        }
        (None, _) => {
            purge(ctx, res.id, None, held, false, traceparent).await?;
        }
        (Some(prev), ZipState::Untouched | ZipState::Attempted) => {
            // The old zip is still the object: multipart and single uploads replace it whole
            // or not at all.
            app_package::Entity::update_many()
                .col_expr(app_package::Column::Status, Expr::value(READY))
                .col_expr(app_package::Column::Generation, Expr::value(prev.generation))
                .col_expr(app_package::Column::Version, Expr::value(res.version + 1))
                .col_expr(app_package::Column::UpdatedAt, Expr::value(now()))
                .filter(app_package::Column::Id.eq(res.id))
                .filter(app_package::Column::Version.eq(res.version))
                .filter(app_package::Column::Status.eq(IMPORTING))
                .exec(&ctx.db)
                .await
                .map_err(sw_db::api_error)?;
        }
        (Some(_), ZipState::Written) => {
            // The old package's bytes are gone: the package is gone, and subscribers hear so.
            purge(ctx, res.id, None, held, true, traceparent).await?;
        }
    }
    Ok(())
}
