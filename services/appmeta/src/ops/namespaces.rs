//! `namespaces.*`: deployment target groupings, managed by platform operators (global scope).

use std::sync::Arc;

use sea_orm::{ColumnTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect, Set, SqlErr};
use serde::Deserialize;
use sw_authz::Scope;
use sw_bus::{RpcCall, RpcReply};
use sw_contracts::appmeta::{NamespaceDeleted, NamespaceIn, NamespacePatch};
use sw_contracts::{Name, PageQuery};
use sw_http::ApiError;

use super::store::{commit_with_event, insert_with_event, paged, update_cas};
use super::{Ctx, corrupt, event, now, path_id};
use crate::authz::{Op, allowed};
use crate::entity::{labels_to_db, namespace, stage};
use crate::validate::{self, Errors};

/// `page` and `pageSize`, refusing anything else (namespaces, stages and clusters have no filters).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct ListQuery {
    page: Option<u64>,
    page_size: Option<u64>,
}

impl ListQuery {
    pub(super) fn parse(query: &str) -> Result<PageQuery, ApiError> {
        let q: ListQuery = sw_http::parse_query(query)?;
        sw_http::page_query(q.page, q.page_size)
    }
}

pub(super) async fn find<C: sea_orm::ConnectionTrait>(
    conn: &C,
    id: &Name,
    lock: bool,
) -> Result<namespace::Model, ApiError> {
    let mut select = namespace::Entity::find_by_id(id.as_str());
    if lock {
        select = select.lock_exclusive();
    }
    select
        .one(conn)
        .await
        .map_err(sw_db::api_error)?
        .ok_or_else(|| ApiError::not_found(format!("Namespace {id} does not exist.")))
}

fn not_empty(id: &Name) -> ApiError {
    ApiError::conflict("namespace_not_empty", format!("Namespace {id} still has stages; delete them first."))
}

pub(super) async fn list(ctx: Arc<Ctx>, call: RpcCall) -> Result<RpcReply, ApiError> {
    let principal = ctx.principal(&call).await?;
    principal.require(allowed, Op::NamespaceRead, Scope::Global)?;
    let page = ListQuery::parse(&call.envelope.query)?;
    paged(&ctx.db, namespace::Entity::find(), namespace::Column::NamespaceId, &page, namespace::Model::to_out)
        .await
}

pub(super) async fn create(ctx: Arc<Ctx>, call: RpcCall) -> Result<RpcReply, ApiError> {
    let principal = ctx.principal(&call).await?;
    principal.require(allowed, Op::NamespaceCreate, Scope::Global)?;
    let mut errs = Errors::new();
    let input: NamespaceIn = validate::parse_body(call.envelope.body.clone(), &["namespaceId"], &mut errs)?;
    validate::display(&mut errs, input.name.as_deref(), input.description.as_deref(), Some(&input.labels));
    errs.finish()?;
    let at = now();
    let row = namespace::Model {
        namespace_id: input.namespace_id.to_string(),
        name: input.name.unwrap_or_else(|| input.namespace_id.to_string()),
        description: input.description,
        labels: labels_to_db(&input.labels),
        version: 1,
        created_at: at,
        updated_at: at,
    };
    let out = row.to_out().map_err(corrupt)?;
    let ev = event(&call, "appmeta.namespace.created", &row.namespace_id, &out);
    insert_with_event::<namespace::Entity>(&ctx, &row, &format!("Namespace {}", row.namespace_id), None, ev)
        .await?;
    Ok(RpcReply::created(&out).header("Location", format!("/v1/namespaces/{}", row.namespace_id)))
}

pub(super) async fn get(ctx: Arc<Ctx>, call: RpcCall) -> Result<RpcReply, ApiError> {
    let principal = ctx.principal(&call).await?;
    principal.require(allowed, Op::NamespaceRead, Scope::Global)?;
    let id = path_id(&call, "namespaceId", Name::parse)?;
    let row = find(&ctx.db, &id, false).await?;
    Ok(RpcReply::ok(row.to_out().map_err(corrupt)?))
}

pub(super) async fn update(ctx: Arc<Ctx>, call: RpcCall) -> Result<RpcReply, ApiError> {
    let principal = ctx.principal(&call).await?;
    principal.require(allowed, Op::NamespaceUpdate, Scope::Global)?;
    let id = path_id(&call, "namespaceId", Name::parse)?;
    let mut errs = Errors::new();
    let patch: NamespacePatch = validate::parse_body(call.envelope.body.clone(), &[], &mut errs)?;
    validate::display(&mut errs, patch.name.as_deref(), patch.description.as_deref(), patch.labels.as_ref());
    errs.finish()?;
    let change = |old: &namespace::Model| {
        let mut new = old.clone();
        if let Some(n) = &patch.name {
            new.name = n.clone();
        }
        if let Some(d) = &patch.description {
            new.description = Some(d.clone());
        }
        if let Some(l) = &patch.labels {
            new.labels = labels_to_db(l);
        }
        new.version = old.version + 1;
        new.updated_at = now();
        let update = namespace::Entity::update_many()
            .set(namespace::ActiveModel {
                name: Set(new.name.clone()),
                description: Set(new.description.clone()),
                labels: Set(new.labels.clone()),
                version: Set(new.version),
                updated_at: Set(new.updated_at),
                ..Default::default()
            })
            .filter(namespace::Column::NamespaceId.eq(old.namespace_id.as_str()))
            .filter(namespace::Column::Version.eq(old.version));
        Ok((new, update))
    };
    let key = id.clone();
    update_cas(
        &ctx,
        &format!("Namespace {id}"),
        async move |txn| find(txn, &key, false).await,
        change,
        namespace::Model::to_out,
        |out| event(&call, "appmeta.namespace.updated", out.namespace_id.as_str(), out),
    )
    .await
}

pub(super) async fn delete(ctx: Arc<Ctx>, call: RpcCall) -> Result<RpcReply, ApiError> {
    let principal = ctx.principal(&call).await?;
    principal.require(allowed, Op::NamespaceDelete, Scope::Global)?;
    let id = path_id(&call, "namespaceId", Name::parse)?;
    let txn = ctx.begin().await?;
    // The lock makes a concurrent stage insert wait for us and then fail its foreign-key check.
    let row = find(&txn, &id, true).await?;
    let stages = stage::Entity::find()
        .filter(stage::Column::NamespaceId.eq(row.namespace_id.as_str()))
        .count(&txn)
        .await
        .map_err(sw_db::api_error)?;
    if stages > 0 {
        return Err(not_empty(&id));
    }
    namespace::Entity::delete_by_id(row.namespace_id.as_str()).exec(&txn).await.map_err(|e: DbErr| {
        // A stage committed between the count and the delete still holds the foreign key.
        if matches!(e.sql_err(), Some(SqlErr::ForeignKeyConstraintViolation(_))) {
            not_empty(&id)
        } else {
            sw_db::api_error(e)
        }
    })?;
    let data = NamespaceDeleted { namespace_id: id.clone() };
    commit_with_event(&ctx, txn, event(&call, "appmeta.namespace.deleted", id.as_str(), &data)).await?;
    Ok(RpcReply::no_content())
}
