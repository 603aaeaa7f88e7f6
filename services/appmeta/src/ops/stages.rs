//! `stages.*`: the stages of a namespace (global scope, like namespaces).

use std::sync::Arc;

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, Set};
use sw_authz::Scope;
use sw_bus::{RpcCall, RpcReply};
use sw_contracts::Name;
use sw_contracts::appmeta::{StageDeleted, StageIn, StagePatch};
use sw_http::ApiError;

use super::namespaces::{ListQuery, find as find_namespace};
use super::store::{delete_with_event, insert_with_event, paged, update_cas};
use super::{Ctx, corrupt, event, now, path_id};
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
    paged(&ctx.db, select, stage::Column::StageId, &page, stage::Model::to_out).await
}

pub(super) async fn create(ctx: Arc<Ctx>, call: RpcCall) -> Result<RpcReply, ApiError> {
    let principal = ctx.principal(&call).await?;
    principal.require(allowed, Op::StageCreate, Scope::Global)?;
    let ns = path_id(&call, "namespaceId", Name::parse)?;
    let mut errs = Errors::new();
    let input: StageIn = validate::parse_body(call.envelope.body.clone(), &["stageId"], &mut errs)?;
    validate::display(&mut errs, input.name.as_deref(), input.description.as_deref(), Some(&input.labels));
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
    let ev = event(&call, "appmeta.stage.created", subject(&ns, &input.stage_id), &out);
    // The foreign key turns a namespace deleted since the check above into a 404 here.
    insert_with_event::<stage::Entity>(
        &ctx,
        &row,
        &format!("Stage {} of namespace {ns}", input.stage_id),
        Some(&format!("Namespace {ns}")),
        ev,
    )
    .await?;
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
    validate::display(&mut errs, patch.name.as_deref(), patch.description.as_deref(), patch.labels.as_ref());
    errs.finish()?;
    find_namespace(&ctx.db, &ns, false).await?;
    let change = |old: &stage::Model| {
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
        let update = stage::Entity::update_many()
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
            .filter(stage::Column::Version.eq(old.version));
        Ok((new, update))
    };
    let key = (ns.clone(), id.clone());
    update_cas(
        &ctx,
        &format!("Stage {id} of namespace {ns}"),
        async move |txn| find(txn, &key.0, &key.1).await,
        change,
        stage::Model::to_out,
        |out| event(&call, "appmeta.stage.updated", subject(&ns, &id), out),
    )
    .await
}

pub(super) async fn delete(ctx: Arc<Ctx>, call: RpcCall) -> Result<RpcReply, ApiError> {
    let principal = ctx.principal(&call).await?;
    principal.require(allowed, Op::StageDelete, Scope::Global)?;
    let ns = path_id(&call, "namespaceId", Name::parse)?;
    let id = path_id(&call, "stageId", Name::parse)?;
    find_namespace(&ctx.db, &ns, false).await?;
    let data = StageDeleted { namespace_id: ns.clone(), stage_id: id.clone() };
    delete_with_event(
        &ctx,
        stage::Entity::delete_by_id((ns.to_string(), id.to_string())),
        &format!("Stage {id} of namespace {ns}"),
        event(&call, "appmeta.stage.deleted", subject(&ns, &id), &data),
    )
    .await?;
    Ok(RpcReply::no_content())
}
