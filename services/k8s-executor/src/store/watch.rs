//! The health watch of each component instance in `health_watch`, and the retention sweep of
//! recorded results.
//!
//! # How the service uses it
//! The command handler [`Store::upsert_watch`]es the instance's watch when an apply ends `applied`
//! and [`Store::remove_watch`]es it when a delete or a failure ends the instance's revision, both
//! in the consumer's transaction so the watch and the result event commit together. The watcher
//! [`Store::claim_watches`] every poll: a row is due when nobody holds its lease, the lease ran
//! out (its replica died or stalls), or this replica holds it. It then ends a watch with
//! [`Store::finish_watch`] in the transaction of the final event, or writes what it saw with
//! [`Store::touch_watch`]; both are compare-and-swap on the version the claim returned, so a
//! replica that lost the row (a newer revision replaced it, another replica took the lease over)
//! writes and reports nothing.

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde_json::Value;
use std::time::Duration;
use sw_contracts::executor::{ComponentTarget, Health, ObjectRef};

use super::{Store, StoreError, instance, watch_row};
use crate::health::Assessment;

/// A component instance's watch as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Watch {
    pub id: i64,
    /// The apply command whose objects are watched.
    pub command_id: String,
    pub revision: u64,
    pub target: ComponentTarget,
    pub objects: Vec<ObjectRef>,
    /// The deadline counts from here.
    pub started_at: DateTime<Utc>,
    pub deadline_secs: u64,
    /// What the last check saw, if any check read the objects yet.
    pub observed: Option<Assessment>,
    /// The last health reported while watching (only `Degraded` is).
    pub reported: Option<Health>,
    pub lease_owner: Option<String>,
    pub lease_until: Option<DateTime<Utc>>,
    /// The compare-and-swap guard: every write names it.
    pub version: u64,
}

/// The watch an `applied` result starts.
#[derive(Debug, Clone, PartialEq)]
pub struct NewWatch {
    pub command_id: String,
    pub revision: u64,
    pub target: ComponentTarget,
    pub objects: Vec<ObjectRef>,
    /// The command's `health_deadline_secs`.
    pub deadline_secs: u64,
}

/// What [`Store::upsert_watch`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upserted {
    /// No watch existed: this one starts now.
    Started,
    /// The watch of an older revision (or another command) was replaced; this one starts now.
    Replaced,
    /// The same command is watched already (a redelivery): it keeps its start and deadline.
    Kept,
    /// A newer revision is watched: this older result does not replace it.
    Superseded,
}

