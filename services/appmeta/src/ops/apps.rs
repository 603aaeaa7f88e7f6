//! `apps.*`: list, create, get, update and delete applications.
//!
//! Apps are authorized in `Scope::App { app, team }`, so app- and team-scoped bindings count.
//! Deleting an app deletes its components in the same transaction, announcing each.

use std::sync::Arc;

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set};
use sw_authz::{Principal, Scope};
use sw_bus::{RpcCall, RpcReply};
use sw_contracts::AppId;
use sw_contracts::appmeta::{AppDeleted, AppIn, AppListQuery, AppPatch, ComponentDeleted};
use sw_http::ApiError;

use super::store::{commit_with_event, enqueue, insert_with_event, paged, update_cas};
use super::{Ctx, corrupt, event, missing, now, path_id};
use crate::authz::{Op, allowed};
use crate::entity::{app, component, labels_to_db};
use crate::validate::{self, Errors};

/// The scope an app is authorized in.
fn scope(row: &app::Model) -> Scope<'_> {
    Scope::App { app: &row.app_id, team: row.team.as_deref() }
}

/// Turns a substring into a `LIKE` pattern with `!` as the escape character.
fn contains_pattern(s: &str) -> String {
    let mut p = String::with_capacity(s.len() + 2);
    p.push('%');
    for c in s.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '!') {
            p.push('!');
        }
        p.push(c);
    }
    p.push('%');
    p
}

pub(super) async fn list(ctx: Arc<Ctx>, call: RpcCall) -> Result<RpcReply, ApiError> {
    let principal = ctx.principal(&call).await?;
    let mut select = app::Entity::find();
    // A global reader sees every app; anyone else sees the apps and teams they are bound to.
    if !principal.can(allowed, Op::AppRead, Scope::Global) {
        let (apps, teams) = principal.scoped_grants(allowed, Op::AppRead);
        if apps.is_empty() && teams.is_empty() {
            return Err(ApiError::forbidden("Your roles do not allow reading any app."));
        }
        let mut visible = Condition::any();
        if !apps.is_empty() {
            visible = visible.add(app::Column::AppId.is_in(apps));
        }
        if !teams.is_empty() {
            visible = visible.add(app::Column::Team.is_in(teams));
        }
        select = select.filter(visible);
    }
    let q: AppListQuery = sw_http::parse_query(&call.envelope.query)?;
    if let Some(team) = &q.team {
        select = select.filter(app::Column::Team.eq(team.as_str()));
    }
    if let Some(search) = q.search.as_deref().filter(|s| !s.is_empty()) {
        let p = contains_pattern(search);
        select = select.filter(Expr::cust_with_values(
            "(LOWER(`apps`.`app_id`) LIKE ? ESCAPE '!' OR LOWER(`apps`.`name`) LIKE ? ESCAPE '!')",
            [p.clone(), p],
        ));
    }
    if let Some(label) = &q.label {
        let (k, v) = label
            .split_once('=')
            .filter(|(k, _)| validate::is_label_key(k))
            .ok_or_else(|| ApiError::invalid_field("label", "must be key=value with a valid label key"))?;
        // JSON_CONTAINS with a one-entry object: the labels hold this key with exactly this value.
        select = select.filter(Expr::cust_with_values(
            "JSON_CONTAINS(`apps`.`labels`, JSON_OBJECT(?, ?))",
            [k.to_owned(), v.to_owned()],
        ));
    }
    let page = sw_http::page_query(q.page, q.page_size)?;
    paged(&ctx.db, select, app::Column::AppId, &page, app::Model::to_out).await
}

pub(super) async fn create(ctx: Arc<Ctx>, call: RpcCall) -> Result<RpcReply, ApiError> {
    let principal = ctx.principal(&call).await?;
    // Refuse callers who may create nowhere before telling them anything about their body.
    if !principal.can_anywhere(allowed, Op::AppCreate) {
        return Err(ApiError::forbidden("Your roles do not allow creating apps."));
    }
    let mut errs = Errors::new();
    let input: AppIn = validate::parse_body(call.envelope.body.clone(), &["appId", "team"], &mut errs)?;
    validate::display(&mut errs, input.name.as_deref(), input.description.as_deref(), Some(&input.labels));
    errs.finish()?;
    // The scope is the new app's team: a developer bound to one team creates apps only there.
    principal.require(
        allowed,
        Op::AppCreate,
        Scope::App { app: input.app_id.as_str(), team: input.team.as_ref().map(|t| t.as_str()) },
    )?;

    let at = now();
    let row = app::Model {
        app_id: input.app_id.to_string(),
        name: input.name.unwrap_or_else(|| input.app_id.to_string()),
        description: input.description,
        team: input.team.map(|t| t.into_string()),
        labels: labels_to_db(&input.labels),
        version: 1,
        created_at: at,
        updated_at: at,
    };
    let out = row.to_out().map_err(corrupt)?;
    let ev = event(&call, "appmeta.app.created", &row.app_id, &out);
    insert_with_event::<app::Entity>(&ctx, &row, &format!("App {}", row.app_id), None, ev).await?;
    Ok(RpcReply::created(&out).header("Location", format!("/v1/apps/{}", row.app_id)))
}

