//! The operations of appmeta, one file per resource, and what they share: the context, path
//! parameter parsing, timestamps and event construction here, the reads and writes of rows (each
//! write committed with its event) in [`store`].

mod apps;
mod clusters;
mod components;
mod namespaces;
mod stages;
mod store;

use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::DatabaseConnection;
use serde::Serialize;
use sw_authz::{Principal, Verifier};
use sw_bus::outbox::Outbox;
use sw_bus::{CloudEvent, Router, RpcCall, RpcReply};
use sw_contracts::IdError;
use sw_crypto::CredentialKey;
use sw_http::ApiError;

use crate::SERVICE;
use crate::authz::{self, Op};
use crate::entity::CorruptRow;

/// What every handler needs.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub db: DatabaseConnection,
    pub outbox: Outbox,
    pub verifier: Verifier,
    pub key: CredentialKey,
}

impl Ctx {
    /// The verified caller, or 401.
    async fn principal(&self, call: &RpcCall) -> Result<Principal, ApiError> {
        self.verifier.verify_call(&call.meta).await
    }
}

/// Builds the router with every operation of the service.
pub(crate) fn router(ctx: &Arc<Ctx>) -> Router {
    Router::new(SERVICE, "Apps, components, namespaces, stages and clusters")
        .route("apps.list", bind(ctx, apps::list))
        .route("apps.create", bind(ctx, apps::create))
        .route("apps.get", bind(ctx, apps::get))
        .route("apps.update", bind(ctx, apps::update))
        .route("apps.delete", bind(ctx, apps::delete))
        .route("components.list", bind(ctx, components::list))
        .route("components.create", bind(ctx, components::create))
        .route("components.get", bind(ctx, components::get))
        .route("components.update", bind(ctx, components::update))
        .route("components.delete", bind(ctx, components::delete))
        .route("namespaces.list", bind(ctx, namespaces::list))
        .route("namespaces.create", bind(ctx, namespaces::create))
        .route("namespaces.get", bind(ctx, namespaces::get))
        .route("namespaces.update", bind(ctx, namespaces::update))
        .route("namespaces.delete", bind(ctx, namespaces::delete))
        .route("stages.list", bind(ctx, stages::list))
        .route("stages.create", bind(ctx, stages::create))
        .route("stages.get", bind(ctx, stages::get))
        .route("stages.update", bind(ctx, stages::update))
        .route("stages.delete", bind(ctx, stages::delete))
        .route("clusters.list", bind(ctx, clusters::list))
        .route("clusters.create", bind(ctx, clusters::create))
        .route("clusters.get", bind(ctx, clusters::get))
        .route("clusters.update", bind(ctx, clusters::update))
        .route("clusters.delete", bind(ctx, clusters::delete))
        // Internal: asked by the k8s-executor over NATS, never routed by the gateway.
        .route("clusters.connection", bind(ctx, clusters::connection))
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

/// A path parameter parsed as an id; missing or invalid → 422 naming the parameter.
fn path_id<T>(call: &RpcCall, param: &str, parse: fn(&str) -> Result<T, IdError>) -> Result<T, ApiError> {
    let raw = call.envelope.params.get(param).ok_or_else(|| ApiError::invalid_field(param, "is required"))?;
    parse(raw).map_err(|e| ApiError::invalid_field(param, e.to_string()))
}

/// Now, at the precision the database keeps (microseconds), so a reply equals a later read.
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// An event of this service about `subject`, carrying the caller's trace context.
fn event(call: &RpcCall, name: &str, subject: impl Into<String>, data: impl Serialize) -> CloudEvent {
    let mut ev = CloudEvent::new(SERVICE, name, Some(subject.into()), data);
    ev.traceparent = call.meta.traceparent.clone();
    ev
}

/// 500 for a row that does not convert back into its DTO.
fn corrupt(e: CorruptRow) -> ApiError {
    ApiError::internal(&e)
}

/// A resource that does not exist: 404 for callers who could do `op` somewhere, 403 for the
/// rest (who learn nothing from the difference between "missing" and "not yours").
fn missing(principal: &Principal, op: Op, what: &str) -> ApiError {
    if principal.can_anywhere(authz::allowed, op) {
        ApiError::not_found(format!("{what} does not exist."))
    } else {
        ApiError::forbidden(format!("Your roles do not allow {op:?} here."))
    }
}