impl Store {
    /// Starts watching `new` as of `now`, in `conn` (the consumer's transaction): the instance's row
    /// is locked, then created, replaced (older revision) or left alone (same command: its start
    /// stays; newer revision). Two first writers racing for one instance: the loser gets
    /// [`StoreError::Conflict`] (or a deadlock, [`StoreError::Unavailable`]) and retries.
    pub async fn upsert_watch<C: ConnectionTrait>(
        &self,
        conn: &C,
        new: &NewWatch,
        now: DateTime<Utc>,
    ) -> Result<Upserted, StoreError> {
        use watch_row::{ActiveModel, Column, Entity};
        let t = &new.target;
        let invalid = |problem: String| StoreError::Invalid { instance: instance(t), problem };
        let revision = i64::try_from(new.revision)
            .map_err(|_| invalid(format!("revision {} is out of range", new.revision)))?;
        let deadline_secs = i64::try_from(new.deadline_secs).unwrap_or(i64::MAX);
        let target = serde_json::to_string(t).map_err(|e| invalid(e.to_string()))?;
        let objects = serde_json::to_string(&new.objects).map_err(|e| invalid(e.to_string()))?;
        // No locking read of a row that may not exist: under REPEATABLE READ it takes a gap lock,
        // and two commands inserting their first watches side by side then deadlock. Insert first
        // (concurrent inserts of other keys do not block each other) and lock only an existing row.
        let existing = if instance_filter(Entity::find(), t).one(conn).await?.is_some() {
            instance_filter(Entity::find(), t).lock_exclusive().one(conn).await?
        } else {
            None
        };
        let Some(row) = existing else {
            let row = ActiveModel {
                cluster_id: Set(t.cluster_id.clone()),
                namespace: Set(t.namespace.clone()),
                app_instance: Set(t.app_instance.clone()),
                component_instance: Set(t.component_instance.clone()),
                command_id: Set(new.command_id.clone()),
                revision: Set(revision),
                target: Set(target),
                objects: Set(objects),
                started_at: Set(now),
                deadline_secs: Set(deadline_secs),
                observed_health: Set(None),
                observed_message: Set(None),
                reported_health: Set(None),
                lease_owner: Set(None),
                lease_until: Set(None),
                version: Set(1),
                created_at: Set(now),
                updated_at: Set(now),
                ..Default::default()
            };
            return match Entity::insert(row).exec_without_returning(conn).await {
                Ok(_) => Ok(Upserted::Started),
                // Another transaction inserted it first: decide again on the next delivery.
                Err(e) if sw_db::is_duplicate(&e) => {
                    Err(StoreError::Conflict { instance: instance(t), expected: 0 })
                }
                Err(e) => Err(e.into()),
            };
        };
        if row.revision > revision {
            return Ok(Upserted::Superseded);
        }
        if row.command_id == new.command_id {
            return Ok(Upserted::Kept);
        }
        let next = row.version.checked_add(1).ok_or_else(|| invalid("version out of range".into()))?;
        // The row is locked in this transaction, so the guard only documents the rule.
        let done = Entity::update_many()
            .col_expr(Column::CommandId, Expr::value(new.command_id.clone()))
            .col_expr(Column::Revision, Expr::value(revision))
            .col_expr(Column::Target, Expr::value(target))
            .col_expr(Column::Objects, Expr::value(objects))
            .col_expr(Column::StartedAt, Expr::value(now))
            .col_expr(Column::DeadlineSecs, Expr::value(deadline_secs))
            .col_expr(Column::ObservedHealth, Expr::value(Option::<String>::None))
            .col_expr(Column::ObservedMessage, Expr::value(Option::<String>::None))
            .col_expr(Column::ReportedHealth, Expr::value(Option::<String>::None))
            .col_expr(Column::LeaseOwner, Expr::value(Option::<String>::None))
            .col_expr(Column::LeaseUntil, Expr::value(Option::<DateTime<Utc>>::None))
            .col_expr(Column::Version, Expr::value(next))
            .col_expr(Column::UpdatedAt, Expr::value(now))
            .filter(Column::Id.eq(row.id))
            .filter(Column::Version.eq(row.version))
            .exec(conn)
            .await?;
        if done.rows_affected == 0 {
            return Err(StoreError::Conflict {
                instance: instance(t),
                expected: u64::try_from(row.version).unwrap_or_default(),
            });
        }
        Ok(Upserted::Replaced)
    }

    /// Stops watching the instance for a result of `command_id` at `revision` that ends it (a delete,
    /// a failure), in `conn`: the watch of that command or of an older revision goes; a newer
    /// revision's watch, or another command's at the same revision (a refused reuse), stays.
    /// Returns whether a watch was removed.
    pub async fn remove_watch<C: ConnectionTrait>(
        &self,
        conn: &C,
        target: &ComponentTarget,
        command_id: &str,
        revision: u64,
    ) -> Result<bool, StoreError> {
        use watch_row::{Column, Entity};
        let revision = i64::try_from(revision).unwrap_or(i64::MAX);
        // Deleted by primary key after a plain read: a DELETE by the instance key that finds
        // nothing would gap-lock the unique index and deadlock other commands' first inserts.
        let Some(row) = instance_filter(Entity::find(), target).one(conn).await? else {
            return Ok(false);
        };
        let done = Entity::delete_many()
            .filter(Column::Id.eq(row.id))
            .filter(Condition::any().add(Column::Revision.lt(revision)).add(Column::CommandId.eq(command_id)))
            .exec(conn)
            .await?;
        Ok(done.rows_affected > 0)
    }

