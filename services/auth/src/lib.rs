//! The auth service: who may call sreworks, and with which roles.
//!
//! It owns the `sw_auth` database (users, OAuth clients, refresh-token families, signing keys) and,
//! in Redis, the access-token denylist and the failed-login counters. It answers over NATS
//! request/reply (`{prefix}.api.auth.<op>`); the gateway maps HTTP onto those operations.
//!
//! How a login moves: the gateway forwards `POST /oauth/token` as op `token` with the form fields
//! as JSON and the client IP in a header. [`handlers::oauth::token`] checks the failed-login
//! counters ([`throttle`]), authenticates the client, verifies the argon2id password hash on a
//! blocking thread ([`secrets`]), signs an EdDSA access token with the active key ([`keys`]) and
//! starts a refresh-token family ([`refresh`]). Every other service verifies that token itself
//! with `sw_authz::Verifier`, fetching public keys from this service's `jwks` op and consulting the
//! denylist that `revoke` writes.
//!
//! How a change moves: user, client and key changes are written with their CloudEvent in one
//! transaction through the outbox (`auth.user.*`, `auth.client.*`, `auth.key.rotated`; never with
//! a hash or secret), and the relay publishes them to JetStream after commit.
//!
//! At start-up [`build`] migrates the database, makes sure a signing key is active, and creates the
//! `admin` user and the public `swcli` client when missing ([`bootstrap`]).

pub mod authz;
pub mod bootstrap;
pub mod entity;
pub mod handlers;
pub mod keys;
pub mod migration;
pub mod refresh;
pub mod secrets;
pub mod state;
pub mod throttle;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use sea_orm::DatabaseConnection;
use sw_authz::Verifier;
use sw_bus::outbox::Outbox;
use sw_bus::{Bus, BusError, Router, RpcCall, RpcReply};
use sw_http::ApiError;
use sw_redis::Redis;
use tokio_util::sync::CancellationToken;

use crate::handlers::{clients, keys as key_ops, oauth, users};
use crate::keys::KeyRing;
use crate::migration::Migrator;
use crate::state::State;
use crate::throttle::Throttle;

/// The service name: database `sw_auth`, subjects `{prefix}.api.auth.*`, events `auth.*`.
pub const SERVICE: &str = "auth";

/// How often expired refresh tokens are purged (first pass a minute after start).
const PURGE_EVERY: Duration = Duration::from_secs(3600);

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Db(#[from] sw_db::DbError),
    #[error("auth start-up failed: {0}")]
    Startup(#[from] sea_orm::DbErr),
    #[error("auth bootstrap failed: {0}")]
    Bootstrap(#[from] ApiError),
}

/// Creates the auth database if needed and applies its migrations (`sreworks migrate`).
pub async fn migrate(cfg: &sw_config::Config) -> Result<(), sw_db::DbError> {
    let db = sw_db::connect(&cfg.database, SERVICE).await?;
    sw_db::migrate::<Migrator>(&db, &sw_db::database_name(&cfg.database, SERVICE)).await
}

/// A built auth service, ready to run.
pub struct Service {
    router: Router,
    bus: Bus,
    db: DatabaseConnection,
    outbox: Outbox,
    grace: Duration,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service").field("router", &self.router).finish()
    }
}

/// Connects and migrates the database, ensures an active signing key, the `admin` user and the
/// `swcli` client, and builds the router.
pub async fn build(
    cfg: &sw_config::Config,
    bus: Bus,
    redis: Redis,
    verifier: Verifier,
) -> Result<Service, BuildError> {
    let db = sw_db::connect(&cfg.database, SERVICE).await?;
    sw_db::migrate::<Migrator>(&db, &sw_db::database_name(&cfg.database, SERVICE)).await?;
    let outbox = Outbox::new(bus.names().clone());
    let dummy_hash = secrets::hash_password(secrets::random_password(32)).await?;
    let state = Arc::new(State {
        auth: cfg.auth.clone(),
        db: db.clone(),
        redis: redis.clone(),
        verifier,
        outbox: outbox.clone(),
        keys: KeyRing::new(db.clone(), cfg.auth.access_token_ttl_secs),
        throttle: Throttle::new(redis, cfg.auth.max_failed_logins, cfg.auth.failed_login_window_secs),
        dummy_hash,
    });
    state.keys.active().await?;
    bootstrap::ensure_admin(&state, cfg.auth.admin_password.as_ref()).await?;
    bootstrap::ensure_swcli(&state).await?;
    Ok(Service {
        router: router(&state),
        bus,
        db,
        outbox,
        grace: Duration::from_secs(cfg.shutdown_grace_secs),
    })
}

/// Gives a handler its state.
fn bind<F, Fut>(s: &Arc<State>, f: F) -> impl Fn(RpcCall) -> Fut + Send + Sync + 'static
where
    F: Fn(Arc<State>, RpcCall) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<RpcReply, ApiError>> + Send + 'static,
{
    let s = s.clone();
    move |call| f(s.clone(), call)
}

fn router(s: &Arc<State>) -> Router {
    Router::new(SERVICE, "sreworks auth: OAuth 2.0 tokens, JWKS, users, clients and signing keys")
        .route("token", bind(s, oauth::token::token))
        .route("revoke", bind(s, oauth::revoke::revoke))
        .route("jwks", bind(s, key_ops::jwks))
        .route("me", bind(s, users::me))
        .route("users.list", bind(s, users::list))
        .route("users.create", bind(s, users::create))
        .route("users.get", bind(s, users::get))
        .route("users.update", bind(s, users::update))
        .route("users.delete", bind(s, users::delete))
        .route("users.roles.set", bind(s, users::roles_set))
        .route("clients.list", bind(s, clients::list))
        .route("clients.create", bind(s, clients::create))
        .route("clients.get", bind(s, clients::get))
        .route("clients.delete", bind(s, clients::delete))
        .route("clients.rotate-secret", bind(s, clients::rotate_secret))
        .route("clients.roles.set", bind(s, clients::roles_set))
        .route("keys.list", bind(s, key_ops::list))
        .route("keys.rotate", bind(s, key_ops::rotate))
}

impl Service {
    /// The operations this service answers.
    pub fn router_ops(&self) -> Vec<String> {
        self.router.ops().into_iter().map(str::to_owned).collect()
    }

    /// The service's database pool (for readiness checks).
    pub fn db(&self) -> DatabaseConnection {
        self.db.clone()
    }

    /// Answers requests, relays the outbox and purges expired refresh tokens until `shutdown`;
    /// then drains in-flight requests (within the grace period) and only after that lets the
    /// relay make its last pass, so events of drained requests are published too.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> Result<(), BusError> {
        let after_serve = CancellationToken::new();
        let relay = self.outbox.relay(self.db.clone(), self.bus.clone());
        let serve = async {
            let r =
                sw_bus::rpc::serve(self.bus.clone(), self.router.clone(), shutdown.clone(), self.grace).await;
            after_serve.cancel();
            r
        };
        let (served, (), ()) = tokio::join!(
            serve,
            relay.run(after_serve.clone()),
            purge_loop(self.db.clone(), after_serve.clone())
        );
        served
    }
}

async fn purge_loop(db: DatabaseConnection, stop: CancellationToken) {
    let mut next = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep_until(next) => {}
        }
        match refresh::purge(&db).await {
            Ok(n) if n > 0 => tracing::info!(rows = n, "Purged expired refresh tokens."),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "Purging expired refresh tokens failed; will retry."),
        }
        next += PURGE_EVERY;
    }
}
