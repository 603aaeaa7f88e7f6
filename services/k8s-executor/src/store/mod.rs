//! The executor's memory in `sw_executor`: each component instance's [`Inventory`] and the result of
//! each command it processed.
//!
//! # How the service uses it
//! For a command it [`Store::load`]s the instance's inventory with its version, asks
//! [`crate::plan`] what to do, and [`Store::save`]s every transition *before* the side effect the
//! transition allows, passing the version it read and carrying on with the one `save` returns. When
//! the result is known it [`Store::record_result`]s it, then publishes and acks; a redelivered command
//! first asks [`Store::result_of`] and, when a result is on record, publishes that one again.
//! An `applied` result starts the instance's health watch ([`Store::upsert_watch`]), which the
//! service's watcher claims, checks and ends; see the `watch` module's docs. Results older than the
//! retention go ([`Store::delete_results_before`]).
//!
//! # Why compare-and-swap
//! Two replicas can hold the same instance (a redelivery while the first worker is still running, or
//! two commands for one instance). Every write names the version it was computed from and succeeds
//! only if the row still has it — for the first write, only if no row exists — so of two writers
//! starting from one version exactly one advances the instance; the other gets
//! [`StoreError::Conflict`] and must stop before acting on what it decided, then reload and decide
//! again (or leave the command to redelivery).
//!
//! # Trust on load
//! A stored inventory decides what may be deleted, so one that does not parse or that the
//! transitions could not have produced ([`Inventory::inconsistency`]) is an error, never used; the
//! store likewise refuses to write an inconsistent one.

mod inventory_row;
mod processed_row;
mod watch;
mod watch_row;

pub use watch::{NewWatch, Upserted, Watch};

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter};
use sw_config::DatabaseConfig;
use sw_contracts::executor::{ComponentResult, ComponentTarget};

use crate::migration::Migrator;
use crate::plan::Inventory;

/// The service name of the executor's database (`{prefix}executor`).
pub const SERVICE: &str = "executor";