    /// Claims up to `limit` due watches for `owner` until `now + lease`, by compare-and-swap on each
    /// row's version: of two replicas claiming one row exactly one gets it. Due: no lease, a lease
    /// that ran out, or `owner`'s own. Least recently claimed first. Each claimed row comes with
    /// its new version, or as [`StoreError::Corrupt`] when it does not parse (it stays claimed, so
    /// it comes back once per lease for an operator to see).
    pub async fn claim_watches(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease: Duration,
        limit: u64,
    ) -> Result<Vec<Result<Watch, StoreError>>, StoreError> {
        use watch_row::{Column, Entity};
        let due = Condition::any()
            .add(Column::LeaseUntil.is_null())
            .add(Column::LeaseUntil.lte(now))
            .add(Column::LeaseOwner.eq(owner));
        let rows = Entity::find()
            .filter(due)
            .order_by_asc(Column::LeaseUntil)
            .order_by_asc(Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?;
        let until = later(now, lease);
        let mut claimed = Vec::with_capacity(rows.len());
        for mut row in rows {
            let next = row.version.saturating_add(1);
            let done = Entity::update_many()
                .col_expr(Column::LeaseOwner, Expr::value(owner))
                .col_expr(Column::LeaseUntil, Expr::value(until))
                .col_expr(Column::Version, Expr::value(next))
                .filter(Column::Id.eq(row.id))
                .filter(Column::Version.eq(row.version))
                .exec(&self.db)
                .await?;
            if done.rows_affected == 0 {
                // Another replica claimed it, or a newer revision replaced it, since the read.
                continue;
            }
            row.version = next;
            row.lease_owner = Some(owner.to_owned());
            row.lease_until = Some(until);
            claimed.push(parse(row));
        }
        Ok(claimed)
    }

    /// Ends the watch `id` at `version`, in `conn` (the transaction of its final event). `false`
    /// when the row moved on (replaced, taken over, already ended): the caller must then roll back
    /// and report nothing.
    pub async fn finish_watch<C: ConnectionTrait>(
        &self,
        conn: &C,
        id: i64,
        version: u64,
    ) -> Result<bool, StoreError> {
        use watch_row::{Column, Entity};
        let done = Entity::delete_many()
            .filter(Column::Id.eq(id))
            .filter(Column::Version.eq(version_db(version)))
            .exec(conn)
            .await?;
        Ok(done.rows_affected > 0)
    }

    /// Records what a check of watch `id` at `version` saw (`None`: the objects could not be read;
    /// what was seen before stays) and the health reported so far, and renews the lease until
    /// `now + lease`, in `conn`. The new version, or `None` when the row
    /// moved on (then nothing is written and nothing must be reported).
    #[allow(clippy::too_many_arguments)]
    pub async fn touch_watch<C: ConnectionTrait>(
        &self,
        conn: &C,
        id: i64,
        version: u64,
        observed: Option<&Assessment>,
        reported: Option<Health>,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Option<u64>, StoreError> {
        use watch_row::{Column, Entity};
        let next = version.saturating_add(1);
        let mut update = Entity::update_many();
        if let Some(observed) = observed {
            update = update
                .col_expr(Column::ObservedHealth, Expr::value(health_text(observed.health)))
                .col_expr(Column::ObservedMessage, Expr::value(observed.message.clone()));
        }
        let done = update
            .col_expr(Column::ReportedHealth, Expr::value(reported.map(health_text)))
            .col_expr(Column::LeaseUntil, Expr::value(later(now, lease)))
            .col_expr(Column::Version, Expr::value(version_db(next)))
            .col_expr(Column::UpdatedAt, Expr::value(now))
            .filter(Column::Id.eq(id))
            .filter(Column::Version.eq(version_db(version)))
            .exec(conn)
            .await?;
        Ok((done.rows_affected > 0).then_some(next))
    }

    /// Gives up `owner`'s leases (a replica stopping), so another replica or the next start takes
    /// the watches over at once rather than after the lease. Returns how many.
    pub async fn release_watches(&self, owner: &str) -> Result<u64, StoreError> {
        use watch_row::{Column, Entity};
        let done = Entity::update_many()
            .col_expr(Column::LeaseOwner, Expr::value(Option::<String>::None))
            .col_expr(Column::LeaseUntil, Expr::value(Option::<DateTime<Utc>>::None))
            .col_expr(Column::Version, Expr::col(Column::Version).add(1))
            .filter(Column::LeaseOwner.eq(owner))
            .exec(&self.db)
            .await?;
        Ok(done.rows_affected)
    }

    /// The instance's watch, if it is watched.
    pub async fn watch_of(&self, target: &ComponentTarget) -> Result<Option<Watch>, StoreError> {
        let row = instance_filter(watch_row::Entity::find(), target).one(&self.db).await?;
        row.map(parse).transpose()
    }

    /// Deletes up to `limit` recorded results older than `cutoff` (redeliveries of those commands
    /// are long over); returns how many. Called in bounded batches so one pass never holds locks
    /// on a large part of the table.
    pub async fn delete_results_before(&self, cutoff: DateTime<Utc>, limit: u64) -> Result<u64, StoreError> {
        let done = self
            .db
            .execute(sea_orm::Statement::from_sql_and_values(
                sea_orm::DbBackend::MySql,
                "DELETE FROM processed_command WHERE created_at < ? ORDER BY created_at LIMIT ?",
                [cutoff.into(), limit.into()],
            ))
            .await?;
        Ok(done.rows_affected())
    }
}

fn instance_filter(
    select: sea_orm::Select<watch_row::Entity>,
    t: &ComponentTarget,
) -> sea_orm::Select<watch_row::Entity> {
    use watch_row::Column;
    select
        .filter(Column::ClusterId.eq(&t.cluster_id))
        .filter(Column::Namespace.eq(&t.namespace))
        .filter(Column::AppInstance.eq(&t.app_instance))
        .filter(Column::ComponentInstance.eq(&t.component_instance))
}

/// `now + d`, saturating at `now` if the sum does not fit a timestamp (never for sane settings).
fn later(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(d).ok().and_then(|d| now.checked_add_signed(d)).unwrap_or(now)
}

fn version_db(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn health_text(h: Health) -> String {
    match serde_json::to_value(h) {
        Ok(Value::String(s)) => s,
        _ => format!("{h:?}"),
    }
}

fn parse_health(s: &str) -> Result<Health, String> {
    serde_json::from_value(Value::String(s.to_owned())).map_err(|e| format!("health {s:?}: {e}"))
}

fn parse(row: watch_row::Model) -> Result<Watch, StoreError> {
    let key = format!("{}/{}/{}/{}", row.cluster_id, row.namespace, row.app_instance, row.component_instance);
    let corrupt = |problem: String| StoreError::Corrupt { what: "health watch", key: key.clone(), problem };
    let target: ComponentTarget =
        serde_json::from_str(&row.target).map_err(|e| corrupt(format!("target: {e}")))?;
    let objects: Vec<ObjectRef> =
        serde_json::from_str(&row.objects).map_err(|e| corrupt(format!("objects: {e}")))?;
    let revision = u64::try_from(row.revision).map_err(|e| corrupt(format!("revision: {e}")))?;
    let deadline_secs = u64::try_from(row.deadline_secs).map_err(|e| corrupt(format!("deadline: {e}")))?;
    let version = u64::try_from(row.version).map_err(|e| corrupt(format!("version: {e}")))?;
    let observed = match &row.observed_health {
        Some(h) => Some(Assessment {
            health: parse_health(h).map_err(corrupt)?,
            message: row.observed_message.clone(),
        }),
        None => None,
    };
    let reported = row.reported_health.as_deref().map(parse_health).transpose().map_err(corrupt)?;
    Ok(Watch {
        id: row.id,
        command_id: row.command_id,
        revision,
        target,
        objects,
        started_at: row.started_at,
        deadline_secs,
        observed,
        reported,
        lease_owner: row.lease_owner,
        lease_until: row.lease_until,
        version,
    })
}
