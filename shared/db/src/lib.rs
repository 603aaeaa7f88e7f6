//! MySQL/MariaDB access for the services: one database per service, created on demand,
//! migrated by the service's own sea-orm migrator, and database errors mapped to API errors.
//!
//! A service calls [`connect`] with its name (`auth` → database `sw_auth`, or
//! `{name_prefix}auth` in tests) and then [`migrate`] with its `Migrator`.

use std::time::Duration;

use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr, RuntimeErr, Statement,
    TransactionTrait,
};
use sea_orm_migration::MigratorTrait;
use sw_config::DatabaseConfig;
use sw_http::ApiError;

pub use sea_orm;

pub mod batch;
pub use batch::Batch;

/// Why the database could not be reached or prepared.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("invalid database name {0:?}")]
    BadName(String),
    #[error("database server unreachable: {0}")]
    Connect(#[source] DbErr),
    #[error("migration of {db} failed: {source}")]
    Migrate {
        db: String,
        #[source]
        source: DbErr,
    },
}

/// The database name of `service`.
pub fn database_name(cfg: &DatabaseConfig, service: &str) -> String {
    format!("{}{}", cfg.name_prefix, service.replace('-', "_"))
}

fn options(url: String, cfg: &DatabaseConfig) -> ConnectOptions {
    let mut o = ConnectOptions::new(url);
    o.max_connections(cfg.max_connections)
        .min_connections(cfg.min_connections)
        .connect_timeout(Duration::from_millis(cfg.acquire_timeout_ms))
        .acquire_timeout(Duration::from_millis(cfg.acquire_timeout_ms))
        .idle_timeout(Duration::from_secs(300))
        .max_lifetime(Duration::from_secs(1800))
        // No ping before every checkout (a round trip per query); a connection broken by a database
        // restart fails its next query once (503) and is discarded by the pool.
        .test_before_acquire(false)
        .sqlx_logging(false);
    o
}

/// Connects to the server (no database selected); used to create and drop databases.
async fn connect_server(cfg: &DatabaseConfig) -> Result<DatabaseConnection, DbError> {
    let mut o = options(cfg.url.expose().trim_end_matches('/').to_owned(), cfg);
    o.max_connections(1).min_connections(0);
    Database::connect(o).await.map_err(DbError::Connect)
}

fn check_name(name: &str) -> Result<(), DbError> {
    if name.is_empty() || name.len() > 64 || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(DbError::BadName(name.to_owned()));
    }
    Ok(())
}

/// Creates the service's database if missing; its URL.
async fn ensure_database(cfg: &DatabaseConfig, service: &str) -> Result<String, DbError> {
    let name = database_name(cfg, service);
    check_name(&name)?;
    let server = connect_server(cfg).await?;
    server
        .execute_unprepared(&format!(
            "CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
        ))
        .await
        .map_err(DbError::Connect)?;
    server.close().await.ok();
    let url = format!("{}/{}", cfg.url.expose().trim_end_matches('/'), name);
    Ok(url)
}

/// Creates the service's database if missing and returns a pool on it.
pub async fn connect(cfg: &DatabaseConfig, service: &str) -> Result<DatabaseConnection, DbError> {
    let url = ensure_database(cfg, service).await?;
    Database::connect(options(url, cfg)).await.map_err(DbError::Connect)
}

/// As [`connect`], for a service whose every transaction runs READ COMMITTED: each session of the
/// pool is set to it once, when it connects, so a transaction is a plain `begin()` with no
/// `SET TRANSACTION` round trip of its own.
pub async fn connect_read_committed(
    cfg: &DatabaseConfig,
    service: &str,
) -> Result<DatabaseConnection, DbError> {
    use sea_orm::sqlx::mysql::{MySql, MySqlConnectOptions};
    use sea_orm::sqlx::{ConnectOptions as _, Executor as _};
    let url = ensure_database(cfg, service).await?;
    let sqlx_err = |e| DbError::Connect(DbErr::Conn(RuntimeErr::SqlxError(e)));
    let target = url.parse::<MySqlConnectOptions>().map_err(sqlx_err)?.disable_statement_logging();
    let pool = options(url, cfg)
        .sqlx_pool_options::<MySql>()
        .after_connect(|conn, _| {
            Box::pin(async move {
                conn.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED").await.map(|_| ())
            })
        })
        .connect_with(target)
        .await
        .map_err(sqlx_err)?;
    Ok(sea_orm::SqlxMySqlConnector::from_sqlx_mysql_pool(pool))
}

