//! The rows of `sw_workflow` and the statements that read and write them.
//!
//! A deployment row also holds its workflow instance (one per deployment, same id). Every change of
//! a deployment, its workflow or its tasks is written by compare-and-swap on `deployment.version`
//! ([`save_deployment_stmt`]); a component row changes by compare-and-swap on its state and attempt
//! ([`save_component`]) because executor results change components while the engine may hold the
//! deployment. A lost compare-and-swap rolls the whole transaction back and the work is retried.
//!
//! The `wake` table is the engine's to-do list: one row per deployment that needs looking at, with
//! when (`due_at`). Whoever changes a deployment (a launch, an operator, an executor result) writes
//! `due_at = now` in the same transaction ([`wake`]); the engine sets it to the next deadline or
//! timer after each pass. Replicas claim due rows by lease ([`claim_due`]), so a row held by a
//! replica that died is taken over when its lease ends; `seq` tells whether a row was touched while
//! it was held, in which case it stays due ([`release`]).

use chrono::{DateTime, Utc};
use std::sync::LazyLock;

use sea_orm::{ConnectionTrait, DbBackend, DbErr, FromQueryResult, Statement, Value};
use serde_json::{Map, Value as Json};

/// The service name of the workflow's database (`{prefix}workflow`).
pub const SERVICE: &str = "workflow";

/// A `deployment` row (the deployment and its workflow instance).
#[derive(Debug, Clone, PartialEq, FromQueryResult)]
pub struct DeploymentRow {
    pub id: i64,
    pub app_id: String,
    pub team: Option<String>,
    pub app_package_id: i64,
    pub package_version: String,
    pub cluster_id: String,
    pub namespace_id: String,
    pub stage_id: Option<String>,
    pub app_instance: String,
    pub instance_key: String,
    pub state: String,
    pub reason: Option<String>,
    pub message: Option<String>,
    pub kind: String,
    pub source_id: Option<i64>,
    pub pinned: bool,
    pub configuration: String,
    pub launch_query: String,
    pub plan: String,
    pub wf_state: String,
    pub wf_mode: String,
    pub wf_context: String,
    pub wf_reason: Option<String>,
    pub wf_message: Option<String>,
    pub wf_finished_at: Option<DateTime<Utc>>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub deadline_at: Option<DateTime<Utc>>,
    pub version: i64,
}

