//! The transactional outbox: events are written with the state change that causes them, in the
//! same MySQL transaction, and published to JetStream by a relay after commit.
//!
//! Each service's database has the `sw_outbox` table (created by [`Migration`], which the
//! service's migrator lists first). The relay takes rows in id order with
//! `FOR UPDATE SKIP LOCKED` (so replicas share the work without publishing a row twice at once),
//! publishes each with `Nats-Msg-Id` = event id, waits for the ack, and deletes the published rows
//! in the same transaction. If the process dies after publishing but before the delete commits,
//! the rows are published again on restart and JetStream's duplicate window drops the copies.

use std::sync::Arc;
use std::time::Duration;

use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, DbErr, IsolationLevel, Statement, TransactionTrait, Value,
};
use sea_orm_migration::prelude::*;
use sw_contracts::events::CloudEvent;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::{Bus, Names};

/// Rows published per transaction.
const BATCH: u64 = 100;
/// How often the relay looks for rows even when nobody woke it (rows left by a crashed replica).
const POLL: Duration = Duration::from_secs(1);
/// Deadline of one pass (database statements and publish acks together); a stuck pass is abandoned,
/// its transaction rolled back, and retried.
const PASS_DEADLINE: Duration = Duration::from_secs(30);

/// Creates `sw_outbox` (unsent events) and `sw_inbox` (ids of messages a consumer has processed).
#[derive(Debug, Default)]
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0000_sw_outbox_inbox"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(
            "CREATE TABLE IF NOT EXISTS sw_outbox (
                id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
                event_id VARCHAR(64) NOT NULL,
                subject VARCHAR(255) NOT NULL,
                traceparent VARCHAR(64) NULL,
                payload LONGTEXT NOT NULL,
                created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
        )
        .await?;
        db.execute_unprepared(
            "CREATE TABLE IF NOT EXISTS sw_inbox (
                consumer VARCHAR(128) NOT NULL,
                msg_id VARCHAR(128) NOT NULL,
                processed_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
                PRIMARY KEY (consumer, msg_id)
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("DROP TABLE IF EXISTS sw_outbox").await?;
        db.execute_unprepared("DROP TABLE IF EXISTS sw_inbox").await?;
        Ok(())
    }
}

/// One event or command ready to be written with [`Outbox::insert`].
#[derive(Debug, Clone)]
pub struct OutboxRow {
    /// The `Nats-Msg-Id`: the event's id, or the command's.
    id: String,
    subject: String,
    traceparent: Option<String>,
    payload: String,
}

/// Writes events into the outbox inside a caller's transaction and wakes the relay after commit.
#[derive(Debug, Clone)]
pub struct Outbox {
    names: Names,
    wake: Arc<Notify>,
}

impl Outbox {
    pub fn new(names: Names) -> Self {
        Self { names, wake: Arc::new(Notify::new()) }
    }

    /// Adds `event` to the outbox through `conn` (a transaction, so it commits with the change).
    pub async fn enqueue<C: ConnectionTrait>(&self, conn: &C, event: &CloudEvent) -> Result<(), DbErr> {
        self.insert(conn, vec![self.event_row(event)?]).await
    }

    /// Adds the command `name` (`k8s.apply`) with id `command_id` to the outbox through `conn`, so a
    /// service's state change and the command it causes commit together; the relay publishes it on
    /// the commands stream with `command_id` as its `Nats-Msg-Id`.
    pub async fn enqueue_command<C: ConnectionTrait, T: serde::Serialize>(
        &self,
        conn: &C,
        name: &str,
        command_id: &str,
        traceparent: Option<&str>,
        command: &T,
    ) -> Result<(), DbErr> {
        self.insert(conn, vec![self.command_row(name, command_id, traceparent, command)?]).await
    }

    /// The outbox row of `event`, for [`Outbox::insert`].
    pub fn event_row(&self, event: &CloudEvent) -> Result<OutboxRow, DbErr> {
        Ok(OutboxRow {
            id: event.id.clone(),
            subject: self.names.event_subject(event.name()),
            traceparent: event.traceparent.clone(),
            payload: serde_json::to_string(event).map_err(|e| DbErr::Custom(e.to_string()))?,
        })
    }

    /// The outbox row of command `name` with id `command_id`, for [`Outbox::insert`].
    pub fn command_row<T: serde::Serialize>(
        &self,
        name: &str,
        command_id: &str,
        traceparent: Option<&str>,
        command: &T,
    ) -> Result<OutboxRow, DbErr> {
        Ok(OutboxRow {
            id: command_id.to_owned(),
            subject: self.names.command_subject(name),
            traceparent: traceparent.map(str::to_owned),
            payload: serde_json::to_string(command).map_err(|e| DbErr::Custom(e.to_string()))?,
        })
    }

    /// Writes `rows` in one statement through `conn`; the relay publishes them in this order.
    pub async fn insert<C: ConnectionTrait>(&self, conn: &C, rows: Vec<OutboxRow>) -> Result<(), DbErr> {
        if let Some(s) = self.insert_statement(rows) {
            conn.execute(s).await?;
        }
        Ok(())
    }

    /// The statement of [`Outbox::insert`] (none for no row), for a caller that sends it with
    /// others in one round trip (e.g. an `sw_db::Batch`).
    pub fn insert_statement(&self, rows: Vec<OutboxRow>) -> Option<Statement> {
        if rows.is_empty() {
            return None;
        }
        let mut sql = String::from("INSERT INTO sw_outbox (event_id, subject, traceparent, payload) VALUES ");
        let mut values = Vec::with_capacity(rows.len() * 4);
        for (i, r) in rows.into_iter().enumerate() {
            sql.push_str(if i == 0 { "(?, ?, ?, ?)" } else { ", (?, ?, ?, ?)" });
            values.extend([
                Value::from(r.id),
                Value::from(r.subject),
                Value::from(r.traceparent),
                Value::from(r.payload),
            ]);
        }
        Some(Statement::from_sql_and_values(DbBackend::MySql, sql, values))
    }