/// Loads an app and checks `op` on it; missing → 404 (or 403, see [`missing`]).
pub(super) async fn load_authorized<C: sea_orm::ConnectionTrait>(
    conn: &C,
    principal: &Principal,
    op: Op,
    app_id: &AppId,
    lock: bool,
) -> Result<app::Model, ApiError> {
    let mut select = app::Entity::find_by_id(app_id.as_str());
    if lock {
        select = select.lock_exclusive();
    }
    let row = select.one(conn).await.map_err(sw_db::api_error)?;
    let row = row.ok_or_else(|| missing(principal, op, &format!("App {app_id}")))?;
    principal.require(allowed, op, scope(&row))?;
    Ok(row)
}

pub(super) async fn get(ctx: Arc<Ctx>, call: RpcCall) -> Result<RpcReply, ApiError> {
    let principal = ctx.principal(&call).await?;
    let app_id = path_id(&call, "appId", AppId::parse)?;
    let row = load_authorized(&ctx.db, &principal, Op::AppRead, &app_id, false).await?;
    Ok(RpcReply::ok(row.to_out().map_err(corrupt)?))
}

pub(super) async fn update(ctx: Arc<Ctx>, call: RpcCall) -> Result<RpcReply, ApiError> {
    let principal = ctx.principal(&call).await?;
    let app_id = path_id(&call, "appId", AppId::parse)?;
    let mut errs = Errors::new();
    let patch: AppPatch = validate::parse_body(call.envelope.body.clone(), &["team"], &mut errs)?;
    validate::display(&mut errs, patch.name.as_deref(), patch.description.as_deref(), patch.labels.as_ref());
    let checked = errs.finish();
    let change = |old: &app::Model| {
        // Moving an app to another team needs the right to update apps there too.
        if let Some(team) = &patch.team {
            principal.require(
                allowed,
                Op::AppUpdate,
                Scope::App { app: &old.app_id, team: team.as_ref().map(|t| t.as_str()) },
            )?;
        }
        // Field errors only after authorization, so strangers learn nothing from them.
        checked.clone()?;
        let mut new = old.clone();
        if let Some(n) = &patch.name {
            new.name = n.clone();
        }
        if let Some(d) = &patch.description {
            new.description = Some(d.clone());
        }
        if let Some(t) = &patch.team {
            new.team = t.as_ref().map(|t| t.to_string());
        }
        if let Some(l) = &patch.labels {
            new.labels = labels_to_db(l);
        }
        new.version = old.version + 1;
        new.updated_at = now();
        let update = app::Entity::update_many()
            .set(app::ActiveModel {
                name: Set(new.name.clone()),
                description: Set(new.description.clone()),
                team: Set(new.team.clone()),
                labels: Set(new.labels.clone()),
                version: Set(new.version),
                updated_at: Set(new.updated_at),
                ..Default::default()
            })
            .filter(app::Column::AppId.eq(old.app_id.as_str()))
            .filter(app::Column::Version.eq(old.version));
        Ok((new, update))
    };
    let key = (principal.clone(), app_id.clone());
    update_cas(
        &ctx,
        &format!("App {app_id}"),
        async move |txn| load_authorized(txn, &key.0, Op::AppUpdate, &key.1, false).await,
        change,
        app::Model::to_out,
        |out| event(&call, "appmeta.app.updated", out.app_id.as_str(), out),
    )
    .await
}

pub(super) async fn delete(ctx: Arc<Ctx>, call: RpcCall) -> Result<RpcReply, ApiError> {
    let principal = ctx.principal(&call).await?;
    let app_id = path_id(&call, "appId", AppId::parse)?;
    let txn = ctx.begin().await?;
    // The exclusive lock makes concurrent component inserts (whose foreign-key check needs a
    // shared lock on this row) wait, and then fail because the app is gone.
    let row = load_authorized(&txn, &principal, Op::AppDelete, &app_id, true).await?;
    let components = component::Entity::find()
        .filter(component::Column::AppId.eq(row.app_id.as_str()))
        .order_by_asc(component::Column::ComponentName)
        .lock_exclusive()
        .all(&txn)
        .await
        .map_err(sw_db::api_error)?;
    for c in &components {
        let data = ComponentDeleted {
            app_id: app_id.clone(),
            component_name: crate::entity::name_from_db("componentName", &c.component_name)
                .map_err(corrupt)?,
            component_type: c.component_type().map_err(corrupt)?,
        };
        let subject = format!("{}/{}", c.app_id, c.component_name);
        enqueue(&ctx, &txn, &event(&call, "appmeta.component.deleted", subject, &data)).await?;
    }
    component::Entity::delete_many()
        .filter(component::Column::AppId.eq(row.app_id.as_str()))
        .exec(&txn)
        .await
        .map_err(sw_db::api_error)?;
    app::Entity::delete_by_id(row.app_id.as_str()).exec(&txn).await.map_err(sw_db::api_error)?;
    let data = AppDeleted { app_id: app_id.clone() };
    commit_with_event(&ctx, txn, event(&call, "appmeta.app.deleted", &row.app_id, &data)).await?;
    tracing::debug!(app = %app_id, components = components.len(), "App deleted.");
    Ok(RpcReply::no_content())
}