/// A `workflow_task` row.
#[derive(Debug, Clone, PartialEq, FromQueryResult)]
pub struct TaskRow {
    pub id: i64,
    pub deployment_id: i64,
    pub step_index: i32,
    pub name: Option<String>,
    pub task_type: String,
    pub state: String,
    pub reason: Option<String>,
    pub message: Option<String>,
    pub attempt: i32,
    pub calls: i32,
    pub inputs: Option<String>,
    pub context_snapshot: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub deadline_at: Option<DateTime<Utc>>,
    pub due_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

/// A `deploy_component` row.
#[derive(Debug, Clone, PartialEq, FromQueryResult)]
pub struct ComponentRow {
    pub id: i64,
    pub deployment_id: i64,
    pub task_id: i64,
    pub unit_index: i32,
    pub component_type: String,
    pub component_name: String,
    pub component_instance: String,
    pub cluster_id: String,
    pub namespace_id: String,
    pub stage_id: Option<String>,
    pub state: String,
    pub revision: Option<i64>,
    pub attempt: i32,
    pub command_id: Option<String>,
    pub reason: Option<String>,
    pub message: Option<String>,
    pub skip_reason: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// A transaction of the workflow service. READ COMMITTED: every write is guarded by compare-and-swap
/// (or is an upsert of its own key), so locking reads of ranges (REPEATABLE READ's gap locks) would
/// only make concurrent passes, launches and the outbox relay wait for — and deadlock with — each
/// other. The service's pools are opened with [`sw_db::connect_read_committed`], whose sessions
/// are READ COMMITTED already, so this is a plain `BEGIN` (no `SET TRANSACTION` round trip).
pub async fn begin(db: &sea_orm::DatabaseConnection) -> Result<sea_orm::DatabaseTransaction, DbErr> {
    use sea_orm::TransactionTrait;
    db.begin().await
}

fn stmt(sql: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::MySql, sql, values)
}

/// The context column as an object (anything else reads as empty).
pub fn context_of(dep: &DeploymentRow) -> Map<String, Json> {
    match serde_json::from_str(&dep.wf_context) {
        Ok(Json::Object(m)) => m,
        _ => Map::new(),
    }
}

pub async fn deployment<C: ConnectionTrait>(conn: &C, id: i64) -> Result<Option<DeploymentRow>, DbErr> {
    DeploymentRow::find_by_statement(stmt("SELECT * FROM deployment WHERE id = ?", vec![id.into()]))
        .one(conn)
        .await
}

pub async fn tasks<C: ConnectionTrait>(conn: &C, deployment_id: i64) -> Result<Vec<TaskRow>, DbErr> {
    TaskRow::find_by_statement(stmt(
        "SELECT * FROM workflow_task WHERE deployment_id = ? ORDER BY step_index",
        vec![deployment_id.into()],
    ))
    .all(conn)
    .await
}

/// Every column of `deployment`, in table order (`store::tests::column_lists_name_every_column`).
const DEPLOYMENT_COLUMNS: &[&str] = &[
    "id",
    "app_id",
    "team",
    "app_package_id",
    "package_version",
    "cluster_id",
    "namespace_id",
    "stage_id",
    "app_instance",
    "instance_key",
    "state",
    "reason",
    "message",
    "kind",
    "source_id",
    "pinned",
    "configuration",
    "launch_query",
    "plan",
    "wf_state",
    "wf_mode",
    "wf_context",
    "wf_reason",
    "wf_message",
    "wf_finished_at",
    "created_by",
    "created_at",
    "updated_at",
    "started_at",
    "finished_at",
    "deadline_at",
    "version",
];

/// Every column of `workflow_task`, in table order.
const TASK_COLUMNS: &[&str] = &[
    "id",
    "deployment_id",
    "step_index",
    "name",
    "task_type",
    "state",
    "reason",
    "message",
    "attempt",
    "calls",
    "inputs",
    "context_snapshot",
    "started_at",
    "finished_at",
    "deadline_at",
    "due_at",
    "updated_at",
];

/// Every column of `deploy_component`, in table order.
const COMPONENT_COLUMNS: &[&str] = &[
    "id",
    "deployment_id",
    "task_id",
    "unit_index",
    "component_type",
    "component_name",
    "component_instance",
    "cluster_id",
    "namespace_id",
    "stage_id",
    "state",
    "revision",
    "attempt",
    "command_id",
    "reason",
    "message",
    "skip_reason",
    "updated_at",
];

/// `columns` of the table aliased `alias`, each named `{prefix}{column}` in the result.
fn select_list(alias: &str, columns: &[&str], prefix: &str) -> String {
    columns.iter().map(|c| format!("{alias}.{c} AS {prefix}{c}")).collect::<Vec<_>>().join(", ")
}

/// The read of [`deployment_rows`]: the deployment and its wake-up row's `seq` (columns prefixed
/// `d_`, NULLs for the rest), then its tasks with their components (prefixed `c_`; NULLs for a
/// task without components) and each component's revision counter (`c_revision_key`, the key the
/// SQL makes of the component's placement, and its counter `c_revision_now`, NULL when it has
/// none). Components are joined on their deployment and task, the prefix of `uq_component_unit`:
/// joined on the task alone, the server scans every component of every deployment for each read.
static DEPLOYMENT_ROWS: LazyLock<String> = LazyLock::new(|| {
    let nulls = |columns: &[&str], prefix: &str| {
        columns.iter().map(|c| format!("NULL AS {prefix}{c}")).collect::<Vec<_>>().join(", ")
    };
    format!(
        "SELECT {}, w.seq AS wake_seq, {}, {}, NULL AS c_revision_key, NULL AS c_revision_now
           FROM deployment d LEFT JOIN wake w ON w.deployment_id = d.id WHERE d.id = ?
         UNION ALL
         SELECT {}, NULL, {}, {}, {REVISION_KEY}, r.revision
           FROM workflow_task t
           JOIN deployment d ON d.id = t.deployment_id
           LEFT JOIN deploy_component c ON c.deployment_id = t.deployment_id AND c.task_id = t.id
           LEFT JOIN component_revision r ON r.instance_key = {REVISION_KEY}
          WHERE t.deployment_id = ?",
        select_list("d", DEPLOYMENT_COLUMNS, "d_"),
        nulls(TASK_COLUMNS, ""),
        nulls(COMPONENT_COLUMNS, "c_"),
        vec!["NULL"; DEPLOYMENT_COLUMNS.len()].join(", "),
        select_list("t", TASK_COLUMNS, ""),
        select_list("c", COMPONENT_COLUMNS, "c_"),
    )
});

/// A component's revision key (`cluster/namespace/app instance/component instance`, as
/// [`crate::engine::revision_key`] makes it from the component's target) from its row and its
/// deployment's.
const REVISION_KEY: &str =
    "CONCAT(c.cluster_id, '/', c.namespace_id, '/', d.app_instance, '/', c.component_instance)";

/// What a pass reads of a deployment ([`deployment_rows`]).
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentRows {
    pub dep: DeploymentRow,
    /// The `seq` of its wake-up row (`None`: it has none).
    pub wake_seq: Option<i64>,
    /// By step, as [`tasks`] reads them.
    pub tasks: Vec<TaskRow>,
    /// By task (in the order of `tasks`) and unit.
    pub comps: Vec<ComponentRow>,
    /// The revision counters of the components' keys (see [`Revisions`]).
    pub revisions: Revisions,
}

/// Revision counters read with a deployment, by key: the value it had, or `None` when the key had
/// no counter yet. A pass counts a revision of a key it holds here without a round trip
/// ([`claim_revision_stmt`]); of any other key, with one ([`next_revision`]).
pub type Revisions = std::collections::HashMap<String, Option<i64>>;

/// Deployment `id` with the `seq` of its wake-up row, its tasks, its components and their revision
/// counters, read in one statement (one round trip, one snapshot); `None` when it does not exist.
pub async fn deployment_rows<C: ConnectionTrait>(conn: &C, id: i64) -> Result<Option<DeploymentRows>, DbErr> {
    let rows = conn.query_all(stmt(&DEPLOYMENT_ROWS, vec![id.into(), id.into()])).await?;
    let mut dep = None;
    let mut tasks: Vec<TaskRow> = Vec::new();
    let mut comps = Vec::new();
    let mut revisions = Revisions::new();
    for row in &rows {
        if row.try_get::<Option<i64>>("", "d_id")?.is_some() {
            dep = Some((DeploymentRow::from_query_result(row, "d_")?, row.try_get("", "wake_seq")?));
            continue;
        }
        // The rows of a union come in no promised order: tasks are told apart by id, and both
        // lists are put in order below.
        let task_id: i64 = row.try_get("", "id")?;
        if !tasks.iter().any(|t| t.id == task_id) {
            tasks.push(TaskRow::from_query_result(row, "")?);
        }
        // A task without components (suspend, webhook…) comes once, with NULLs on the right.
        if row.try_get::<Option<i64>>("", "c_id")?.is_some() {
            comps.push(ComponentRow::from_query_result(row, "c_")?);
            revisions.insert(row.try_get("", "c_revision_key")?, row.try_get("", "c_revision_now")?);
        }
    }
    let Some((dep, wake_seq)) = dep else { return Ok(None) };
    tasks.sort_by_key(|t| (t.step_index, t.id));
    let place = |task_id: i64| tasks.iter().position(|t| t.id == task_id);
    comps.sort_by_key(|c| (place(c.task_id), c.unit_index));
    Ok(Some(DeploymentRows { dep, wake_seq, tasks, comps, revisions }))
}

/// The component sent as `command_id`, with its deployment's app and app instance (for its
/// events), read in one statement.
pub async fn component_by_command<C: ConnectionTrait>(
    conn: &C,
    command_id: &str,
) -> Result<Option<CommandComponent>, DbErr> {
    let row = conn
        .query_one(stmt(
            "SELECT c.*, d.app_id AS dep_app_id, d.app_instance AS dep_app_instance
             FROM deploy_component c JOIN deployment d ON d.id = c.deployment_id WHERE c.command_id = ?",
            vec![command_id.into()],
        ))
        .await?;
    let Some(row) = row else { return Ok(None) };
    Ok(Some(CommandComponent {
        comp: ComponentRow::from_query_result(&row, "")?,
        app_id: row.try_get("", "dep_app_id")?,
        app_instance: row.try_get("", "dep_app_instance")?,
    }))
}

/// What [`component_by_command`] reads.
#[derive(Debug, Clone)]
pub struct CommandComponent {
    pub comp: ComponentRow,
    pub app_id: String,
    pub app_instance: String,
}

/// States in which a deployment holds its app instance: later launches for it wait.
pub const HOLDING_STATES: &str = "'CREATED','COMPONENT_CHECKING','PROCESSING_COMPONENT','WAITING_COMPONENT','BACKUP_CHECKING','BACKING_UP','PROCESSING','WAITING'";

/// The oldest deployment of `instance_key` older than `id` that still holds the instance.
pub async fn holder_before<C: ConnectionTrait>(
    conn: &C,
    instance_key: &str,
    id: i64,
) -> Result<Option<i64>, DbErr> {
    let row = conn
        .query_one(stmt(
            &format!(
                "SELECT MIN(id) AS id FROM deployment WHERE instance_key = ? AND id < ? AND state IN ({HOLDING_STATES})"
            ),
            vec![instance_key.into(), id.into()],
        ))
        .await?;
    Ok(row.and_then(|r| r.try_get::<Option<i64>>("", "id").ok().flatten()))
}

/// Locks app instance `instance_key` until the caller's transaction ends (creating its row the first
/// time): launches of one instance take turns.
pub async fn lock_instance<C: ConnectionTrait>(conn: &C, instance_key: &str) -> Result<(), DbErr> {
    conn.execute(stmt(
        "INSERT INTO instance_lock (instance_key) VALUES (?) ON DUPLICATE KEY UPDATE instance_key = VALUES(instance_key)",
        vec![instance_key.into()],
    ))
    .await?;
    Ok(())
}

/// Any deployment holding `instance_key`.
pub async fn any_holder<C: ConnectionTrait>(conn: &C, instance_key: &str) -> Result<Option<i64>, DbErr> {
    holder_before(conn, instance_key, i64::MAX).await
}

/// Any deployment holding `instance_key` ([`any_holder`]), and the revision counters of `keys` (see [`Revisions`]),
/// in one statement.
pub async fn holder_and_revisions<C: ConnectionTrait>(
    conn: &C,
    instance_key: &str,
    keys: &[String],
) -> Result<(Option<i64>, Revisions), DbErr> {
    // One row at least (the holder), and one per key that has a counter.
    let on = if keys.is_empty() {
        "FALSE".to_owned()
    } else {
        format!("r.instance_key IN ({})", vec!["?"; keys.len()].join(", "))
    };
    let mut values: Vec<Value> = vec![instance_key.into()];
    values.extend(keys.iter().map(|k| Value::from(k.as_str())));
    let rows = conn
        .query_all(stmt(
            &format!(
                "SELECT (SELECT MIN(id) FROM deployment WHERE instance_key = ? AND state IN ({HOLDING_STATES})) AS holder,
                        r.instance_key, r.revision
                   FROM (SELECT 1 AS one) one LEFT JOIN component_revision r ON {on}"
            ),
            values,
        ))
        .await?;
    let mut revisions: Revisions = keys.iter().map(|k| (k.clone(), None)).collect();
    let mut holder = None;
    for row in &rows {
        holder = row.try_get::<Option<i64>>("", "holder")?;
        if let Some(key) = row.try_get::<Option<String>>("", "instance_key")? {
            revisions.insert(key, Some(row.try_get("", "revision")?));
        }
    }
    Ok((holder, revisions))
}

/// The oldest deployment of `instance_key` waiting to start (state `CREATED`), other than `except`.
pub async fn next_queued<C: ConnectionTrait>(
    conn: &C,
    instance_key: &str,
    except: i64,
) -> Result<Option<i64>, DbErr> {
    let row = conn
        .query_one(stmt(
            "SELECT MIN(id) AS id FROM deployment WHERE instance_key = ? AND id <> ? AND state = 'CREATED'",
            vec![instance_key.into(), except.into()],
        ))
        .await?;
    Ok(row.and_then(|r| r.try_get::<Option<i64>>("", "id").ok().flatten()))
}

/// Queued (`CREATED`) deployments of `instance_key` older than `id`.
pub async fn queued_before<C: ConnectionTrait>(
    conn: &C,
    instance_key: &str,
    id: i64,
) -> Result<Vec<i64>, DbErr> {
    let rows = conn
        .query_all(stmt(
            "SELECT id FROM deployment WHERE instance_key = ? AND id < ? AND state = 'CREATED' ORDER BY id",
            vec![instance_key.into(), id.into()],
        ))
        .await?;
    rows.iter().map(|r| r.try_get::<i64>("", "id")).collect()
}

/// The newest `SUCCESS` deployment of `instance_key` older than `before`.
pub async fn last_success_before<C: ConnectionTrait>(
    conn: &C,
    instance_key: &str,
    before: i64,
) -> Result<Option<DeploymentRow>, DbErr> {
    DeploymentRow::find_by_statement(stmt(
        "SELECT * FROM deployment WHERE instance_key = ? AND id < ? AND state = 'SUCCESS' ORDER BY id DESC LIMIT 1",
        vec![instance_key.into(), before.into()],
    ))
    .one(conn)
    .await
}

/// The pin on `instance_key`: the newest pinned (rollback) deployment, unless a newer deployment
/// succeeded since (a new release ends the pin).
pub async fn pin_of<C: ConnectionTrait>(conn: &C, instance_key: &str) -> Result<Option<i64>, DbErr> {
    let row = conn
        .query_one(stmt(
            "SELECT MAX(id) AS id FROM deployment WHERE instance_key = ? AND pinned = 1",
            vec![instance_key.into()],
        ))
        .await?;
    let Some(pin) = row.and_then(|r| r.try_get::<Option<i64>>("", "id").ok().flatten()) else {
        return Ok(None);
    };
    let newer = conn
        .query_one(stmt(
            "SELECT COUNT(*) AS n FROM deployment WHERE instance_key = ? AND id > ? AND state = 'SUCCESS'",
            vec![instance_key.into(), pin.into()],
        ))
        .await?;
    let n = newer.map(|r| r.try_get::<i64>("", "n").unwrap_or(0)).unwrap_or(0);
    Ok((n == 0).then_some(pin))
}

/// Inserts a deployment row (id ignored) and returns its id.
pub async fn insert_deployment<C: ConnectionTrait>(conn: &C, d: &DeploymentRow) -> Result<i64, DbErr> {
    let r = conn
        .execute(stmt(
            &format!(
                "INSERT INTO deployment (app_id, team, app_package_id, package_version, cluster_id, namespace_id, stage_id,
                    app_instance, instance_key, kind, source_id, configuration, launch_query, plan, wf_mode, created_by,
                    created_at, {}, version)
                 VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,{}?)",
                DEPLOYMENT_SET.join(", "),
                "?,".repeat(DEPLOYMENT_SET.len())
            ),
            vec![
                d.app_id.clone().into(),
                d.team.clone().into(),
                d.app_package_id.into(),
                d.package_version.clone().into(),
                d.cluster_id.clone().into(),
                d.namespace_id.clone().into(),
                d.stage_id.clone().into(),
                d.app_instance.clone().into(),
                d.instance_key.clone().into(),
                d.kind.clone().into(),
                d.source_id.into(),
                d.configuration.clone().into(),
                d.launch_query.clone().into(),
                d.plan.clone().into(),
                d.wf_mode.clone().into(),
                d.created_by.clone().into(),
                d.created_at.into(),
            ]
            .into_iter()
            .chain(deployment_values(d))
            .chain([d.version.into()])
            .collect(),
        ))
        .await?;
    Ok(r.last_insert_id() as i64)
}