/// Why the store could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Someone else wrote the instance since `expected` was read (or created it, when `expected`
    /// is 0). Stop; reload and decide again.
    #[error("the inventory of {instance} changed since version {expected} was read")]
    Conflict { instance: String, expected: u64 },
    /// A stored row that does not parse or that the transitions could not have produced. Permanent:
    /// it needs an operator, and must not drive any deletion meanwhile.
    #[error("stored {what} of {key} is invalid: {problem}")]
    Corrupt { what: &'static str, key: String, problem: String },
    /// A caller bug: an inventory the transitions could not have produced, or a version out of range.
    #[error("refusing to store the inventory of {instance}: {problem}")]
    Invalid { instance: String, problem: String },
    /// The database is unreachable, or the statement lost a lock race; retrying may succeed.
    #[error("database temporarily unavailable: {0}")]
    Unavailable(#[source] DbErr),
    /// Any other database error; retrying the same statement will not help.
    #[error("database error: {0}")]
    Database(#[source] DbErr),
}

impl StoreError {
    /// True when the same call may succeed later (the command should be redelivered, not failed).
    /// A [`StoreError::Conflict`] is not transient in this sense: the caller's decision is stale and
    /// must be made again from a fresh load.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

impl From<DbErr> for StoreError {
    fn from(e: DbErr) -> Self {
        if sw_db::is_unavailable(&e) || sw_db::is_lock_conflict(&e) {
            StoreError::Unavailable(e)
        } else {
            StoreError::Database(e)
        }
    }
}

/// A result on record: the event it was published as and its payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// The event type, e.g. `executor.component.applied`.
    pub event_type: String,
    pub revision: u64,
    pub result: ComponentResult,
}

/// The executor's inventory and result store. Cheap to clone (a pool handle).
#[derive(Debug, Clone)]
pub struct Store {
    db: DatabaseConnection,
}

impl Store {
    /// A store on a connection to an already migrated `sw_executor`.
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    /// Connects to `{prefix}executor` (creating it when missing) and applies the migrations.
    pub async fn open(cfg: &DatabaseConfig) -> Result<Self, sw_db::DbError> {
        let db = sw_db::connect(cfg, SERVICE).await?;
        sw_db::migrate::<Migrator>(&db, &sw_db::database_name(cfg, SERVICE)).await?;
        Ok(Self::new(db))
    }

    /// The instance's inventory and its version; [`Inventory::default()`] and version 0 when nothing
    /// was stored yet. A stored inventory that does not parse or is inconsistent is
    /// [`StoreError::Corrupt`].
    pub async fn load(&self, target: &ComponentTarget) -> Result<(Inventory, u64), StoreError> {
        self.load_stamped(target).await.map(|(inv, version, _)| (inv, version))
    }

    /// [`Store::load`] with the time of the row's last write (`None` when nothing is stored): how
    /// recently a command worked on the instance.
    pub async fn load_stamped(
        &self,
        target: &ComponentTarget,
    ) -> Result<(Inventory, u64, Option<DateTime<Utc>>), StoreError> {
        use inventory_row::{Column, Entity};
        let row = Entity::find()
            .filter(Column::ClusterId.eq(&target.cluster_id))
            .filter(Column::Namespace.eq(&target.namespace))
            .filter(Column::AppInstance.eq(&target.app_instance))
            .filter(Column::ComponentInstance.eq(&target.component_instance))
            .one(&self.db)
            .await?;
        let Some(row) = row else {
            return Ok((Inventory::default(), 0, None));
        };
        let corrupt = |what, problem: String| StoreError::Corrupt { what, key: instance(target), problem };
        let inv: Inventory =
            serde_json::from_str(&row.inventory).map_err(|e| corrupt("inventory", e.to_string()))?;
        if let Some(problem) = inv.inconsistency() {
            return Err(corrupt("inventory", problem.to_owned()));
        }
        let version = u64::try_from(row.version)
            .ok()
            .filter(|v| *v > 0)
            .ok_or_else(|| corrupt("inventory version", row.version.to_string()))?;
        Ok((inv, version, Some(row.updated_at)))
    }

    /// Writes `inv` if the instance is still at `expected` (0: not stored yet) and returns the new
    /// version; otherwise [`StoreError::Conflict`] and nothing is written.
    pub async fn save(
        &self,
        target: &ComponentTarget,
        inv: &Inventory,
        expected: u64,
    ) -> Result<u64, StoreError> {
        use inventory_row::{ActiveModel, Column, Entity};
        let invalid = |problem: String| StoreError::Invalid { instance: instance(target), problem };
        if let Some(problem) = inv.inconsistency() {
            return Err(invalid(problem.to_owned()));
        }
        let next = expected.checked_add(1).filter(|v| i64::try_from(*v).is_ok());
        let next = next.ok_or_else(|| invalid(format!("version {expected} is out of range")))?;
        let json = serde_json::to_string(inv).map_err(|e| invalid(e.to_string()))?;
        let now = Utc::now();
        let conflict = || StoreError::Conflict { instance: instance(target), expected };
        if expected == 0 {
            let row = ActiveModel {
                cluster_id: Set(target.cluster_id.clone()),
                namespace: Set(target.namespace.clone()),
                app_id: Set(target.app_id.to_string()),
                app_instance: Set(target.app_instance.clone()),
                component_instance: Set(target.component_instance.clone()),
                inventory: Set(json),
                version: Set(1),
                created_at: Set(now),
                updated_at: Set(now),
                ..Default::default()
            };
            return match Entity::insert(row).exec_without_returning(&self.db).await {
                Ok(_) => Ok(next),
                // The other first writer won the unique key.
                Err(e) if sw_db::is_duplicate(&e) => Err(conflict()),
                Err(e) => Err(e.into()),
            };
        }
        let (expected_db, next_db) = (expected as i64, next as i64);
        // `version` changes on every write, so MariaDB's "changed rows" count is the matched count.
        let done = Entity::update_many()
            .col_expr(Column::Inventory, Expr::value(json))
            .col_expr(Column::Version, Expr::value(next_db))
            .col_expr(Column::UpdatedAt, Expr::value(now))
            .filter(Column::ClusterId.eq(&target.cluster_id))
            .filter(Column::Namespace.eq(&target.namespace))
            .filter(Column::AppInstance.eq(&target.app_instance))
            .filter(Column::ComponentInstance.eq(&target.component_instance))
            .filter(Column::Version.eq(expected_db))
            .exec(&self.db)
            .await?;
        if done.rows_affected == 0 {
            return Err(conflict());
        }
        Ok(next)
    }

    /// Records the result of `command_id` (published as `event_type`) for replay. The first result
    /// recorded for a command stays: a second one (two replicas finishing the same command) is not
    /// written, and the one on record is returned so both publish the same.
    pub async fn record_result(
        &self,
        command_id: &str,
        target: &ComponentTarget,
        revision: u64,
        event_type: &str,
        result: &ComponentResult,
    ) -> Result<Recorded, StoreError> {
        use processed_row::{ActiveModel, Entity};
        let invalid = |problem: String| StoreError::Invalid { instance: instance(target), problem };
        let revision_db =
            i64::try_from(revision).map_err(|_| invalid(format!("revision {revision} is out of range")))?;
        let row = ActiveModel {
            command_id: Set(command_id.to_owned()),
            cluster_id: Set(target.cluster_id.clone()),
            namespace: Set(target.namespace.clone()),
            app_instance: Set(target.app_instance.clone()),
            component_instance: Set(target.component_instance.clone()),
            revision: Set(revision_db),
            event_type: Set(event_type.to_owned()),
            result: Set(serde_json::to_string(result).map_err(|e| invalid(e.to_string()))?),
            created_at: Set(Utc::now()),
        };
        match Entity::insert(row).exec_without_returning(&self.db).await {
            Ok(_) => Ok(Recorded { event_type: event_type.to_owned(), revision, result: result.clone() }),
            Err(e) if sw_db::is_duplicate(&e) => {
                // The row is never deleted here, so a duplicate key means it can be read.
                self.result_of(command_id).await?.ok_or_else(|| StoreError::Database(e))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The result recorded for `command_id`, if any.
    pub async fn result_of(&self, command_id: &str) -> Result<Option<Recorded>, StoreError> {
        let Some(row) = processed_row::Entity::find_by_id(command_id.to_owned()).one(&self.db).await? else {
            return Ok(None);
        };
        let corrupt = |what, problem: String| StoreError::Corrupt {
            what,
            key: format!("command {command_id}"),
            problem,
        };
        let result = serde_json::from_str(&row.result).map_err(|e| corrupt("result", e.to_string()))?;
        let revision = u64::try_from(row.revision).map_err(|e| corrupt("revision", e.to_string()))?;
        Ok(Some(Recorded { event_type: row.event_type, revision, result }))
    }
}

/// The instance key in messages: `cluster/namespace/app_instance/component_instance`.
fn instance(t: &ComponentTarget) -> String {
    format!("{}/{}/{}/{}", t.cluster_id, t.namespace, t.app_instance, t.component_instance)
}
