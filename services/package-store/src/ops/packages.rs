//! `packages.*` reads and deletes, authorized in the app's scope.

use std::sync::Arc;
use std::time::Duration;

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect};
use sw_bus::{RpcCall, RpcReply};
use sw_contracts::packages::{
    AppPackageListQuery, DownloadSourceOut, DownloadUrlOut, DownloadUrlQuery, LatestVersionOut,
};
use sw_contracts::{AppId, Page};
use sw_http::ApiError;

use super::{app_param, package_param};
use crate::authz::{self, Op};
use crate::build::version;
use crate::ctx::{Ctx, now};
use crate::entity::{IMPORTING, READY, app_package};
use crate::import::ready_versions;
use crate::import::rows::purge;
use crate::launch;
use crate::store::{self, corrupt, not_found};

/// Lifetime of the URL the gateway streams a download from.
const INTERNAL_URL_LIFETIME: Duration = Duration::from_secs(300);

/// The caller, authorized for `op` on the path's app.
pub(super) async fn authorized(ctx: &Ctx, call: &RpcCall, op: Op) -> Result<AppId, ApiError> {
    let principal = ctx.principal(call).await?;
    let app = app_param(call)?;
    authz::require(&principal, op, &app)?;
    Ok(app)
}

pub(super) async fn list(ctx: Arc<Ctx>, call: RpcCall) -> Result<RpcReply, ApiError> {
    let app = authorized(&ctx, &call, Op::PackageRead).await?;
    let q: AppPackageListQuery = sw_http::parse_query(&call.envelope.query)?;
    let page = sw_http::page_query(q.page, q.page_size)?;
    let mut select = app_package::Entity::find()
        .filter(app_package::Column::AppId.eq(app.as_str()))
        .filter(app_package::Column::Status.eq(READY));
    if let Some(v) = &q.version {
        select = select.filter(app_package::Column::PackageVersion.eq(v.as_str()));
    }
    if let Some(tag) = &q.tag {
        // One JSON string among the tags, compared exactly.
        select = select.filter(Expr::cust_with_values(
            "JSON_CONTAINS(`app_package`.`tags`, JSON_QUOTE(?))",
            [tag.clone()],
        ));
    }
    let total = select.clone().count(&ctx.db).await.map_err(sw_db::api_error)?;
    let rows = select
        .order_by_desc(app_package::Column::Id)
        .offset(page.offset())
        .limit(page.page_size())
        .all(&ctx.db)
        .await
        .map_err(sw_db::api_error)?;
    let items = store::to_outs(&ctx.db, &rows).await?;
    Ok(RpcReply::ok(Page::new(items, &page, total)))
}

pub(super) async fn get(ctx: Arc<Ctx>, call: RpcCall) -> Result<RpcReply, ApiError> {
    let app = authorized(&ctx, &call, Op::PackageRead).await?;
    let row = store::find_ready(&ctx.db, &app, package_param(&call)?).await?;
    Ok(RpcReply::ok(store::to_out(&ctx.db, &row).await?))
}

pub(super) async fn latest_version(ctx: Arc<Ctx>, call: RpcCall) -> Result<RpcReply, ApiError> {
    let app = authorized(&ctx, &call, Op::PackageRead).await?;
    let versions = ready_versions(&ctx, &app).await?;
    // Versions that do not parse (imported from elsewhere) only count when nothing else does.
    let latest = version::max_version(versions.iter().map(|(_, v)| v.as_str()))
        .and_then(|v| versions.iter().find(|(_, s)| s == v))
        .or_else(|| versions.iter().max_by_key(|(id, _)| *id))
        .ok_or_else(|| not_found(&app, "yet"))?;
    let out = LatestVersionOut {
        app_id: app.clone(),
        package_version: latest.1.clone(),
        app_package_id: latest.0 as u64,
        next_version: version::next_version(Some(&latest.1), now()),
    };
    Ok(RpcReply::ok(out))
}

pub(super) async fn delete(ctx: Arc<Ctx>, call: RpcCall) -> Result<RpcReply, ApiError> {
    let app = authorized(&ctx, &call, Op::PackageDelete).await?;
    let id = package_param(&call)?;
    let check = |row: &app_package::Model| {
        if row.status == IMPORTING {
            return Err(ApiError::conflict(
                "package_in_use",
                format!("Package {id} of app {app} is being imported right now; retry when that finished."),
            ));
        }
        Ok(())
    };
    match purge(&ctx, id, Some(&app), check, true, call.meta.traceparent.as_deref()).await? {
        Some(_) => Ok(RpcReply::no_content()),
        None => Err(not_found(&app, id)),
    }
}

pub(super) async fn launch_yaml(ctx: Arc<Ctx>, call: RpcCall) -> Result<RpcReply, ApiError> {
    let app = authorized(&ctx, &call, Op::PackageRead).await?;
    let row = store::find_ready(&ctx.db, &app, package_param(&call)?).await?;
    let out = store::to_out(&ctx.db, &row).await?;
    let yaml = launch::application_configuration(&out).map_err(|e| ApiError::internal(&e))?;
    Ok(RpcReply::ok(yaml).header("content-type", "application/yaml"))
}

pub(super) async fn download(ctx: Arc<Ctx>, call: RpcCall) -> Result<RpcReply, ApiError> {
    let app = authorized(&ctx, &call, Op::PackageRead).await?;
    let row = store::find_ready(&ctx.db, &app, package_param(&call)?).await?;
    let url = ctx.storage.presign_get(&row.key(), INTERNAL_URL_LIFETIME, false, None).await?;
    let out = DownloadSourceOut {
        url,
        size: crate::entity::unsigned("size", row.size).map_err(corrupt)?,
        sha256: row.sha256.clone(),
        filename: filename(&row),
    };
    Ok(RpcReply::ok(out))
}

pub(super) async fn download_url(ctx: Arc<Ctx>, call: RpcCall) -> Result<RpcReply, ApiError> {
    let app = authorized(&ctx, &call, Op::PackageRead).await?;
    let q: DownloadUrlQuery = sw_http::parse_query(&call.envelope.query)?;
    let max = ctx.cfg.presign_max_expiry_secs;
    let secs = q.expires_in.unwrap_or(ctx.cfg.presign_expiry_secs);
    if secs == 0 || secs > max {
        return Err(ApiError::invalid_field("expiresIn", format!("must be 1..={max} seconds")));
    }
    let row = store::find_ready(&ctx.db, &app, package_param(&call)?).await?;
    let issued = now();
    let url =
        ctx.storage.presign_get(&row.key(), Duration::from_secs(secs), true, Some(&filename(&row))).await?;
    let out = DownloadUrlOut {
        url,
        expires_at: issued + chrono::Duration::seconds(secs as i64),
        size: crate::entity::unsigned("size", row.size).map_err(corrupt)?,
        sha256: row.sha256.clone(),
    };
    Ok(RpcReply::ok(out))
}

/// `{appId}-{packageVersion}.zip` (both hold only key-safe characters).
fn filename(row: &app_package::Model) -> String {
    format!("{}-{}.zip", row.app_id, row.package_version)
}