/// The columns of a deployment that change after its insert ([`save_deployment_stmt`]), besides
/// `version`.
const DEPLOYMENT_SET: &[&str] = &[
    "state",
    "reason",
    "message",
    "pinned",
    "wf_state",
    "wf_context",
    "wf_reason",
    "wf_message",
    "wf_finished_at",
    "updated_at",
    "started_at",
    "finished_at",
    "deadline_at",
];

/// A deployment's mutable columns, in the order of [`DEPLOYMENT_SET`].
fn deployment_values(d: &DeploymentRow) -> Vec<Value> {
    vec![
        d.state.clone().into(),
        d.reason.clone().into(),
        d.message.clone().into(),
        d.pinned.into(),
        d.wf_state.clone().into(),
        d.wf_context.clone().into(),
        d.wf_reason.clone().into(),
        d.wf_message.clone().into(),
        d.wf_finished_at.into(),
        d.updated_at.into(),
        d.started_at.into(),
        d.finished_at.into(),
        d.deadline_at.into(),
    ]
}

/// Starts the count of rows a pass's guarded statements match, in the session variable
/// `@sw_matched` ([`count_matched_stmt`], [`save_deployment_stmt`]).
pub fn start_matched_stmt() -> Statement {
    stmt("SET @sw_matched = 0", vec![])
}

/// Adds the rows the statement before matched to `@sw_matched` (the connection reports rows
/// matched, not only changed: `CLIENT_FOUND_ROWS`).
pub fn count_matched_stmt() -> Statement {
    stmt("SET @sw_matched = @sw_matched + ROW_COUNT()", vec![])
}

/// Writes the mutable columns of `d`, whose version was read as `expected`; the row gets
/// `expected + 1`. It is the last of a pass's guarded statements and checks them all: when the
/// version is no longer `expected` (someone else changed the deployment first) or the statements
/// before it matched fewer than `matched` rows (`@sw_matched`: a component changed since it was
/// read), it writes version 0, which `ck_deployment_version` refuses — the statement fails
/// ([`sw_db::is_check_violation`]) and the transaction with it.
pub fn save_deployment_stmt(d: &DeploymentRow, expected: i64, matched: u64) -> Statement {
    let set: Vec<String> = DEPLOYMENT_SET.iter().map(|c| format!("{c} = ?")).collect();
    let mut values = deployment_values(d);
    values.extend([expected.into(), matched.into(), (expected + 1).into(), d.id.into()]);
    stmt(
        &format!(
            "UPDATE deployment SET {}, version = IF(version = ? AND @sw_matched = ?, ?, 0) WHERE id = ?",
            set.join(", ")
        ),
        values,
    )
}