    /// Tells the relay there is something to publish. Call after the transaction committed.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// A relay over `db` publishing through `bus`.
    pub fn relay(&self, db: DatabaseConnection, bus: Bus) -> Relay {
        // `sw.cmd.` for prefix `sw`: rows on these subjects are commands.
        let command_prefix = self.names.commands_wildcard().trim_end_matches('>').to_owned();
        Relay { db, bus, wake: self.wake.clone(), command_prefix, session_read_committed: false }
    }
}

/// Publishes outbox rows to JetStream.
#[derive(Debug, Clone)]
pub struct Relay {
    db: DatabaseConnection,
    bus: Bus,
    wake: Arc<Notify>,
    /// Subjects starting with this are commands, published with the command content type.
    command_prefix: String,
    /// The pool's sessions are READ COMMITTED already (no `SET TRANSACTION` before each pass).
    session_read_committed: bool,
}

/// Why a relay pass stopped early.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("relay pass exceeded its deadline")]
    Timeout,
    #[error("outbox database: {0}")]
    Db(#[from] DbErr),
    #[error(transparent)]
    Publish(#[from] crate::BusError),
}

impl Relay {
    /// For a pool opened with `sw_db::connect_read_committed`: its passes need not set the
    /// isolation level (a round trip each).
    pub fn session_read_committed(mut self) -> Self {
        self.session_read_committed = true;
        self
    }

    /// Publishes until `shutdown`, then makes one last pass so nothing committed stays behind.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut backoff = Duration::from_millis(200);
        loop {
            let pass = tokio::time::timeout(PASS_DEADLINE, self.publish_pending())
                .await
                .unwrap_or_else(|_| Err(RelayError::Timeout));
            match pass {
                Ok(n) => {
                    backoff = Duration::from_millis(200);
                    if n as u64 == BATCH {
                        continue;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "Outbox relay pass failed; will retry.");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(POLL) => {}
            }
        }
        match tokio::time::timeout(Duration::from_secs(5), self.publish_pending()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "Last outbox pass failed; rows stay for the next start.")
            }
            Err(_) => tracing::warn!("Last outbox pass timed out; rows stay for the next start."),
        }
    }

    /// One pass: publishes up to one batch and deletes what was acknowledged. Returns how many.
    pub async fn publish_pending(&self) -> Result<usize, RelayError> {
        // READ COMMITTED: the locking read takes the selected rows only, not the gap after the last
        // one, so services adding events while this pass publishes never wait for it (under
        // REPEATABLE READ they did, and their inserts deadlocked with this pass's delete).
        let isolation = (!self.session_read_committed).then_some(IsolationLevel::ReadCommitted);
        let txn = self.db.begin_with_config(isolation, None).await?;
        let rows = txn
            .query_all(Statement::from_sql_and_values(
                DbBackend::MySql,
                "SELECT id, event_id, subject, traceparent, payload FROM sw_outbox ORDER BY id LIMIT ? FOR UPDATE SKIP LOCKED",
                [Value::from(BATCH)],
            ))
            .await?;
        let mut done: Vec<u64> = Vec::with_capacity(rows.len());
        let mut failure = None;
        // Send the whole batch, then read the acks in order: one round trip per batch instead of
        // one per row. Rows are deleted up to the first that was not acked, so a failure keeps
        // that row and every later one for the next pass (a later one already stored is then
        // dropped by JetStream as a duplicate of its `Nats-Msg-Id`).
        let mut sent = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: u64 = row.try_get("", "id")?;
            let event_id: String = row.try_get("", "event_id")?;
            let subject: String = row.try_get("", "subject")?;
            let traceparent: Option<String> = row.try_get("", "traceparent")?;
            let payload: String = row.try_get("", "payload")?;
            let content_type = if subject.starts_with(&self.command_prefix) {
                crate::COMMAND_CONTENT_TYPE
            } else {
                crate::EVENT_CONTENT_TYPE
            };
            match self
                .bus
                .send_to_stream(
                    &subject,
                    &event_id,
                    content_type,
                    traceparent.as_deref(),
                    payload.into_bytes().into(),
                )
                .await
            {
                Ok(pending) => sent.push((id, event_id, pending)),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        for (id, event_id, pending) in sent {
            match pending.ack().await {
                Ok(duplicate) => {
                    if duplicate {
                        tracing::debug!(
                            event_id,
                            "Event was already in the stream (republished after a crash)."
                        );
                    }
                    done.push(id);
                }
                Err(e) => {
                    failure.get_or_insert(e);
                    break;
                }
            }
        }
        if !done.is_empty() {
            let placeholders = vec!["?"; done.len()].join(",");
            txn.execute(Statement::from_sql_and_values(
                DbBackend::MySql,
                format!("DELETE FROM sw_outbox WHERE id IN ({placeholders})"),
                done.iter().map(|id| Value::from(*id)),
            ))
            .await?;
        }
        txn.commit().await?;
        metrics::counter!("sw_outbox_published_total").increment(done.len() as u64);
        match failure {
            Some(e) => Err(e.into()),
            None => Ok(done.len()),
        }
    }

    /// Rows waiting to be published (for readiness and tests).
    pub async fn pending(&self) -> Result<u64, DbErr> {
        let row = self
            .db
            .query_one(Statement::from_string(DbBackend::MySql, "SELECT COUNT(*) AS n FROM sw_outbox"))
            .await?;
        Ok(row.map(|r| r.try_get::<i64>("", "n").unwrap_or(0) as u64).unwrap_or(0))
    }
}