/// Applies every pending migration of `M`.
///
/// Replicas starting together would race on the same migrations (and fail on a duplicate entry in
/// `seaql_migrations`), so they take turns under a MariaDB named lock, held by one session that a
/// (statement-free) transaction pins for the duration.
pub async fn migrate<M: MigratorTrait>(db: &DatabaseConnection, db_name: &str) -> Result<(), DbError> {
    let fail = |source: DbErr| DbError::Migrate { db: db_name.to_owned(), source };
    let session = db.begin().await.map_err(fail)?;
    let lock: String = format!("migrate_{db_name}").chars().take(64).collect();
    let got = session
        .query_one(Statement::from_sql_and_values(
            DbBackend::MySql,
            "SELECT GET_LOCK(?, 60) AS got",
            [lock.clone().into()],
        ))
        .await
        .map_err(fail)?
        .and_then(|r| r.try_get::<Option<i64>>("", "got").ok().flatten());
    if got != Some(1) {
        return Err(fail(DbErr::Custom("timed out waiting for the migration lock".into())));
    }
    let result = M::up(db, None).await;
    let _ = session
        .execute(Statement::from_sql_and_values(DbBackend::MySql, "SELECT RELEASE_LOCK(?)", [lock.into()]))
        .await;
    let _ = session.rollback().await;
    result.map_err(fail)?;
    tracing::info!(db = db_name, "Migrations applied.");
    Ok(())
}

/// The options of every table the services create: InnoDB, utf8mb4 with binary collation (ids,
/// versions and keys compare byte for byte).
pub const TABLE_OPTIONS: &str = "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin";

/// Runs `CREATE TABLE IF NOT EXISTS ...` statements (without table options) in order, each with
/// [`TABLE_OPTIONS`] appended: the `up` of a migration.
pub async fn create_tables(
    manager: &sea_orm_migration::SchemaManager<'_>,
    statements: &[&str],
) -> Result<(), DbErr> {
    let db = manager.get_connection();
    for sql in statements {
        db.execute_unprepared(&format!("{sql} {TABLE_OPTIONS}")).await?;
    }
    Ok(())
}

/// Drops `tables` in order if they exist: the `down` of a migration.
pub async fn drop_tables(
    manager: &sea_orm_migration::SchemaManager<'_>,
    tables: &[&str],
) -> Result<(), DbErr> {
    let db = manager.get_connection();
    for table in tables {
        db.execute_unprepared(&format!("DROP TABLE IF EXISTS {table}")).await?;
    }
    Ok(())
}

/// Drops the service's database (tests clean up with it).
pub async fn drop_database(cfg: &DatabaseConfig, service: &str) -> Result<(), DbError> {
    let name = database_name(cfg, service);
    check_name(&name)?;
    let server = connect_server(cfg).await?;
    server
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS `{name}`"))
        .await
        .map_err(DbError::Connect)?;
    server.close().await.ok();
    Ok(())
}

/// True when a database error means the server is unreachable rather than the query being wrong.
pub fn is_unavailable(e: &DbErr) -> bool {
    match e {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(s)) | DbErr::Query(RuntimeErr::SqlxError(s)) => matches!(
            s,
            sea_orm::sqlx::Error::Io(_)
                | sea_orm::sqlx::Error::PoolTimedOut
                | sea_orm::sqlx::Error::PoolClosed
                | sea_orm::sqlx::Error::WorkerCrashed
        ),
        _ => false,
    }
}

/// The server's error number of `e`, when the server refused a statement.
fn server_error_number(e: &DbErr) -> Option<u16> {
    use sea_orm::sqlx::mysql::MySqlDatabaseError;
    match e {
        DbErr::Exec(RuntimeErr::SqlxError(sea_orm::sqlx::Error::Database(d)))
        | DbErr::Query(RuntimeErr::SqlxError(sea_orm::sqlx::Error::Database(d))) => {
            d.try_downcast_ref::<MySqlDatabaseError>().map(MySqlDatabaseError::number)
        }
        _ => None,
    }
}

/// MariaDB's "lock wait timeout" and "deadlock" errors: two transactions wanted the same rows and
/// this one lost. Nothing of it was written; running it again usually succeeds.
pub fn is_lock_conflict(e: &DbErr) -> bool {
    const ER_LOCK_WAIT_TIMEOUT: u16 = 1205;
    const ER_LOCK_DEADLOCK: u16 = 1213;
    matches!(server_error_number(e), Some(ER_LOCK_WAIT_TIMEOUT | ER_LOCK_DEADLOCK))
}

/// True when a write failed a `CHECK` constraint (MariaDB `ER_CONSTRAINT_FAILED`, MySQL
/// `ER_CHECK_CONSTRAINT_VIOLATED`).
pub fn is_check_violation(e: &DbErr) -> bool {
    const ER_CONSTRAINT_FAILED: u16 = 4025;
    const ER_CHECK_CONSTRAINT_VIOLATED: u16 = 3819;
    matches!(server_error_number(e), Some(ER_CONSTRAINT_FAILED | ER_CHECK_CONSTRAINT_VIOLATED))
}

/// True when an insert failed on a unique key.
pub fn is_duplicate(e: &DbErr) -> bool {
    matches!(e.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_)))
        || e.to_string().contains("Duplicate entry")
}

/// Maps a database error to the API error a caller should see: 503 when the database is down,
/// 500 (logged with its cause) otherwise.
pub fn api_error(e: DbErr) -> ApiError {
    if is_unavailable(&e) {
        ApiError::unavailable("database_unavailable", &e)
    } else {
        ApiError::internal(&e)
    }
}