/// Inserts a task row (id ignored) and returns its id.
pub async fn insert_task<C: ConnectionTrait>(conn: &C, t: &TaskRow) -> Result<i64, DbErr> {
    let r = conn
        .execute(stmt(
            "INSERT INTO workflow_task (deployment_id, step_index, name, task_type, state, reason, message, attempt, calls,
                inputs, context_snapshot, started_at, finished_at, deadline_at, due_at, updated_at)
             VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            vec![
                t.deployment_id.into(),
                t.step_index.into(),
                t.name.clone().into(),
                t.task_type.clone().into(),
            ]
            .into_iter()
            .chain(task_values(t))
            .collect(),
        ))
        .await?;
    Ok(r.last_insert_id() as i64)
}

/// Writes the mutable columns of `tasks` in one statement, however many changed (guarded by the
/// deployment's compare-and-swap in the same transaction); none for no task. It matches every
/// task's row.
pub fn save_tasks_stmt(tasks: &[&TaskRow]) -> Option<Statement> {
    if tasks.is_empty() {
        return None;
    }
    let rows = tasks.iter().map(|t| (t.id, task_values(t), Vec::new())).collect();
    Some(update_by_id("workflow_task", TASK_SET, "", rows))
}

/// The columns [`save_tasks_stmt`] writes: all but the task's identity (id, deployment, step,
/// name, type).
const TASK_SET: &[&str] = TASK_COLUMNS.split_at(5).1;

/// One `UPDATE` of the rows of `table` with the given ids: each column in `set` takes its row's
/// value, and a row is matched when its id matches and, when `guard` is not empty, that condition
/// holds with its row's values (e.g. `state = ? AND attempt = ?`). `rows`: (id, values of `set`,
/// values of `guard`). One row is a plain `SET col = ? … WHERE id = ?`; several take their values
/// by `CASE id WHEN … THEN … END`. The connection reports rows matched, so `rows_affected` tells
/// how many guards held.
fn update_by_id(
    table: &str,
    set: &[&str],
    guard: &str,
    rows: Vec<(i64, Vec<Value>, Vec<Value>)>,
) -> Statement {
    let mut sql = format!("UPDATE {table} SET ");
    let mut values = Vec::new();
    for (i, col) in set.iter().enumerate() {
        if i > 0 {
            sql.push_str(", ");
        }
        if let [(_, vals, _)] = rows.as_slice() {
            sql.push_str(&format!("{col} = ?"));
            values.push(vals[i].clone());
            continue;
        }
        sql.push_str(&format!("{col} = CASE id"));
        for (id, vals, _) in &rows {
            sql.push_str(" WHEN ? THEN ?");
            values.push((*id).into());
            values.push(vals[i].clone());
        }
        sql.push_str(" END");
    }
    sql.push_str(" WHERE ");
    for (i, (id, _, guard_values)) in rows.iter().enumerate() {
        if i > 0 {
            sql.push_str(" OR ");
        }
        if guard.is_empty() {
            sql.push_str("id = ?");
        } else {
            sql.push_str(&format!("(id = ? AND {guard})"));
        }
        values.push((*id).into());
        values.extend(guard_values.iter().cloned());
    }
    stmt(&sql, values)
}

/// A task's mutable columns, in the order of [`TASK_SET`].
fn task_values(t: &TaskRow) -> Vec<Value> {
    vec![
        t.state.clone().into(),
        t.reason.clone().into(),
        t.message.clone().into(),
        t.attempt.into(),
        t.calls.into(),
        t.inputs.clone().into(),
        t.context_snapshot.clone().into(),
        t.started_at.into(),
        t.finished_at.into(),
        t.deadline_at.into(),
        t.due_at.into(),
        t.updated_at.into(),
    ]
}

/// Inserts a component row (id ignored) and returns its id.
pub async fn insert_component<C: ConnectionTrait>(conn: &C, c: &ComponentRow) -> Result<i64, DbErr> {
    let r = conn
        .execute(stmt(
            "INSERT INTO deploy_component (deployment_id, task_id, unit_index, component_type, component_name,
                component_instance, cluster_id, namespace_id, stage_id, state, revision, attempt, command_id, reason,
                message, skip_reason, updated_at)
             VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            vec![
                c.deployment_id.into(),
                c.task_id.into(),
                c.unit_index.into(),
                c.component_type.clone().into(),
                c.component_name.clone().into(),
                c.component_instance.clone().into(),
                c.cluster_id.clone().into(),
                c.namespace_id.clone().into(),
                c.stage_id.clone().into(),
                c.state.clone().into(),
                c.revision.into(),
                c.attempt.into(),
                c.command_id.clone().into(),
                c.reason.clone().into(),
                c.message.clone().into(),
                c.skip_reason.clone().into(),
                c.updated_at.into(),
            ],
        ))
        .await?;
    Ok(r.last_insert_id() as i64)
}

/// [`save_component`] for several components in one statement, each `(row, expected state,
/// expected attempt)`. True when every one still had its expected state and attempt; otherwise
/// some rows may have changed and the caller must roll the transaction back.
pub async fn save_components<C: ConnectionTrait>(
    conn: &C,
    comps: &[(&ComponentRow, &str, i32)],
) -> Result<bool, DbErr> {
    let Some(s) = save_components_stmt(comps) else { return Ok(true) };
    Ok(conn.execute(s).await?.rows_affected() == comps.len() as u64)
}

/// The statement of [`save_components`] (none for no component): it matches one row per
/// component whose guard holds.
pub fn save_components_stmt(comps: &[(&ComponentRow, &str, i32)]) -> Option<Statement> {
    if comps.is_empty() {
        return None;
    }
    let rows = comps
        .iter()
        .map(|(c, state, attempt)| (c.id, component_values(c), vec![(*state).into(), (*attempt).into()]))
        .collect();
    Some(update_by_id("deploy_component", COMPONENT_SET, "state = ? AND attempt = ?", rows))
}

/// The columns [`save_component`] and [`save_components`] write.
const COMPONENT_SET: &[&str] =
    &["state", "revision", "attempt", "command_id", "reason", "message", "updated_at"];

/// A component's mutable columns, in the order of [`COMPONENT_SET`].
fn component_values(c: &ComponentRow) -> Vec<Value> {
    vec![
        c.state.clone().into(),
        c.revision.into(),
        c.attempt.into(),
        c.command_id.clone().into(),
        c.reason.clone().into(),
        c.message.clone().into(),
        c.updated_at.into(),
    ]
}

/// Writes a component's mutable columns if it is still in `(state, attempt)`. False when an
/// executor result or another writer changed it first.
pub async fn save_component<C: ConnectionTrait>(
    conn: &C,
    c: &ComponentRow,
    expected_state: &str,
    expected_attempt: i32,
) -> Result<bool, DbErr> {
    save_components(conn, &[(c, expected_state, expected_attempt)]).await
}

/// The next revision of a component instance (1 for the first), counted in the caller's
/// transaction so the revision and the command carrying it commit together. One statement: the
/// upsert hands the new value back as its `LAST_INSERT_ID`.
pub async fn next_revision<C: ConnectionTrait>(conn: &C, instance_key: &str) -> Result<i64, DbErr> {
    let r = conn
        .execute(stmt(
            "INSERT INTO component_revision (instance_key, revision) VALUES (?, LAST_INSERT_ID(1))
             ON DUPLICATE KEY UPDATE revision = LAST_INSERT_ID(revision + 1)",
            vec![instance_key.into()],
        ))
        .await?;
    match r.last_insert_id() {
        0 => Err(DbErr::Custom("the revision counter returned no value".into())),
        n => i64::try_from(n).map_err(|e| DbErr::Custom(e.to_string())),
    }
}

