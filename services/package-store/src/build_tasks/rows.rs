//! Writes of task rows: the insert of a new task, the transitions — each a compare-and-swap on
//! `version` committed together with its event — and the lease's renewal and release, which
//! are not transitions and announce nothing.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::NotSet, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use sw_contracts::AppId;
use sw_contracts::packages::{PackageTaskComponent, PackageTaskStatus};
use sw_http::ApiError;

use super::{LEASE, subject};
use crate::build::ComponentBinder;
use crate::ctx::{Ctx, event, now};
use crate::entity::package_task::{self, Column as C, Entity as Task};
use crate::store::corrupt;

/// 404 `task_not_found`.
pub(crate) fn not_found(app_id: &AppId, id: impl std::fmt::Display) -> ApiError {
    ApiError::new(404, "task_not_found", format!("App {app_id} has no build task {id}."))
}

/// Task `id` of `app_id`, or 404.
pub(crate) async fn find<C2: ConnectionTrait>(
    conn: &C2,
    app_id: &AppId,
    id: i64,
) -> Result<package_task::Model, ApiError> {
    Task::find_by_id(id)
        .filter(C::AppId.eq(app_id.as_str()))
        .one(conn)
        .await
        .map_err(sw_db::api_error)?
        .ok_or_else(|| not_found(app_id, id))
}

/// The values of a new task.
#[derive(Debug, Clone)]
pub(crate) struct NewTask {
    pub app_id: AppId,
    pub package_version: String,
    pub tags: Vec<String>,
    pub binders: Vec<ComponentBinder>,
    pub created_by: String,
    pub traceparent: Option<String>,
    pub created_at: DateTime<Utc>,
    pub deadline_at: DateTime<Utc>,
}

/// Inserts `new` as `CREATED` (no charts yet) on `conn`, usually the transaction that goes on to
/// upload them. A live task of the same version is 409 `package_version_exists`.
pub(crate) async fn insert<C2: ConnectionTrait>(
    conn: &C2,
    new: &NewTask,
) -> Result<package_task::Model, ApiError> {
    let components: Vec<PackageTaskComponent> = new
        .binders
        .iter()
        .map(|b| PackageTaskComponent {
            component_type: b.component_type().as_str().to_owned(),
            component_name: b.component_name.clone(),
        })
        .collect();
    let mut row = package_task::Model {
        id: 0,
        app_id: new.app_id.to_string(),
        status: PackageTaskStatus::Created.as_str().to_owned(),
        package_version: new.package_version.clone(),
        tags: json(&new.tags)?,
        components: json(&components)?,
        binders: json(&new.binders)?,
        charts: "{}".to_owned(),
        app_package_id: None,
        error_message: None,
        attempts: 0,
        lease_owner: None,
        lease_until: None,
        deadline_at: new.deadline_at,
        traceparent: new.traceparent.clone(),
        created_by: new.created_by.clone(),
        created_at: new.created_at,
        updated_at: new.created_at,
        version: 1,
    };
    let mut active: package_task::ActiveModel = row.clone().into();
    active.id = NotSet;
    match Task::insert(active).exec(conn).await {
        Ok(r) => {
            row.id = r.last_insert_id;
            Ok(row)
        }
        Err(e) if sw_db::is_duplicate(&e) => Err(ApiError::conflict(
            "package_version_exists",
            format!(
                "A build of version {} of app {} is already waiting or running.",
                new.package_version, new.app_id
            ),
        )),
        Err(e) => Err(sw_db::api_error(e)),
    }
}

/// Our own values as JSON text (cannot fail for these types; a failure would be a 500).
fn json<T: serde::Serialize>(v: &T) -> Result<String, ApiError> {
    serde_json::to_string(v).map_err(|e| ApiError::internal(&e))
}

/// Records the chart keys of a task on `conn` (the creating transaction).
pub(crate) async fn set_charts<C2: ConnectionTrait>(
    conn: &C2,
    row: &mut package_task::Model,
    charts: &std::collections::BTreeMap<String, String>,
) -> Result<(), ApiError> {
    let text = json(charts)?;
    Task::update_many()
        .col_expr(C::Charts, Expr::value(text.clone()))
        .filter(C::Id.eq(row.id))
        .exec(conn)
        .await
        .map_err(sw_db::api_error)?;
    row.charts = text;
    Ok(())
}

/// The event name announcing that a task became `status`.
pub(crate) fn event_name(status: PackageTaskStatus) -> &'static str {
    match status {
        PackageTaskStatus::Created => "package.task.created",
        PackageTaskStatus::Running => "package.task.running",
        PackageTaskStatus::Success => "package.task.succeeded",
        PackageTaskStatus::Failure => "package.task.failed",
    }
}

/// The `package.task.*` event for `row` as it is now.
pub(crate) fn task_event(row: &package_task::Model) -> Result<sw_bus::CloudEvent, ApiError> {
    let out = row.to_out().map_err(corrupt)?;
    Ok(event(event_name(out.status), subject(&row.app_id, row.id), row.traceparent.as_deref(), &out))
}

/// Where a transition takes a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Transition {
    /// Taken by worker `owner`: a fresh lease, one more attempt.
    Run { owner: String },
    /// Built: the package's id.
    Succeed { app_package_id: i64 },
    /// Given up, and why.
    Fail { message: String },
}

