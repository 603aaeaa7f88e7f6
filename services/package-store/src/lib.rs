//! package-store: SREWorks app packages (zips of component zips) — imported, stored in S3,
//! listed, downloaded and deleted.
//!
//! How an import moves: the gateway streams the upload over NATS to `packages.import`
//! ([`sw_bus::blob`]); [`upload`] spools it to a temporary file, hashing it on the way and
//! refusing it past `max_package_bytes`. The [`import`] pipeline then inspects the file on a
//! blocking thread with [`format::inspect_app_zip_spooled`] (the hostile-input checks; each
//! component zip is spooled to its own temporary file), authorizes the caller for the app the
//! zip names, reserves the version's row in MariaDB (`sw_packages`, tables in [`migration`]),
//! uploads the component zips not stored yet and the package zip to S3 ([`storage`], layout in
//! [`keys`]), and commits the row with its `package.app.imported` event through the outbox. A
//! failure at any point leaves nothing behind: the pipeline undoes its own writes, and the
//! [`janitor`] removes what a crash interrupted.
//!
//! How a download moves: `packages.download` answers a short-lived URL presigned for the
//! internal S3 endpoint, which the gateway streams from; `packages.download-url` answers one for
//! the public endpoint that users fetch directly.
//!
//! How a build moves: `package-tasks.create` validates a `build.yaml` and its chart archives,
//! stores the task (charts in S3) and answers 202; the service's build workers claim tasks from
//! the database under a lease, assemble the package and import it through the same pipeline
//! (walkthrough in `build_tasks`).
//!
//! [`format`](mod@format) is the package format and its safe inspection (no I/O beyond its reader and its
//! temporary files); [`build`](mod@build) is the pure build library (binders, charts, versions, assembly).

pub mod authz;
pub mod build;
mod build_tasks;
mod ctx;
pub mod entity;
pub mod format;
pub mod import;
pub mod janitor;
pub mod keys;
pub mod launch;
pub mod migration;
mod ops;
pub mod storage;
mod store;
pub mod upload;

use std::sync::Arc;
use std::time::Duration;

use sw_authz::Verifier;
use sw_bus::outbox::Outbox;
use sw_bus::{Bus, BusError, Router};
use sw_config::Config;
use sw_db::DbError;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use format::{
    AppPackageMeta, ComponentPackageMeta, FormatError, InspectedComponent, InspectedPackage, Limits,
    Md5Check, SpooledPackage, inspect_app_zip, inspect_app_zip_spooled, parse_meta,
};
pub use import::{ImportEvent, ImportRequest, Importer, VersionChoice};
pub use janitor::{Janitor, SweepReport};

use crate::ctx::Ctx;
use crate::storage::Storage;

/// The service name: NATS subjects `{prefix}.api.package-store.*`.
pub const SERVICE: &str = "package-store";
/// The database of the service: `{name_prefix}packages`.
pub const DB_SERVICE: &str = "packages";
/// Counter of finished imports by `outcome` (`ok`, `refused`, `error`) and `source`.
pub const METRIC_IMPORTS: &str = "sw_package_imports_total";
/// Counter of ended build tasks by `outcome` (`succeeded`, `failed`, `timeout`, `exhausted`).
pub const METRIC_BUILDS: &str = "sw_package_builds_total";

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The database could not be reached or migrated.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Creates the service's database if needed and applies its migrations (`sreworks migrate`).
pub async fn migrate(cfg: &Config) -> Result<(), DbError> {
    let db = sw_db::connect(&cfg.database, DB_SERVICE).await?;
    sw_db::migrate::<migration::Migrator>(&db, &sw_db::database_name(&cfg.database, DB_SERVICE)).await?;
    db.close().await.ok();
    Ok(())
}

/// A built package-store, ready to answer on the bus.
#[derive(Debug)]
pub struct Service {
    bus: Bus,
    router: Router,
    ctx: Arc<Ctx>,
    grace: Duration,
}

/// Connects the database, runs migrations, makes sure the bucket exists (a warning when S3 is
/// down: the first import tries again) and registers every operation.
pub async fn build(
    cfg: &Config,
    bus: Bus,
    // Kept for the common service signature; package-store needs Redis only through the verifier.
    _redis: sw_redis::Redis,
    verifier: Verifier,
) -> Result<Service, BuildError> {
    let db = sw_db::connect(&cfg.database, DB_SERVICE).await?;
    sw_db::migrate::<migration::Migrator>(&db, &sw_db::database_name(&cfg.database, DB_SERVICE)).await?;
    let storage = Arc::new(Storage::new(&cfg.s3));
    if let Err(e) = storage.ensure_bucket().await {
        tracing::warn!(bucket = %cfg.s3.bucket, error = %e, "S3 is not reachable; imports answer 503 until it is.");
    }
    let ctx = Arc::new(Ctx {
        db,
        outbox: Outbox::new(bus.names().clone()),
        verifier,
        storage,
        cfg: cfg.package_store.clone(),
        tasks: TaskTracker::new(),
        builds: tokio::sync::Notify::new(),
        instance: format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple()),
        workloads: ops::WorkloadCache::new(ops::CACHE_MAX_ENTRIES, ops::CACHE_MAX_BYTES),
    });
    let router = ops::router(&ctx);
    Ok(Service { bus, router, ctx, grace: Duration::from_secs(cfg.shutdown_grace_secs) })
}

impl Service {
    /// The operations this service answers (`packages.import`, `packages.list`, ...).
    pub fn router_ops(&self) -> Vec<String> {
        self.router.ops().into_iter().map(str::to_owned).collect()
    }

    /// A handle on the service's database pool (for readiness checks).
    pub fn db(&self) -> sea_orm::DatabaseConnection {
        self.ctx.db.clone()
    }

    /// The import pipeline, for the build-task runner.
    pub fn importer(&self) -> Importer {
        Importer::new(self.ctx.clone())
    }

    /// The janitor, to sweep on demand (it also sweeps on its own while the service runs).
    pub fn janitor(&self) -> Janitor {
        Janitor::new(self.ctx.clone())
    }

    /// Answers requests, runs the build workers, relays the outbox and runs the janitor until
    /// `shutdown`; then drains in-flight requests and builds (a build still running after the
    /// grace period is handed back for another process), then import pipelines (up to the grace
    /// period), and only after that lets the relay make its last pass, so their events are
    /// published too.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> Result<(), BusError> {
        let background_stop = CancellationToken::new();
        let relay = tokio::spawn(
            self.ctx.outbox.relay(self.ctx.db.clone(), self.bus.clone()).run(background_stop.clone()),
        );
        let janitor = tokio::spawn(janitor::run(self.ctx.clone(), background_stop.clone()));
        let workers = build_tasks::worker::start(self.ctx.clone(), shutdown.clone(), self.grace);
        let served = sw_bus::rpc::serve(self.bus, self.router, shutdown, self.grace).await;
        workers.wait().await;
        self.ctx.tasks.close();
        if tokio::time::timeout(self.grace, self.ctx.tasks.wait()).await.is_err() {
            tracing::warn!("Package imports still running at the end of the grace period.");
        }
        background_stop.cancel();
        for (name, task) in [("relay", relay), ("janitor", janitor)] {
            if let Err(e) = task.await {
                tracing::warn!(task = name, error = %e, "Background task ended abnormally.");
            }
        }
        served
    }
}
