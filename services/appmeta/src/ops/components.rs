//! `components.*`: the components of one app, authorized in the app's scope.

use std::sync::Arc;

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect, Set};
use sw_bus::{RpcCall, RpcReply};
use sw_contracts::appmeta::{ComponentDeleted, ComponentListQuery};
use sw_contracts::{AppId, Name};
use sw_http::ApiError;

use super::apps::load_authorized;
use super::store::{commit_with_event, insert_with_event, paged, update_cas};
use super::{Ctx, corrupt, event, now, path_id};
use crate::authz::Op;
use crate::entity::component;
use crate::spec::{parse_component_in, parse_component_patch};

fn subject(app_id: &AppId, name: &Name) -> String {
    format!("{app_id}/{name}")
}

async fn find<C: sea_orm::ConnectionTrait>(
    conn: &C,
    app_id: &AppId,
    name: &Name,
    lock: bool,
) -> Result<component::Model, ApiError> {
    let mut select = component::Entity::find_by_id((app_id.to_string(), name.to_string()));
    if lock {
        select = select.lock_exclusive();
    }
    select
        .one(conn)
        .await
        .map_err(sw_db::api_error)?
        .ok_or_else(|| ApiError::not_found(format!("Component {name} of app {app_id} does not exist.")))
}

pub(super) async fn list(ctx: Arc<Ctx>, call: RpcCall) -> Result<RpcReply, ApiError> {
    let principal = ctx.principal(&call).await?;
    let app_id = path_id(&call, "appId", AppId::parse)?;
    load_authorized(&ctx.db, &principal, Op::ComponentRead, &app_id, false).await?;
    let q: ComponentListQuery = sw_http::parse_query(&call.envelope.query)?;
    let mut select = component::Entity::find().filter(component::Column::AppId.eq(app_id.as_str()));
    if let Some(t) = q.component_type {
        select = select.filter(component::Column::ComponentType.eq(t.as_str()));
    }
    let page = sw_http::page_query(q.page, q.page_size)?;
    paged(&ctx.db, select, component::Column::ComponentName, &page, component::Model::to_out).await
}

pub(super) async fn create(ctx: Arc<Ctx>, call: RpcCall) -> Result<RpcReply, ApiError> {
    let principal = ctx.principal(&call).await?;
    let app_id = path_id(&call, "appId", AppId::parse)?;
    load_authorized(&ctx.db, &principal, Op::ComponentCreate, &app_id, false).await?;
    let input = parse_component_in(call.envelope.body.clone())?;
    let at = now();
    let row = component::Model {
        app_id: app_id.to_string(),
        component_name: input.component_name.to_string(),
        component_type: input.spec.component_type().as_str().to_owned(),
        description: input.description,
        spec: component::spec_to_db(&input.spec),
        version: 1,
        created_at: at,
        updated_at: at,
    };
    let out = row.to_out().map_err(corrupt)?;
    let ev = event(&call, "appmeta.component.created", subject(&app_id, &input.component_name), &out);
    // The foreign key turns an app deleted since the check above into a 404 here.
    insert_with_event::<component::Entity>(
        &ctx,
        &row,
        &format!("Component {} of app {app_id}", input.component_name),
        Some(&format!("App {app_id}")),
        ev,
    )
    .await?;
    Ok(RpcReply::created(&out)
        .header("Location", format!("/v1/apps/{app_id}/components/{}", input.component_name)))
}

pub(super) async fn get(ctx: Arc<Ctx>, call: RpcCall) -> Result<RpcReply, ApiError> {
    let principal = ctx.principal(&call).await?;
    let app_id = path_id(&call, "appId", AppId::parse)?;
    let name = path_id(&call, "componentName", Name::parse)?;
    load_authorized(&ctx.db, &principal, Op::ComponentRead, &app_id, false).await?;
    let row = find(&ctx.db, &app_id, &name, false).await?;
    Ok(RpcReply::ok(row.to_out().map_err(corrupt)?))
}

pub(super) async fn update(ctx: Arc<Ctx>, call: RpcCall) -> Result<RpcReply, ApiError> {
    let principal = ctx.principal(&call).await?;
    let app_id = path_id(&call, "appId", AppId::parse)?;
    let name = path_id(&call, "componentName", Name::parse)?;
    load_authorized(&ctx.db, &principal, Op::ComponentUpdate, &app_id, false).await?;
    // The type never changes, so the body can be checked against the first read.
    let current = find(&ctx.db, &app_id, &name, false).await?;
    let change =
        parse_component_patch(call.envelope.body.clone(), current.component_type().map_err(corrupt)?)?;
    let change = |old: &component::Model| {
        let mut new = old.clone();
        if let Some(d) = &change.description {
            new.description = Some(d.clone());
        }
        if let Some(s) = &change.spec {
            new.spec = component::spec_to_db(s);
        }
        new.version = old.version + 1;
        new.updated_at = now();
        let update = component::Entity::update_many()
            .set(component::ActiveModel {
                description: Set(new.description.clone()),
                spec: Set(new.spec.clone()),
                version: Set(new.version),
                updated_at: Set(new.updated_at),
                ..Default::default()
            })
            .filter(component::Column::AppId.eq(old.app_id.as_str()))
            .filter(component::Column::ComponentName.eq(old.component_name.as_str()))
            .filter(component::Column::Version.eq(old.version));
        Ok((new, update))
    };
    let key = (app_id.clone(), name.clone());
    update_cas(
        &ctx,
        &format!("Component {name} of app {app_id}"),
        async move |txn| find(txn, &key.0, &key.1, false).await,
        change,
        component::Model::to_out,
        |out| event(&call, "appmeta.component.updated", subject(&app_id, &name), out),
    )
    .await
}

pub(super) async fn delete(ctx: Arc<Ctx>, call: RpcCall) -> Result<RpcReply, ApiError> {
    let principal = ctx.principal(&call).await?;
    let app_id = path_id(&call, "appId", AppId::parse)?;
    let name = path_id(&call, "componentName", Name::parse)?;
    load_authorized(&ctx.db, &principal, Op::ComponentDelete, &app_id, false).await?;
    let txn = ctx.begin().await?;
    let row = find(&txn, &app_id, &name, true).await?;
    component::Entity::delete_by_id((row.app_id.clone(), row.component_name.clone()))
        .exec(&txn)
        .await
        .map_err(sw_db::api_error)?;
    let data = ComponentDeleted {
        app_id: app_id.clone(),
        component_name: name.clone(),
        component_type: row.component_type().map_err(corrupt)?,
    };
    commit_with_event(&ctx, txn, event(&call, "appmeta.component.deleted", subject(&app_id, &name), &data))
        .await?;
    Ok(RpcReply::no_content())
}