impl Transition {
    pub fn target(&self) -> PackageTaskStatus {
        match self {
            Self::Run { .. } => PackageTaskStatus::Running,
            Self::Succeed { .. } => PackageTaskStatus::Success,
            Self::Fail { .. } => PackageTaskStatus::Failure,
        }
    }
}

/// Applies `t` to `task` if nobody changed the row since it was read, with the transition's
/// event in the same transaction. `None`: the row moved on (another worker, a renewal).
/// A transition the table forbids is a 409 `invalid_transition`, nothing written.
pub(crate) async fn apply(
    ctx: &Ctx,
    task: &package_task::Model,
    t: Transition,
) -> Result<Option<package_task::Model>, ApiError> {
    let from = task.status().map_err(corrupt)?;
    let to = t.target();
    if !from.can_become(to) {
        return Err(ApiError::conflict(
            "invalid_transition",
            format!("Build task {} cannot go from {} to {}.", task.id, from.as_str(), to.as_str()),
        ));
    }
    let at = now();
    let mut next = task.clone();
    next.status = to.as_str().to_owned();
    next.version = task.version + 1;
    next.updated_at = at;
    match t {
        Transition::Run { owner } => {
            next.attempts = task.attempts + 1;
            next.lease_owner = Some(owner);
            next.lease_until = Some(at + chrono::Duration::from_std(LEASE).unwrap_or_default());
        }
        Transition::Succeed { app_package_id } => {
            next.app_package_id = Some(app_package_id);
            next.lease_until = None;
        }
        Transition::Fail { message } => {
            next.error_message = Some(super::truncate(message));
            next.lease_until = None;
        }
    }
    let ev = task_event(&next)?;
    let txn = ctx.begin().await?;
    let done = Task::update_many()
        .col_expr(C::Status, Expr::value(next.status.clone()))
        .col_expr(C::Version, Expr::value(next.version))
        .col_expr(C::UpdatedAt, Expr::value(next.updated_at))
        .col_expr(C::Attempts, Expr::value(next.attempts))
        .col_expr(C::LeaseOwner, Expr::value(next.lease_owner.clone()))
        .col_expr(C::LeaseUntil, Expr::value(next.lease_until))
        .col_expr(C::AppPackageId, Expr::value(next.app_package_id))
        .col_expr(C::ErrorMessage, Expr::value(next.error_message.clone()))
        .filter(C::Id.eq(task.id))
        .filter(C::Version.eq(task.version))
        .exec(&txn)
        .await
        .map_err(sw_db::api_error)?;
    if done.rows_affected != 1 {
        txn.rollback().await.map_err(sw_db::api_error)?;
        return Ok(None);
    }
    ctx.outbox.enqueue(&txn, &ev).await.map_err(sw_db::api_error)?;
    txn.commit().await.map_err(sw_db::api_error)?;
    ctx.outbox.wake();
    Ok(Some(next))
}

/// Extends the lease `owner` holds on `task` (at `version`); returns the new version, or `None`
/// when the task is no longer held by `owner` at that version.
pub(crate) async fn renew(
    ctx: &Ctx,
    task_id: i64,
    version: i64,
    owner: &str,
) -> Result<Option<i64>, ApiError> {
    let until = now() + chrono::Duration::from_std(LEASE).unwrap_or_default();
    let done = Task::update_many()
        .col_expr(C::LeaseUntil, Expr::value(until))
        .col_expr(C::Version, Expr::value(version + 1))
        .filter(C::Id.eq(task_id))
        .filter(C::Version.eq(version))
        .filter(C::Status.eq(PackageTaskStatus::Running.as_str()))
        .filter(C::LeaseOwner.eq(owner))
        .exec(&ctx.db)
        .await
        .map_err(sw_db::api_error)?;
    Ok((done.rows_affected == 1).then_some(version + 1))
}

/// Hands a task back unfinished (the process is stopping): the lease ends now and the attempt
/// does not count, so another worker starts it again at once.
pub(crate) async fn release(
    ctx: &Ctx,
    task: &package_task::Model,
    version: i64,
    owner: &str,
) -> Result<bool, ApiError> {
    let done = Task::update_many()
        .col_expr(C::LeaseUntil, Expr::value(now()))
        .col_expr(C::Attempts, Expr::value((task.attempts - 1).max(0)))
        .col_expr(C::Version, Expr::value(version + 1))
        .filter(C::Id.eq(task.id))
        .filter(C::Version.eq(version))
        .filter(C::Status.eq(PackageTaskStatus::Running.as_str()))
        .filter(C::LeaseOwner.eq(owner))
        .exec(&ctx.db)
        .await
        .map_err(sw_db::api_error)?;
    Ok(done.rows_affected == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_has_its_event_and_each_transition_its_target() {
        use PackageTaskStatus::*;
        let names: Vec<&str> = [Created, Running, Success, Failure].into_iter().map(event_name).collect();
        assert_eq!(
            names,
            ["package.task.created", "package.task.running", "package.task.succeeded", "package.task.failed"]
        );
        for name in names {
            assert!(
                sw_contracts::events::catalogue().iter().any(|e| e.name == name),
                "{name} is not in the event catalogue"
            );
        }
        assert_eq!(Transition::Run { owner: "w".into() }.target(), Running);
        assert_eq!(Transition::Succeed { app_package_id: 1 }.target(), Success);
        assert_eq!(Transition::Fail { message: "x".into() }.target(), Failure);
    }
}
