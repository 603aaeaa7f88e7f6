//! How the handlers read and write rows, written once: a paged list, an insert, a delete and a
//! compare-and-swap update, each write committed together with its event (the outbox row is
//! queued in the same transaction, and the relay is woken only after the commit).

use sea_orm::{
    ActiveModelTrait, DatabaseConnection, DatabaseTransaction, DbErr, DeleteMany, EntityTrait,
    IntoActiveModel, PaginatorTrait, QueryOrder, QuerySelect, Select, SqlErr, TransactionTrait, UpdateMany,
};
use serde::Serialize;
use sw_bus::{CloudEvent, RpcReply};
use sw_contracts::{Page, PageQuery};
use sw_http::ApiError;

use super::{Ctx, corrupt};
use crate::entity::CorruptRow;

/// Compare-and-swap attempts of an update before answering 409 `version_conflict`.
const CAS_ATTEMPTS: usize = 5;

/// A row's conversion into its DTO (each entity's `Model::to_out`).
pub(super) type ToOut<M, O> = fn(&M) -> Result<O, CorruptRow>;

impl Ctx {
    /// A new transaction on the service database.
    pub(super) async fn begin(&self) -> Result<DatabaseTransaction, ApiError> {
        self.db.begin().await.map_err(sw_db::api_error)
    }
}

/// Queues `ev` in `txn`, so it is published if and only if the transaction commits.
pub(super) async fn enqueue(ctx: &Ctx, txn: &DatabaseTransaction, ev: &CloudEvent) -> Result<(), ApiError> {
    ctx.outbox.enqueue(txn, ev).await.map_err(sw_db::api_error)
}

/// Queues `ev`, commits `txn`, then wakes the outbox relay to publish it.
pub(super) async fn commit_with_event(
    ctx: &Ctx,
    txn: DatabaseTransaction,
    ev: CloudEvent,
) -> Result<(), ApiError> {
    enqueue(ctx, &txn, &ev).await?;
    txn.commit().await.map_err(sw_db::api_error)?;
    ctx.outbox.wake();
    Ok(())
}

/// One page of `select` ordered by `order`, with the total count, as a 200 reply.
pub(super) async fn paged<E, O>(
    db: &DatabaseConnection,
    select: Select<E>,
    order: E::Column,
    page: &PageQuery,
    to_out: ToOut<E::Model, O>,
) -> Result<RpcReply, ApiError>
where
    E: EntityTrait,
    E::Model: Sync,
    O: Serialize,
{
    let total = select.clone().count(db).await.map_err(sw_db::api_error)?;
    let rows = select
        .order_by_asc(order)
        .offset(page.offset())
        .limit(page.page_size())
        .all(db)
        .await
        .map_err(sw_db::api_error)?;
    let items = rows.iter().map(to_out).collect::<Result<Vec<_>, _>>().map_err(corrupt)?;
    Ok(RpcReply::ok(Page::new(items, page, total)))
}

/// Inserts `row` and commits it with `ev`. A duplicate key → 409 `already_exists` naming `what`;
/// a foreign-key failure (the `parent` was deleted meanwhile) → 404 naming the parent.
pub(super) async fn insert_with_event<E>(
    ctx: &Ctx,
    row: &E::Model,
    what: &str,
    parent: Option<&str>,
    ev: CloudEvent,
) -> Result<(), ApiError>
where
    E: EntityTrait,
    E::Model: Clone + IntoActiveModel<E::ActiveModel>,
    E::ActiveModel: Send,
{
    let txn = ctx.begin().await?;
    E::insert(row.clone().into_active_model().reset_all())
        .exec_without_returning(&txn)
        .await
        .map_err(|e| insert_error(e, what, parent))?;
    commit_with_event(ctx, txn, ev).await
}

/// Maps an insert error (see [`insert_with_event`]); anything else → 503/500.
fn insert_error(e: DbErr, what: &str, parent: Option<&str>) -> ApiError {
    if sw_db::is_duplicate(&e) {
        ApiError::conflict("already_exists", format!("{what} already exists."))
    } else if let Some(parent) = parent
        && matches!(e.sql_err(), Some(SqlErr::ForeignKeyConstraintViolation(_)))
    {
        ApiError::not_found(format!("{parent} does not exist."))
    } else {
        sw_db::api_error(e)
    }
}

/// Deletes the row `delete` selects and commits it with `ev`; no such row → 404 naming `what`.
pub(super) async fn delete_with_event<E: EntityTrait>(
    ctx: &Ctx,
    delete: DeleteMany<E>,
    what: &str,
    ev: CloudEvent,
) -> Result<(), ApiError> {
    let txn = ctx.begin().await?;
    let deleted = delete.exec(&txn).await.map_err(sw_db::api_error)?;
    if deleted.rows_affected == 0 {
        return Err(ApiError::not_found(format!("{what} does not exist.")));
    }
    commit_with_event(ctx, txn, ev).await
}

/// The new row of an update and the statement writing it, guarded by the old row's key and
/// `version` (the compare-and-swap).
pub(super) type Swap<E> = (<E as EntityTrait>::Model, UpdateMany<E>);

/// Updates one row by compare-and-swap and commits it with the event `make_event(out)`.
///
/// Each attempt reads the row with `load` (which answers 404/403 itself) and lets `change` check
/// the caller and build the new row and its guarded update from it; when the guard matches no row
/// (someone else updated or deleted it since the read) the attempt is rolled back and the row read
/// again. After [`CAS_ATTEMPTS`] lost attempts → 409 `version_conflict` naming `what`.
///
/// `load` owns what it captures (`async move` over clones): a future borrowing the handler's
/// locals fails rustc's higher-ranked `Send` check, and the router needs `Send` futures.
pub(super) async fn update_cas<E, O>(
    ctx: &Ctx,
    what: &str,
    load: impl AsyncFn(&DatabaseTransaction) -> Result<E::Model, ApiError>,
    change: impl Fn(&E::Model) -> Result<Swap<E>, ApiError>,
    to_out: ToOut<E::Model, O>,
    make_event: impl Fn(&O) -> CloudEvent,
) -> Result<RpcReply, ApiError>
where
    E: EntityTrait,
    O: Serialize,
{
    for _ in 0..CAS_ATTEMPTS {
        let txn = ctx.begin().await?;
        let old = load(&txn).await?;
        let (new, update) = change(&old)?;
        let changed = update.exec(&txn).await.map_err(sw_db::api_error)?;
        if changed.rows_affected == 0 {
            txn.rollback().await.map_err(sw_db::api_error)?;
            continue;
        }
        let out = to_out(&new).map_err(corrupt)?;
        commit_with_event(ctx, txn, make_event(&out)).await?;
        return Ok(RpcReply::ok(out));
    }
    Err(ApiError::conflict("version_conflict", format!("{what} changed concurrently too often; retry.")))
}