/// Counts revision `now + 1` (1 when `now` is `None`: the key had no counter) of `instance_key`,
/// whose counter was read as `now`, without reading it again; the new revision and the statement.
/// When the counter is no longer `now` (another pass counted one since, or created it), the
/// statement writes 0, which `ck_revision_positive` refuses: the transaction fails
/// ([`sw_db::is_check_violation`]) and nothing of it is written.
pub fn claim_revision_stmt(instance_key: &str, now: Option<i64>) -> (i64, Statement) {
    let seen = now.unwrap_or(0);
    let next = seen + 1;
    let s = stmt(
        "INSERT INTO component_revision (instance_key, revision) VALUES (?, ?)
         ON DUPLICATE KEY UPDATE revision = IF(revision = ?, ?, 0)",
        vec![instance_key.into(), next.into(), seen.into(), next.into()],
    );
    (next, s)
}

/// Marks deployment `id` due at `at` (now, for "look at it at once").
pub async fn wake<C: ConnectionTrait>(conn: &C, id: i64, at: DateTime<Utc>) -> Result<(), DbErr> {
    conn.execute(wake_stmt(id, at)).await?;
    Ok(())
}

/// The statement of [`wake`].
pub fn wake_stmt(id: i64, at: DateTime<Utc>) -> Statement {
    stmt(
        "INSERT INTO wake (deployment_id, due_at, seq) VALUES (?, ?, 1)
         ON DUPLICATE KEY UPDATE due_at = LEAST(due_at, VALUES(due_at)), seq = seq + 1",
        vec![id.into(), at.into()],
    )
}

