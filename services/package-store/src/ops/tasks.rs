//! `package-tasks.*`: create a build task (a streamed body, see [`crate::build_tasks`]), and read
//! tasks. Creating needs the right to write the app's packages, reading the right to read them.

use std::sync::Arc;

use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::Deserialize;
use sw_bus::{BlobReader, RpcCall, RpcReply};
use sw_contracts::Page;
use sw_contracts::packages::{PackageTaskListQuery, PackageTaskQuery};
use sw_http::ApiError;

use super::app_param;
use crate::authz::{self, Op};
use crate::build::BuildLimits;
use crate::build_tasks::create::{self, CreateRequest};
use crate::build_tasks::{receive, rows};
use crate::ctx::Ctx;
use crate::entity::package_task;
use crate::store::corrupt;

/// What the gateway tells about the streamed body.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BodyInfo {
    #[serde(default)]
    content_type: Option<String>,
    #[serde(default)]
    content_length: Option<u64>,
}

pub(super) async fn create(ctx: Arc<Ctx>, call: RpcCall, body: BlobReader) -> Result<RpcReply, ApiError> {
    let principal = ctx.principal(&call).await?;
    let app = app_param(&call)?;
    // Refused before a byte of the body is read.
    authz::require(&principal, Op::PackageWrite, &app)?;
    let query: PackageTaskQuery = sw_http::parse_query(&call.envelope.query)?;
    let info: BodyInfo = match call.envelope.body.clone() {
        Some(v) => serde_json::from_value(v).map_err(|e| ApiError::invalid_field("body", e.to_string()))?,
        None => BodyInfo::default(),
    };
    let limits = BuildLimits::from_config(&ctx.cfg);
    let received = receive::receive(
        body,
        info.content_type.as_deref(),
        info.content_length,
        ctx.cfg.spool_dir.as_deref(),
        &limits,
    )
    .await?;
    let req = CreateRequest {
        app,
        query,
        received,
        created_by: principal.subject.clone(),
        traceparent: call.meta.traceparent.clone(),
    };
    let out = create::create(ctx.clone(), req).await?;
    let location = format!("/v1/apps/{}/app-package-tasks/{}", out.app_id, out.id);
    Ok(RpcReply::with_status(202, &out).header("Location", location))
}

pub(super) async fn get(ctx: Arc<Ctx>, call: RpcCall) -> Result<RpcReply, ApiError> {
    let principal = ctx.principal(&call).await?;
    let app = app_param(&call)?;
    authz::require(&principal, Op::PackageRead, &app)?;
    let raw =
        call.envelope.params.get("taskId").ok_or_else(|| ApiError::invalid_field("taskId", "is required"))?;
    let id = raw
        .parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::invalid_field("taskId", "must be a positive integer"))?;
    let row = rows::find(&ctx.db, &app, id).await?;
    Ok(RpcReply::ok(row.to_out().map_err(corrupt)?))
}

pub(super) async fn list(ctx: Arc<Ctx>, call: RpcCall) -> Result<RpcReply, ApiError> {
    let principal = ctx.principal(&call).await?;
    let app = app_param(&call)?;
    authz::require(&principal, Op::PackageRead, &app)?;
    let q: PackageTaskListQuery = sw_http::parse_query(&call.envelope.query)?;
    let page = sw_http::page_query(q.page, q.page_size)?;
    let mut select = package_task::Entity::find().filter(package_task::Column::AppId.eq(app.as_str()));
    if let Some(status) = q.status {
        select = select.filter(package_task::Column::Status.eq(status.as_str()));
    }
    let total = select.clone().count(&ctx.db).await.map_err(sw_db::api_error)?;
    let rows = select
        .order_by_desc(package_task::Column::Id)
        .offset(page.offset())
        .limit(page.page_size())
        .all(&ctx.db)
        .await
        .map_err(sw_db::api_error)?;
    let items = rows.iter().map(|r| r.to_out().map_err(corrupt)).collect::<Result<Vec<_>, _>>()?;
    Ok(RpcReply::ok(Page::new(items, &page, total)))
}
