//! Reads of packages written once: a row by id, and rows turned into `AppPackageOut` with their
//! current components (two queries for any number of packages).

use std::collections::HashMap;

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use sw_contracts::AppId;
use sw_contracts::packages::{AppPackageOut, ComponentPackageOut};
use sw_http::ApiError;

use crate::entity::{CorruptRow, READY, app_package, app_package_component as link, component_package};

/// 404 `package_not_found`.
pub(crate) fn not_found(app_id: &AppId, what: impl std::fmt::Display) -> ApiError {
    ApiError::new(404, "package_not_found", format!("App {app_id} has no package {what}."))
}

/// 500 for a row that does not convert back into its DTO.
pub(crate) fn corrupt(e: CorruptRow) -> ApiError {
    ApiError::internal(&e)
}

/// The package `id` of `app_id` in any status (locked for update with `lock`), or 404.
pub(crate) async fn find<C: ConnectionTrait>(
    conn: &C,
    app_id: &AppId,
    id: i64,
    lock: bool,
) -> Result<app_package::Model, ApiError> {
    let mut select =
        app_package::Entity::find_by_id(id).filter(app_package::Column::AppId.eq(app_id.as_str()));
    if lock {
        select = select.lock_exclusive();
    }
    select.one(conn).await.map_err(sw_db::api_error)?.ok_or_else(|| not_found(app_id, id))
}

/// The READY package `id` of `app_id`, or 404 (a package being imported does not exist yet).
pub(crate) async fn find_ready<C: ConnectionTrait>(
    conn: &C,
    app_id: &AppId,
    id: i64,
) -> Result<app_package::Model, ApiError> {
    let row = find(conn, app_id, id, false).await?;
    if row.status != READY {
        return Err(not_found(app_id, id));
    }
    Ok(row)
}

/// The public view of `rows`, each with the components of its current generation, in order.
pub(crate) async fn to_outs<C: ConnectionTrait>(
    conn: &C,
    rows: &[app_package::Model],
) -> Result<Vec<AppPackageOut>, ApiError> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let generation: HashMap<i64, i64> = rows.iter().map(|r| (r.id, r.generation)).collect();
    let links: Vec<link::Model> = link::Entity::find()
        .filter(link::Column::AppPackageId.is_in(generation.keys().copied()))
        .order_by_asc(link::Column::Position)
        .all(conn)
        .await
        .map_err(sw_db::api_error)?
        .into_iter()
        .filter(|l| generation.get(&l.app_package_id) == Some(&l.generation))
        .collect();
    let components: HashMap<i64, component_package::Model> = component_package::Entity::find()
        .filter(component_package::Column::Id.is_in(links.iter().map(|l| l.component_package_id)))
        .all(conn)
        .await
        .map_err(sw_db::api_error)?
        .into_iter()
        .map(|c| (c.id, c))
        .collect();
    let mut by_package: HashMap<i64, Vec<ComponentPackageOut>> = HashMap::new();
    for l in &links {
        let c = components
            .get(&l.component_package_id)
            .ok_or_else(|| corrupt(CorruptRow::new("component link", l.component_package_id)))?;
        by_package.entry(l.app_package_id).or_default().push(l.to_out(c).map_err(corrupt)?);
    }
    rows.iter().map(|r| r.to_out(by_package.remove(&r.id).unwrap_or_default()).map_err(corrupt)).collect()
}

/// The public view of one row.
pub(crate) async fn to_out<C: ConnectionTrait>(
    conn: &C,
    row: &app_package::Model,
) -> Result<AppPackageOut, ApiError> {
    let mut outs = to_outs(conn, std::slice::from_ref(row)).await?;
    outs.pop().ok_or_else(|| corrupt(CorruptRow::new("app package", row.id)))
}

/// The component rows of `row`'s current generation, in the package's component order.
pub(crate) async fn components_of<C: ConnectionTrait>(
    conn: &C,
    row: &app_package::Model,
) -> Result<Vec<component_package::Model>, ApiError> {
    let links: Vec<link::Model> = link::Entity::find()
        .filter(link::Column::AppPackageId.eq(row.id))
        .filter(link::Column::Generation.eq(row.generation))
        .order_by_asc(link::Column::Position)
        .all(conn)
        .await
        .map_err(sw_db::api_error)?;
    if links.is_empty() {
        return Ok(Vec::new());
    }
    let components: HashMap<i64, component_package::Model> = component_package::Entity::find()
        .filter(component_package::Column::Id.is_in(links.iter().map(|l| l.component_package_id)))
        .all(conn)
        .await
        .map_err(sw_db::api_error)?
        .into_iter()
        .map(|c| (c.id, c))
        .collect();
    links
        .iter()
        .map(|l| {
            components
                .get(&l.component_package_id)
                .cloned()
                .ok_or_else(|| corrupt(CorruptRow::new("component link", l.component_package_id)))
        })
        .collect()
}
