//! appmeta: the catalogue of what sreworks deploys and where — apps and their components,
//! namespaces and their stages, and the Kubernetes clusters deployments land on.
//!
//! How a request moves: the gateway turns `GET /v1/apps/{appId}` into a NATS request on
//! `{prefix}.api.appmeta.apps.get` carrying an [`sw_bus::RpcEnvelope`]. [`build`] registers one
//! handler per operation (`src/ops/*.rs`, one file per resource). Each handler verifies the bearer
//! token, checks the caller's role bindings against the matrix in [`authz`], parses path ids,
//! query and body (every invalid field is listed in one 422, see [`validate`] and [`spec`]), and
//! then changes MariaDB (`sw_appmeta`, tables in [`migration`], entities in [`entity`]).
//!
//! How an event moves: every change writes its CloudEvent (`appmeta.<entity>.<action>`, data = the
//! same DTO the reply carries, subject = the resource id: `appId`, `appId/componentName`,
//! `namespaceId/stageId`, `clusterId`) into the outbox in the same transaction as the row; after commit
//! the handler wakes the relay, which publishes to JetStream. A failed operation rolls back both,
//! so nothing is published for it. Updates are compare-and-swap on a `version` column so replicas
//! never lose an update.
//!
//! Cluster credentials are write-only: they are sealed with AES-256-GCM ([`sw_crypto`]) bound to the
//! cluster id before they reach the database, and no reply, event or log line carries them.

pub mod authz;
pub mod entity;
pub mod migration;
mod ops;
pub mod spec;
pub mod validate;

use std::sync::Arc;
use std::time::Duration;

use sw_authz::Verifier;
use sw_bus::outbox::Outbox;
use sw_bus::{Bus, BusError, Router};
use sw_config::{Config, ConfigError};
use sw_db::DbError;
use tokio_util::sync::CancellationToken;

use crate::ops::Ctx;

/// The service name: NATS subjects `{prefix}.api.appmeta.*`, database `{name_prefix}appmeta`.
pub const SERVICE: &str = "appmeta";

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A setting the service needs is missing or invalid (e.g. `appmeta.encryption_key`).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The database could not be reached or migrated.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Creates the service's database if needed and applies its migrations (`sreworks migrate`).
pub async fn migrate(cfg: &Config) -> Result<(), DbError> {
    let db = sw_db::connect(&cfg.database, SERVICE).await?;
    sw_db::migrate::<migration::Migrator>(&db, &sw_db::database_name(&cfg.database, SERVICE)).await?;
    db.close().await.ok();
    Ok(())
}

/// A built appmeta service, ready to answer on the bus.
#[derive(Debug)]
pub struct Service {
    bus: Bus,
    router: Router,
    ctx: Arc<Ctx>,
    grace: Duration,
}

/// Connects the database, runs migrations and registers every operation.
///
/// Fails before touching anything else when `appmeta.encryption_key` is missing: without it
/// cluster credentials could be neither stored nor read.
pub async fn build(
    cfg: &Config,
    bus: Bus,
    // Kept for the common service signature; appmeta needs Redis only through the verifier.
    _redis: sw_redis::Redis,
    verifier: Verifier,
) -> Result<Service, BuildError> {
    let key = sw_crypto::CredentialKey::new(cfg.require_appmeta_key()?);
    let db = sw_db::connect(&cfg.database, SERVICE).await?;
    sw_db::migrate::<migration::Migrator>(&db, &sw_db::database_name(&cfg.database, SERVICE)).await?;
    let ctx = Arc::new(Ctx { db, outbox: Outbox::new(bus.names().clone()), verifier, key });
    let router = ops::router(&ctx);
    Ok(Service { bus, router, ctx, grace: Duration::from_secs(cfg.shutdown_grace_secs) })
}

impl Service {
    /// The operations this service answers (`apps.list`, `apps.create`, ...).
    pub fn router_ops(&self) -> Vec<String> {
        self.router.ops().into_iter().map(str::to_owned).collect()
    }

    /// A handle on the service's database pool (for readiness checks).
    pub fn db(&self) -> sea_orm::DatabaseConnection {
        self.ctx.db.clone()
    }

    /// Answers requests and relays the outbox until `shutdown`; then drains in-flight requests
    /// (up to the grace period) and only after that lets the relay make its last pass, so events
    /// of requests finished during the drain are published too.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> Result<(), BusError> {
        let relay_stop = CancellationToken::new();
        let relay = tokio::spawn(
            self.ctx.outbox.relay(self.ctx.db.clone(), self.bus.clone()).run(relay_stop.clone()),
        );
        let served = sw_bus::rpc::serve(self.bus, self.router, shutdown, self.grace).await;
        relay_stop.cancel();
        if let Err(e) = relay.await {
            tracing::warn!(error = %e, "Outbox relay task ended abnormally.");
        }
        served
    }
}