/// Due deployments claimed for `lease` under `claim` (an owner string unique to this claim), with
/// the `seq` each had when claimed, the oldest due first. The candidates are read without locks and
/// taken by primary key in one statement (a locking scan of the due-time index would deadlock with
/// the writers that mark rows due), then read back.
pub async fn claim_due<C: ConnectionTrait>(
    conn: &C,
    claim: &str,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<(i64, i64)>, DbErr> {
    let rows = conn
        .query_all(stmt(
            "SELECT deployment_id FROM wake WHERE due_at <= ? AND (lease_until IS NULL OR lease_until < ?)
             ORDER BY due_at LIMIT ?",
            vec![now.into(), now.into(), limit.into()],
        ))
        .await?;
    let mut ids =
        rows.iter().map(|r| r.try_get::<i64>("", "deployment_id")).collect::<Result<Vec<_>, _>>()?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    ids.sort_unstable();
    let marks = vec!["?"; ids.len()].join(",");
    let mut values: Vec<Value> = vec![lease_until.into(), claim.into(), now.into(), now.into()];
    values.extend(ids.iter().map(|i| Value::from(*i)));
    let taken = conn
        .execute(stmt(
            &format!(
                "UPDATE wake SET lease_until = ?, owner = ? WHERE due_at <= ? AND (lease_until IS NULL OR lease_until < ?)
                 AND deployment_id IN ({marks})"
            ),
            values,
        ))
        .await?;
    if taken.rows_affected() == 0 {
        return Ok(Vec::new());
    }
    let mut values: Vec<Value> = vec![claim.into()];
    values.extend(ids.iter().map(|i| Value::from(*i)));
    let rows = conn
        .query_all(stmt(
            &format!("SELECT deployment_id, seq FROM wake WHERE owner = ? AND deployment_id IN ({marks})"),
            values,
        ))
        .await?;
    rows.iter().map(|r| Ok((r.try_get("", "deployment_id")?, r.try_get("", "seq")?))).collect()
}

/// After a pass that ran outside the driver (inside an executor result's transaction): the
/// wake-up row of `id`, read with `seq` before the pass loaded, now says `next` — unless somebody
/// marked it since (its `seq` moved: they need a pass, so it stays due) or a replica holds it (its
/// release decides). With no row before and a `next`, a row due then is added. None when there is
/// nothing to settle.
pub fn settle_wake_stmt(
    id: i64,
    seq: Option<i64>,
    next: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<Statement> {
    let free = "(lease_until IS NULL OR lease_until < ?)";
    match (seq, next) {
        (Some(seq), None) => Some(stmt(
            &format!("DELETE FROM wake WHERE deployment_id = ? AND seq = ? AND {free}"),
            vec![id.into(), seq.into(), now.into()],
        )),
        (Some(seq), Some(at)) => Some(stmt(
            &format!("UPDATE wake SET due_at = ? WHERE deployment_id = ? AND seq = ? AND {free}"),
            vec![at.into(), id.into(), seq.into(), now.into()],
        )),
        (None, Some(at)) => Some(stmt(
            "INSERT INTO wake (deployment_id, due_at, seq) VALUES (?, ?, 1)
             ON DUPLICATE KEY UPDATE due_at = LEAST(due_at, VALUES(due_at))",
            vec![id.into(), at.into()],
        )),
        (None, None) => None,
    }
}

/// Ends this replica's hold on `id`: the row goes when nothing is left to do (`next = None`) and
/// nobody touched it since the claim (`seq`); otherwise it stays, due at `next` or — when touched —
/// at once.
pub async fn release<C: ConnectionTrait>(
    conn: &C,
    id: i64,
    seq: i64,
    owner: &str,
    next: Option<DateTime<Utc>>,
) -> Result<(), DbErr> {
    for s in release_stmts(id, seq, owner, next) {
        conn.execute(s).await?;
    }
    Ok(())
}

/// The statements of [`release`], in order.
pub fn release_stmts(id: i64, seq: i64, owner: &str, next: Option<DateTime<Utc>>) -> [Statement; 2] {
    let settle = match next {
        None => stmt("DELETE FROM wake WHERE deployment_id = ? AND seq = ?", vec![id.into(), seq.into()]),
        Some(at) => stmt(
            "UPDATE wake SET due_at = ?, lease_until = NULL, owner = NULL WHERE deployment_id = ? AND seq = ?",
            vec![at.into(), id.into(), seq.into()],
        ),
    };
    // Touched while held: due now, free for anyone.
    let touched = stmt(
        "UPDATE wake SET lease_until = NULL, owner = NULL WHERE deployment_id = ? AND owner = ?",
        vec![id.into(), owner.into()],
    );
    [settle, touched]
}

/// Deployments of a page, newest first, with the total.
pub async fn list<C: ConnectionTrait>(
    conn: &C,
    app_id: Option<&str>,
    app_instance: Option<&str>,
    state: Option<&str>,
    offset: u64,
    limit: u64,
) -> Result<(Vec<DeploymentRow>, u64), DbErr> {
    let mut filter = String::from(" WHERE 1=1");
    let mut values: Vec<Value> = Vec::new();
    if let Some(a) = app_id {
        filter.push_str(" AND app_id = ?");
        values.push(a.into());
    }
    if let Some(i) = app_instance {
        filter.push_str(" AND app_instance = ?");
        values.push(i.into());
    }
    if let Some(s) = state {
        filter.push_str(" AND state = ?");
        values.push(s.into());
    }
    let total = conn
        .query_one(stmt(&format!("SELECT COUNT(*) AS n FROM deployment{filter}"), values.clone()))
        .await?
        .map(|r| r.try_get::<i64>("", "n").unwrap_or(0) as u64)
        .unwrap_or(0);
    let mut page_values = values;
    page_values.push(limit.into());
    page_values.push(offset.into());
    let rows = DeploymentRow::find_by_statement(stmt(
        &format!("SELECT * FROM deployment{filter} ORDER BY id DESC LIMIT ? OFFSET ?"),
        page_values,
    ))
    .all(conn)
    .await?;
    Ok((rows, total))
}

#[cfg(test)]
mod tests {
    use sea_orm::{ConnectionTrait, FromQueryResult};
    use sw_testkit::TestEnv;

    async fn isolation<C: ConnectionTrait>(conn: &C) -> String {
        let row = conn
            .query_one(super::stmt("SELECT @@tx_isolation AS level", vec![]))
            .await
            .expect("query")
            .expect("a row");
        row.try_get("", "level").expect("level")
    }

    /// `begin` sends no `SET TRANSACTION`: its READ COMMITTED comes from the pool's sessions, on
    /// every connection of the pool (not only the first), and a plain pool stays at the server's.
    #[tokio::test]
    async fn transactions_of_the_services_pool_run_read_committed() {
        let env = TestEnv::new();
        let mut cfg = env.cfg.database.clone();
        cfg.max_connections = 3;
        let db = sw_db::connect_read_committed(&cfg, super::SERVICE).await.expect("pool");
        let txns = futures::future::join_all((0..3).map(|_| super::begin(&db))).await;
        for txn in txns {
            let txn = txn.expect("begin");
            assert_eq!(isolation(&txn).await, "READ-COMMITTED");
            txn.commit().await.expect("commit");
        }
        let plain = sw_db::connect(&cfg, super::SERVICE).await.expect("plain pool");
        let txn = super::begin(&plain).await.expect("begin");
        assert_eq!(isolation(&txn).await, "REPEATABLE-READ", "the server default is what a plain pool gets");
        txn.rollback().await.expect("rollback");
        env.cleanup().await;
    }

    /// The components of a deployment read on their own: what the one-statement read must match.
    async fn components<C: ConnectionTrait>(
        conn: &C,
        deployment_id: i64,
    ) -> Result<Vec<super::ComponentRow>, sea_orm::DbErr> {
        super::ComponentRow::find_by_statement(super::stmt(
            "SELECT c.* FROM deploy_component c JOIN workflow_task t ON t.id = c.task_id
             WHERE c.deployment_id = ? ORDER BY t.step_index, c.unit_index",
            vec![deployment_id.into()],
        ))
        .all(conn)
        .await
    }

    /// A test database with the service's tables, on a READ COMMITTED pool as the service's.
    async fn migrated() -> (TestEnv, sea_orm::DatabaseConnection) {
        let env = TestEnv::new();
        let cfg = env.cfg.database.clone();
        let db = sw_db::connect_read_committed(&cfg, super::SERVICE).await.expect("pool");
        sw_db::migrate::<crate::migration::Migrator>(&db, &sw_db::database_name(&cfg, super::SERVICE))
            .await
            .expect("migrate");
        (env, db)
    }

    fn task(deployment_id: i64, step_index: i32, task_type: &str) -> super::TaskRow {
        super::TaskRow {
            id: 0,
            deployment_id,
            step_index,
            name: Some(format!("step-{step_index}")),
            task_type: task_type.into(),
            state: "PENDING".into(),
            reason: None,
            message: None,
            attempt: 0,
            calls: 0,
            inputs: Some("{}".into()),
            context_snapshot: None,
            started_at: None,
            finished_at: None,
            deadline_at: None,
            due_at: None,
            updated_at: chrono::Utc::now(),
        }
    }

    fn component(deployment_id: i64, task_id: i64, unit_index: i32) -> super::ComponentRow {
        super::ComponentRow {
            id: 0,
            deployment_id,
            task_id,
            unit_index,
            component_type: "K8S_MANIFESTS".into(),
            component_name: format!("c{unit_index}"),
            component_instance: format!("c{unit_index}"),
            cluster_id: "emu".into(),
            namespace_id: "default".into(),
            stage_id: None,
            state: "CREATED".into(),
            revision: None,
            attempt: 0,
            command_id: None,
            reason: None,
            message: None,
            skip_reason: None,
            updated_at: chrono::Utc::now(),
        }
    }

    fn deployment(app_instance: &str) -> super::DeploymentRow {
        let at = chrono::DateTime::from_timestamp(1_795_000_000, 123_456_000).expect("time");
        super::DeploymentRow {
            id: 0,
            app_id: "app".into(),
            team: None,
            app_package_id: 1,
            package_version: "1.0.0".into(),
            cluster_id: "emu".into(),
            namespace_id: "default".into(),
            stage_id: Some("prod".into()),
            app_instance: app_instance.into(),
            instance_key: format!("emu/default/{app_instance}"),
            state: "PROCESSING".into(),
            reason: None,
            message: Some("it's \\ 'quoted'".into()),
            kind: "LAUNCH".into(),
            source_id: None,
            pinned: true,
            configuration: "{}".into(),
            launch_query: "{}".into(),
            plan: r#"{"steps":[]}"#.into(),
            wf_state: "RUNNING".into(),
            wf_mode: "STEP_BY_STEP".into(),
            wf_context: r#"{"k":"v"}"#.into(),
            wf_reason: None,
            wf_message: None,
            wf_finished_at: None,
            created_by: "user:alice".into(),
            created_at: at,
            updated_at: at,
            started_at: Some(at),
            finished_at: None,
            deadline_at: Some(at + chrono::Duration::minutes(30)),
            version: 3,
        }
    }

    /// The column lists the reads name every column of their tables, in order: a column added by a
    /// migration and missing from a list fails here, not in a pass.
    #[tokio::test]
    async fn column_lists_name_every_column() {
        let (env, db) = migrated().await;
        for (table, list) in [
            ("deployment", super::DEPLOYMENT_COLUMNS),
            ("workflow_task", super::TASK_COLUMNS),
            ("deploy_component", super::COMPONENT_COLUMNS),
        ] {
            let rows = db
                .query_all(super::stmt(
                    "SELECT column_name AS name FROM information_schema.columns
                     WHERE table_schema = DATABASE() AND table_name = ? ORDER BY ordinal_position",
                    vec![table.into()],
                ))
                .await
                .expect("columns");
            let names: Vec<String> = rows.iter().map(|r| r.try_get("", "name").expect("name")).collect();
            assert_eq!(names, list, "{table}");
        }
        env.cleanup().await;
    }

    /// The one-statement read gives what the separate reads give (a task without components
    /// included, in order whatever the order of the ids), and the batched writes change every row
    /// or, when a guard fails, report it.
    #[tokio::test]
    async fn a_deployment_reads_in_one_statement_and_saves_in_one_per_table() {
        use sea_orm::TransactionTrait;
        let (env, db) = migrated().await;
        let dep = super::insert_deployment(&db, &deployment("a")).await.expect("deployment");
        let noise = super::insert_deployment(&db, &deployment("b")).await.expect("deployment");
        // `dep`: a deploy step with two components, a suspend step, a step with one.
        // `noise`: one step with one component.
        let mut ids = Vec::new();
        for (d, step, kind, units) in [
            (dep, 2, "apply-components", 1),
            (dep, 1, "suspend", 0),
            (noise, 0, "deploy", 1),
            (dep, 0, "deploy", 2),
        ] {
            let t = super::insert_task(&db, &task(d, step, kind)).await.expect("task");
            for u in (0..units).rev() {
                super::insert_component(&db, &component(d, t, u)).await.expect("component");
            }
            ids.push(t);
        }
        let read = super::deployment_rows(&db, dep).await.expect("read").expect("found");
        let mut expected_dep = deployment("a");
        expected_dep.id = dep;
        assert_eq!(read.dep, expected_dep);
        assert_eq!(read.dep, super::deployment(&db, dep).await.expect("deployment").expect("found"));
        assert_eq!(read.wake_seq, None);
        let tasks = read.tasks;
        let comps = read.comps;
        assert_eq!(tasks, super::tasks(&db, dep).await.expect("tasks"));
        assert_eq!(tasks.iter().map(|t| t.step_index).collect::<Vec<_>>(), vec![0, 1, 2]);
        assert_eq!(
            comps.iter().map(|c| (c.task_id, c.unit_index)).collect::<Vec<_>>(),
            vec![(ids[3], 0), (ids[3], 1), (ids[0], 0)]
        );
        assert_eq!(comps, components(&db, dep).await.expect("components"));
        // The components' revision counters: c0 has one, c1 none yet.
        assert_eq!(
            read.revisions,
            [("emu/default/a/c0".to_owned(), None), ("emu/default/a/c1".to_owned(), None)].into()
        );
        for _ in 0..4 {
            super::next_revision(&db, "emu/default/a/c0").await.expect("revision");
        }
        assert_eq!(
            super::deployment_rows(&db, dep).await.expect("read").expect("found").revisions,
            [("emu/default/a/c0".to_owned(), Some(4)), ("emu/default/a/c1".to_owned(), None)].into()
        );
        // The wake-up row's seq comes with it; a deployment without tasks reads alone; none: None.
        super::wake(&db, dep, chrono::Utc::now()).await.expect("wake");
        super::wake(&db, dep, chrono::Utc::now()).await.expect("wake");
        assert_eq!(super::deployment_rows(&db, dep).await.expect("read").expect("found").wake_seq, Some(2));
        let bare = super::insert_deployment(&db, &deployment("c")).await.expect("deployment");
        let alone = super::deployment_rows(&db, bare).await.expect("read").expect("found");
        assert_eq!((alone.dep.id, alone.tasks.len(), alone.comps.len()), (bare, 0, 0));
        assert_eq!(super::deployment_rows(&db, bare + 100).await.expect("read"), None);

        // Tasks: two rows in one statement.
        let mut changed = tasks.clone();
        changed[0].state = "SUCCESS".into();
        changed[2].state = "RUNNING".into();
        changed[2].message = Some("it's \\ 'quoted'".into());
        let save = super::save_tasks_stmt(&[&changed[0], &changed[2]]).expect("two tasks");
        assert_eq!(db.execute(save).await.expect("save tasks").rows_affected(), 2);
        assert_eq!(super::tasks(&db, dep).await.expect("tasks"), changed);

        // Components: every guard holds → all written; one guard fails → false, rolled back.
        let mut c = comps.clone();
        c[0].state = "SUCCESS".into();
        c[2].state = "PROCESSING".into();
        c[2].revision = Some(3);
        let txn = db.begin().await.expect("begin");
        assert!(
            super::save_components(&txn, &[(&c[0], "CREATED", 0), (&c[2], "CREATED", 0)])
                .await
                .expect("save")
        );
        txn.commit().await.expect("commit");
        assert_eq!(components(&db, dep).await.expect("components"), c);
        let mut stale = c.clone();
        stale[1].state = "PROCESSING".into();
        stale[2].state = "SUCCESS".into();
        let txn = db.begin().await.expect("begin");
        let held = super::save_components(&txn, &[(&stale[1], "CREATED", 0), (&stale[2], "CREATED", 0)])
            .await
            .expect("save");
        assert!(!held, "component {} is no longer CREATED", c[2].id);
        txn.rollback().await.expect("rollback");
        assert_eq!(components(&db, dep).await.expect("components"), c);
        // One row: the same guard, in a plain statement.
        assert!(!super::save_component(&db, &stale[2], "CREATED", 0).await.expect("save one"));
        assert!(super::save_component(&db, &stale[1], "CREATED", 0).await.expect("save one"));
        assert_eq!(components(&db, dep).await.expect("components")[1], stale[1]);
        env.cleanup().await;
    }

    /// A revision counted from the counter read with the deployment takes the next number when
    /// the counter is still what was read (or still missing), and fails the transaction — nothing
    /// written — when another pass counted one since: whichever way the two raced, no revision is
    /// given twice.
    #[tokio::test]
    async fn a_revision_counted_without_a_read_is_never_given_twice() {
        use sea_orm::TransactionTrait;
        let (env, db) = migrated().await;
        let key = "emu/default/a/c0";
        let (holder, read) =
            super::holder_and_revisions(&db, "emu/default/a", &[key.to_owned()]).await.expect("read");
        assert_eq!((holder, read.clone()), (None, [(key.to_owned(), None)].into()));
        let counter = || async {
            super::holder_and_revisions(&db, "emu/default/a", &[key.to_owned()]).await.expect("read").1[key]
        };

        // Missing, and still missing: 1.
        let (next, claim) = super::claim_revision_stmt(key, read[key]);
        assert_eq!(next, 1);
        db.execute(claim).await.expect("claim");
        assert_eq!(counter().await, Some(1));
        // Read as 1 and still 1: 2. In a batch, as a pass writes it.
        let (next, claim) = super::claim_revision_stmt(key, Some(1));
        assert_eq!(next, 2);
        let mut batch = sw_db::Batch::new();
        batch.push(&claim).expect("push");
        batch.execute(&db).await.expect("claim");
        assert_eq!(counter().await, Some(2));

        // Stale: read as 1 (another pass counted 2 since), or read as missing (another created it).
        for seen in [Some(1), None] {
            let txn = db.begin().await.expect("begin");
            let (_, claim) = super::claim_revision_stmt(key, seen);
            let err = txn.execute(claim).await.expect_err("the counter moved");
            assert!(sw_db::is_check_violation(&err), "{err}");
            assert!(!sw_db::is_lock_conflict(&err) && !sw_db::is_duplicate(&err), "{err}");
            txn.rollback().await.expect("rollback");
            assert_eq!(counter().await, Some(2), "nothing written");
        }
        // The counter with a round trip goes on from there.
        assert_eq!(super::next_revision(&db, key).await.expect("revision"), 3);

        // The holder comes with the counters: one row per known key, absent keys as None.
        let id = super::insert_deployment(&db, &deployment("a")).await.expect("deployment");
        let keys = [key.to_owned(), "emu/default/a/other".to_owned()];
        let (holder, read) = super::holder_and_revisions(&db, "emu/default/a", &keys).await.expect("read");
        assert_eq!(holder, Some(id));
        assert_eq!(read, [(keys[0].clone(), Some(3)), (keys[1].clone(), None)].into());
        assert_eq!(
            super::holder_and_revisions(&db, "emu/default/b", &[]).await.expect("read"),
            (None, [].into())
        );
        env.cleanup().await;
    }

    /// A pass's guarded writes in one batch: when every guard holds they all commit (rows whose
    /// values did not change still count as matched); when a component moved since it was read,
    /// or the deployment's version did, the deployment's statement fails on its `CHECK`, and
    /// nothing after it runs.
    #[tokio::test]
    async fn a_pass_s_writes_fail_whole_when_any_guard_moved() {
        use sea_orm::TransactionTrait;
        let (env, db) = migrated().await;
        let dep = super::insert_deployment(&db, &deployment("a")).await.expect("deployment");
        let t = super::insert_task(&db, &task(dep, 0, "deploy")).await.expect("task");
        for u in 0..2 {
            super::insert_component(&db, &component(dep, t, u)).await.expect("component");
        }
        let read = super::deployment_rows(&db, dep).await.expect("read").expect("found");
        let at = chrono::Utc::now();
        // The writes of a pass: both components (one unchanged), the task, the deployment, then a
        // wake-up row after them.
        let pass = |d: &super::DeploymentRow, comps: &[super::ComponentRow], loaded: [&'static str; 2]| {
            let mut b = sw_db::Batch::new();
            b.push(&super::start_matched_stmt()).expect("push");
            let guarded: Vec<_> = comps.iter().zip(loaded).map(|(c, l)| (c, l, 0)).collect();
            b.push(&super::save_components_stmt(&guarded).expect("components")).expect("push");
            b.push(&super::count_matched_stmt()).expect("push");
            b.push(&super::save_tasks_stmt(&[&read.tasks[0]]).expect("task")).expect("push");
            b.push(&super::count_matched_stmt()).expect("push");
            b.push(&super::save_deployment_stmt(d, d.version, 3)).expect("push");
            b.push(&super::wake_stmt(dep, at)).expect("push");
            b
        };
        let mut comps = read.comps.clone();
        comps[0].state = "PROCESSING".into();
        let mut d = read.dep.clone();
        d.state = "WAITING".into();
        let txn = db.begin().await.expect("begin");
        pass(&d, &comps, ["CREATED", "CREATED"]).execute(&txn).await.expect("every guard holds");
        txn.commit().await.expect("commit");
        let now = super::deployment_rows(&db, dep).await.expect("read").expect("found");
        assert_eq!((now.dep.state.as_str(), now.dep.version), ("WAITING", d.version + 1));
        assert_eq!(now.comps[0].state, "PROCESSING");
        assert_eq!(now.wake_seq, Some(1));

        // Stale: a component no longer in the state read (the deployment's version holds), or the
        // deployment's version moved (the components' states hold).
        let mut newer = now.dep.clone();
        newer.state = "SUCCESS".into();
        for (d, loaded) in [(&newer, ["CREATED", "CREATED"]), (&d, ["PROCESSING", "CREATED"])] {
            let txn = db.begin().await.expect("begin");
            let err = pass(d, &now.comps, loaded).execute(&txn).await.expect_err("a guard moved");
            assert!(sw_db::is_check_violation(&err), "{err}");
            let seq: Option<i64> =
                super::deployment_rows(&txn, dep).await.expect("read").expect("found").wake_seq;
            assert_eq!(seq, Some(1), "the wake-up after the failed statement did not run");
            txn.rollback().await.expect("rollback");
        }
        let after = super::deployment_rows(&db, dep).await.expect("read").expect("found");
        assert_eq!((after.dep, after.comps), (now.dep, now.comps), "nothing written");
        env.cleanup().await;
    }

    /// A batch writes what a prepared statement writes, for every kind of value the engine has
    /// (quotes, backslashes, NUL, line breaks, non-ASCII, empty and NULL text, times to the
    /// microsecond), reports the rows its statements matched, and stops at a failing statement:
    /// nothing after it runs.
    #[tokio::test]
    async fn a_batch_writes_what_prepared_statements_write_and_stops_at_a_failure() {
        use sea_orm::TransactionTrait;
        let (env, db) = migrated().await;
        let texts = [
            "it's",
            "back\\slash \\' \\\"",
            "nul\0byte",
            "line\nbreak\r\t",
            "ünïcödé 😀",
            "",
            "'); DROP TABLE wake; --",
        ];
        let at = chrono::DateTime::from_timestamp(1_795_000_000, 123_456_789).expect("time");
        // Each text twice: once written by a prepared statement, once by a batch.
        let mut prepared = Vec::new();
        let mut batch = sw_db::Batch::new();
        let mut batched = Vec::new();
        for (i, text) in texts.iter().enumerate() {
            let mut t = task(1, i as i32 * 2, "deploy");
            t.message = Some((*text).to_owned());
            t.reason = None;
            t.started_at = Some(at);
            t.deadline_at = Some(at + chrono::Duration::microseconds(i as i64));
            t.id = super::insert_task(&db, &t).await.expect("task");
            prepared.push(t.id);
            let mut u = task(1, i as i32 * 2 + 1, "deploy");
            u.id = super::insert_task(&db, &u).await.expect("task");
            u.message = t.message.clone();
            u.started_at = t.started_at;
            u.deadline_at = t.deadline_at;
            u.updated_at = t.updated_at;
            batch.push(&super::save_tasks_stmt(&[&u]).expect("one task")).expect("push");
            batched.push(u.id);
        }
        assert_eq!(batch.len(), texts.len());
        assert_eq!(batch.execute(&db).await.expect("batch"), texts.len() as u64, "one matched row each");
        let rows = super::tasks(&db, 1).await.expect("tasks");
        let by_id = |id: i64| rows.iter().find(|t| t.id == id).expect("row").clone();
        for (p, b) in prepared.iter().zip(&batched) {
            let (p, b) = (by_id(*p), by_id(*b));
            assert_eq!(
                (&p.message, p.reason.is_none(), p.started_at, p.deadline_at, p.updated_at),
                (&b.message, b.reason.is_none(), b.started_at, b.deadline_at, b.updated_at),
            );
        }
        assert_eq!(by_id(batched[0]).started_at.map(|t| t.timestamp_subsec_micros()), Some(123_456));

        // A failing statement in the middle: the one before ran, the one after did not.
        let mut first = by_id(batched[0]);
        first.message = Some("first".into());
        let mut last = by_id(batched[1]);
        last.message = Some("last".into());
        let mut b = sw_db::Batch::new();
        b.push(&super::save_tasks_stmt(&[&first]).expect("task")).expect("push");
        let wake =
            super::stmt("INSERT INTO wake (deployment_id, due_at, seq) VALUES (1, ?, 1)", vec![at.into()]);
        b.push(&wake).expect("push");
        b.push(&wake).expect("push");
        b.push(&super::save_tasks_stmt(&[&last]).expect("task")).expect("push");
        let txn = db.begin().await.expect("begin");
        let err = b.execute(&txn).await.expect_err("the second wake-up row is a duplicate");
        assert!(sw_db::is_duplicate(&err), "{err}");
        let seen = super::tasks(&txn, 1).await.expect("tasks");
        let message = |id: i64| seen.iter().find(|t| t.id == id).and_then(|t| t.message.clone());
        assert_eq!(message(first.id).as_deref(), Some("first"), "the statement before the failure ran");
        assert_eq!(message(last.id), by_id(batched[1]).message, "the statement after it did not");
        txn.rollback().await.expect("rollback");
        assert_eq!(super::tasks(&db, 1).await.expect("tasks"), rows, "rolled back: nothing half-written");
        env.cleanup().await;
    }

    /// The read of a deployment looks up its wake-up row, tasks and components by key: it does not
    /// scan the rows of other deployments (a pass over one deployment costs the same with a million
    /// others).
    #[tokio::test]
    async fn a_deployment_reads_by_key() {
        let (env, db) = migrated().await;
        let mut some = 0;
        for i in 1..=40 {
            let dep = super::insert_deployment(&db, &deployment(&format!("i{i}"))).await.expect("deployment");
            super::wake(&db, dep, chrono::Utc::now()).await.expect("wake");
            for step in 0..3 {
                let t = super::insert_task(&db, &task(dep, step, "deploy")).await.expect("task");
                super::insert_component(&db, &component(dep, t, 0)).await.expect("component");
            }
            super::next_revision(&db, &format!("emu/default/i{i}/c0")).await.expect("revision");
            if i == 7 {
                some = dep;
            }
        }
        db.execute_unprepared("ANALYZE TABLE deployment, wake, workflow_task, deploy_component")
            .await
            .expect("analyze");
        let plan = db
            .query_all(super::stmt(
                &format!("EXPLAIN {}", *super::DEPLOYMENT_ROWS),
                vec![some.into(), some.into()],
            ))
            .await
            .expect("explain");
        let access: Vec<(String, String, Option<String>)> = plan
            .iter()
            .map(|r| {
                (
                    r.try_get::<Option<String>>("", "table").expect("table").unwrap_or_default(),
                    r.try_get("", "type").expect("type"),
                    r.try_get("", "key").expect("key"),
                )
            })
            .collect();
        let tables: Vec<&str> = access.iter().map(|(t, _, _)| t.as_str()).collect();
        for t in ["d", "w", "t", "c", "r"] {
            assert!(tables.contains(&t), "{t} is not in the plan: {access:?}");
        }
        for (table, kind, key) in &access {
            // The union's result (when the server lists it) is the rows read, not a table.
            if table.starts_with("<union") {
                continue;
            }
            assert!(
                matches!(kind.as_str(), "ref" | "eq_ref" | "const") && key.is_some(),
                "{table} is read by {kind} (key {key:?}), not by key: {access:?}"
            );
        }
        env.cleanup().await;
    }
}
