//! The NATS operations of package-store (`{prefix}.api.package-store.<op>`): the import (a
//! streamed body, see [`import`]), the reads and deletes of packages ([`packages`]), the workloads
//! of a package's components ([`components`]), and build tasks ([`tasks`], also streamed).

mod components;
mod import;
mod packages;
mod tasks;

pub(crate) use components::{CACHE_MAX_BYTES, CACHE_MAX_ENTRIES, WorkloadCache};

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use sw_bus::{BlobReader, Router, RpcCall, RpcReply};
use sw_contracts::AppId;
use sw_http::ApiError;

use crate::SERVICE;
use crate::ctx::Ctx;

/// Throughput below which an upload is given up on as a whole (the idle timeout catches stalls
/// much sooner): it sizes the deadline of the streamed call, body included.
const SLOWEST_UPLOAD_BYTES_PER_SEC: u64 = 1024 * 1024;

/// Builds the router with every operation of the service.
pub(crate) fn router(ctx: &Arc<Ctx>) -> Router {
    let idle = Duration::from_secs(ctx.cfg.upload_idle_timeout_secs);
    let deadline = Duration::from_secs(
        ctx.cfg.import_deadline_secs + ctx.cfg.max_package_bytes / SLOWEST_UPLOAD_BYTES_PER_SEC,
    );
    let import_ctx = ctx.clone();
    let build_ctx = ctx.clone();
    Router::new(SERVICE, "App packages: import, list, download, delete")
        .route_streaming("packages.import", idle, deadline, move |call: RpcCall, body: BlobReader| {
            import::import(import_ctx.clone(), call, body)
        })
        .route("packages.list", bind(ctx, packages::list))
        .route("packages.get", bind(ctx, packages::get))
        .route("packages.latest-version", bind(ctx, packages::latest_version))
        .route("packages.delete", bind(ctx, packages::delete))
        .route("packages.launch-yaml", bind(ctx, packages::launch_yaml))
        .route("packages.components", bind(ctx, components::components))
        .route("packages.download", bind(ctx, packages::download))
        .route("packages.download-url", bind(ctx, packages::download_url))
        .route_streaming("package-tasks.create", idle, deadline, move |call: RpcCall, body: BlobReader| {
            tasks::create(build_ctx.clone(), call, body)
        })
        .route("package-tasks.get", bind(ctx, tasks::get))
        .route("package-tasks.list", bind(ctx, tasks::list))
}

/// Turns `handler(ctx, call)` into a route closure holding its own reference to the context.
fn bind<F, Fut>(ctx: &Arc<Ctx>, handler: F) -> impl Fn(RpcCall) -> Fut + Send + Sync + 'static
where
    F: Fn(Arc<Ctx>, RpcCall) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<RpcReply, ApiError>> + Send + 'static,
{
    let ctx = ctx.clone();
    move |call| handler(ctx.clone(), call)
}

/// The `appId` path parameter; missing or invalid → 422.
fn app_param(call: &RpcCall) -> Result<AppId, ApiError> {
    let raw =
        call.envelope.params.get("appId").ok_or_else(|| ApiError::invalid_field("appId", "is required"))?;
    AppId::parse(raw).map_err(|e| ApiError::invalid_field("appId", e.to_string()))
}

/// The `appPackageId` path parameter (a positive number); missing or invalid → 422.
fn package_param(call: &RpcCall) -> Result<i64, ApiError> {
    let raw = call
        .envelope
        .params
        .get("appPackageId")
        .ok_or_else(|| ApiError::invalid_field("appPackageId", "is required"))?;
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::invalid_field("appPackageId", "must be a positive integer"))
}
