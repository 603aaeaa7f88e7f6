//! `stages.*`: the stages of a namespace (global scope, like namespaces).

use std::sync::Arc;

use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Set, TransactionTrait,
};
use sw_authz::Scope;
use sw_bus::{RpcCall, RpcReply};
use sw_contracts::appmeta::{StageDeleted, StageIn, StagePatch};
use sw_contracts::{Name, Page};
use sw_http::ApiError;

use super::namespaces::{ListQuery, find as find_namespace};
use super::{CAS_ATTEMPTS, Ctx, corrupt, event, insert_error, now, path_id, version_conflict};
use crate::authz::{Op, allowed};
use crate::entity::{labels_to_db, stage};
use crate::validate::{self, Errors};

fn subject(ns: &Name, id: &Name) -> String {
    format!("{ns}/{id}")
}

async fn find<C: sea_orm::ConnectionTrait>(conn: &C, ns: &Name, id: &Name) -> Result<stage::Model, ApiError> {
    stage::Entity::find_by_id((ns.to_string(), id.to_string()))
        .one(conn)
        .await
        .map_err(sw_db::api_error)?
        .ok_or_else(|| ApiError::not_found(format!("Stage {id} of namespace {ns} does not exist.")))
}

pub(super) async fn list(ctx: Arc<Ctx>, call: RpcCall) -> Result<RpcReply, ApiError> {
    let principal = ctx.principal(&call).await?;
    principal.require(allowed, Op::StageRead, Scope::Global)?;
    let page = ListQuery::parse(&call.envelope.query)?;
    let ns = path_id(&call, "namespaceId", Name::parse)?;
    find_namespace(&ctx.db, &ns, false).await?;
    let select = stage::Entity::find().filter(stage::Column::NamespaceId.eq(ns.as_str()));
    let total = select.clone().count(&ctx.db).await.map_err(sw_db::api_error)?;
    let rows = select
        .order_by_asc(stage::Column::StageId)
        .offset(page.offset())
        .limit(page.page_size())
        .all(&ctx.db)
        .await
        .map_err(sw_db::api_error)?;
    let items = rows.iter().map(stage::Model::to_out).collect::<Result<Vec<_>, _>>().map_err(corrupt)?;
    Ok(RpcReply::ok(Page::new(items, &page, total)))
}

pub(super) async fn create(ctx: Arc<Ctx>, call: RpcCall) -> Result<RpcReply, ApiError> {
    let principal = ctx.principal(&call).await?;
    principal.require(allowed, Op::StageCreate, Scope::Global)?;
    let ns = path_id(&call, "namespaceId", Name::parse)?;
    let mut errs = Errors::new();
    let input: StageIn = validate::parse_body(call.envelope.body.clone(), &["stageId"], &mut errs)?;
    if let Some(n) = &input.name {
        validate::name(&mut errs, "name", n);
    }
    validate::description(&mut errs, "description", input.description.as_deref());
    validate::labels(&mut errs, "labels", &input.labels);
    errs.finish()?;
    find_namespace(&ctx.db, &ns, false).await?;
    let at = now();
    let row = stage::Model {
        namespace_id: ns.to_string(),
        stage_id: input.stage_id.to_string(),
        name: input.name.unwrap_or_else(|| input.stage_id.to_string()),
        description: input.description,
        production: input.production,
        labels: labels_to_db(&input.labels),
        version: 1,
        created_at: at,
        updated_at: at,
    };
    let out = row.to_out().map_err(corrupt)?;
    let txn = ctx.db.begin().await.map_err(sw_db::api_error)?;
    // The foreign key turns a namespace deleted since the check above into a 404 here.
    stage::Entity::insert(row.clone().into_active_model().reset_all())
        .exec_without_returning(&txn)
        .await
        .map_err(|e| {
            insert_error(
                e,
                &format!("Stage {} of namespace {ns}", input.stage_id),
                Some(&format!("Namespace {ns}")),
            )
        })?;
    ctx.outbox
        .enqueue(&txn, &event(&call, "appmeta.stage.created", subject(&ns, &input.stage_id), &out))
        .await
        .map_err(sw_db::api_error)?;
    txn.commit().await.map_err(sw_db::api_error)?;
    ctx.outbox.wake();
    Ok(RpcReply::created(&out).header("Location", format!("/v1/namespaces/{ns}/stages/{}", input.stage_id)))
}

pub(super) async fn get(ctx: Arc<Ctx>, call: RpcCall) -> Result<RpcReply, ApiError> {
    let principal = ctx.principal(&call).await?;
    principal.require(allowed, Op::StageRead, Scope::Global)?;
    let ns = path_id(&call, "namespaceId", Name::parse)?;
    let id = path_id(&call, "stageId", Name::parse)?;
    find_namespace(&ctx.db, &ns, false).await?;
    let row = find(&ctx.db, &ns, &id).await?;
    Ok(RpcReply::ok(row.to_out().map_err(corrupt)?))
}

pub(super) async fn update(ctx: Arc<Ctx>, call: RpcCall) -> Result<RpcReply, ApiError> {
    let principal = ctx.principal(&call).await?;
    principal.require(allowed, Op::StageUpdate, Scope::Global)?;
    let ns = path_id(&call, "namespaceId", Name::parse)?;
    let id = path_id(&call, "stageId", Name::parse)?;
    let mut errs = Errors::new();
    let patch: StagePatch = validate::parse_body(call.envelope.body.clone(), &[], &mut errs)?;
    if let Some(n) = &patch.name {
        validate::name(&mut errs, "name", n);
    }
    validate::description(&mut errs, "description", patch.description.as_deref());
    if let Some(l) = &patch.labels {
        validate::labels(&mut errs, "labels", l);
    }
    errs.finish()?;
    find_namespace(&ctx.db, &ns, false).await?;
    for _ in 0..CAS_ATTEMPTS {
        let txn = ctx.db.begin().await.map_err(sw_db::api_error)?;
        let old = find(&txn, &ns, &id).await?;
        let mut new = old.clone();
        if let Some(n) = &patch.name {
            new.name = n.clone();
        }
        if let Some(d) = &patch.description {
            new.description = Some(d.clone());
        }
        if let Some(p) = patch.production {
            new.production = p;
        }
        if let Some(l) = &patch.labels {
            new.labels = labels_to_db(l);
        }
        new.version = old.version + 1;
        new.updated_at = now();
        let changed = stage::Entity::update_many()
            .set(stage::ActiveModel {
                name: Set(new.name.clone()),
                description: Set(new.description.clone()),
                production: Set(new.production),
                labels: Set(new.labels.clone()),
                version: Set(new.version),
                updated_at: Set(new.updated_at),
                ..Default::default()
            })
            .filter(stage::Column::NamespaceId.eq(old.namespace_id.as_str()))
            .filter(stage::Column::StageId.eq(old.stage_id.as_str()))
            .filter(stage::Column::Version.eq(old.version))
            .exec(&txn)
            .await
            .map_err(sw_db::api_error)?;
        if changed.rows_affected == 0 {
            txn.rollback().await.map_err(sw_db::api_error)?;
            continue;
        }
        let out = new.to_out().map_err(corrupt)?;
        ctx.outbox
            .enqueue(&txn, &event(&call, "appmeta.stage.updated", subject(&ns, &id), &out))
            .await
            .map_err(sw_db::api_error)?;
        txn.commit().await.map_err(sw_db::api_error)?;
        ctx.outbox.wake();
        return Ok(RpcReply::ok(out));
    }
    Err(version_conflict(&format!("Stage {id} of namespace {ns}")))
}

pub(super) async fn delete(ctx: Arc<Ctx>, call: RpcCall) -> Result<RpcReply, ApiError> {
    let principal = ctx.principal(&call).await?;
    principal.require(allowed, Op::StageDelete, Scope::Global)?;
    let ns = path_id(&call, "namespaceId", Name::parse)?;
    let id = path_id(&call, "stageId", Name::parse)?;
    find_namespace(&ctx.db, &ns, false).await?;
    let txn = ctx.db.begin().await.map_err(sw_db::api_error)?;
    let deleted = stage::Entity::delete_by_id((ns.to_string(), id.to_string()))
        .exec(&txn)
        .await
        .map_err(sw_db::api_error)?;
    if deleted.rows_affected == 0 {
        return Err(ApiError::not_found(format!("Stage {id} of namespace {ns} does not exist.")));
    }
    let data = StageDeleted { namespace_id: ns.clone(), stage_id: id.clone() };
    ctx.outbox
        .enqueue(&txn, &event(&call, "appmeta.stage.deleted", subject(&ns, &id), &data))
        .await
        .map_err(sw_db::api_error)?;
    txn.commit().await.map_err(sw_db::api_error)?;
    ctx.outbox.wake();
    Ok(RpcReply::no_content())
}
