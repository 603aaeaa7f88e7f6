//! The executor service: takes `k8s.apply` / `k8s.delete` commands off the commands stream and walks
//! them through [`crate::render`], [`crate::plan`], [`crate::store`] and [`crate::kube_apply`].
//!
//! How a command moves through it:
//! 1. [`sw_bus::consumer::run`] pulls it from `{PREFIX}_COMMANDS` (durable consumer [`DURABLE`],
//!    shared by the executor's replicas), records its id in `sw_inbox` inside a transaction and hands
//!    it to the [`handler`]; a command whose transaction already committed is only acked.
//! 2. The handler renders the component, loads the instance's inventory and asks the plan what to do;
//!    each transition is saved (compare-and-swap) *before* the side effect it allows, on the store's
//!    own connection, so it survives a rollback of the consumer's transaction.
//! 3. The result is recorded for replay ([`crate::store::Store::record_result`]) and its
//!    `executor.component.*` event is written to the outbox in the consumer's transaction, so the
//!    event is published (by the relay) only once the command is acked-to-be. A crash between the two
//!    leaves the record, which the redelivery publishes again.
//! 4. Transient failures (a cluster or the database unreachable, a lost compare-and-swap) roll back
//!    and nak with the consumer's backoff; the inventory keeps the command in flight so the redelivery
//!    resumes it. Permanent ones (an invalid component, a conflict with another field manager, a
//!    stale revision) are reported as `executor.component.failed` and acked.
//!
//! Clusters come from a [`ClusterProvider`]. [`StaticClusters`] is a fixed map; the provider that asks
//! appmeta over NATS for a cluster's (decrypted) credentials and caches one client per cluster comes
//! next.
//!
//! After `applied`, the component is watched until healthy (the `watch` module): the handler writes the
//! instance's `health_watch` row in the consumer's transaction (a redelivery keeps its deadline, an
//! older revision never replaces a newer one's watch, a delete or a failure ends it), and a watcher
//! task per replica, started and stopped with the consumer, claims due rows by lease, reads the
//! objects back and reports `executor.component.healthy`, `.degraded` (once) or `.failed` with
//! reason `Timeout` at the command's deadline, each in one transaction with the row's removal or
//! update. The `applied` event itself carries the health the apply answered. The same task deletes
//! recorded results older than [`WatchSettings::result_retention`].
//!
//! With [`Service::serve_api`] the executor also answers operations on NATS (the `api` module):
//! `clusters.probe`, which tells whether a cluster's API server answers with its stored credentials
//! (`POST /v1/clusters/{clusterId}/probe` at the gateway).

mod api;
mod clusters;
mod handler;
mod watch;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sea_orm::DatabaseConnection;
use sw_authz::Verifier;
use sw_bus::consumer::{ConsumerConfig, async_trait};
use sw_bus::outbox::Outbox;
use sw_bus::{Bus, BusError};
use sw_config::Config;
use tokio_util::sync::CancellationToken;

pub use api::{API_SERVICE, Op as ApiOp, PROBE_OP, allowed as api_allowed, probe_cluster};
pub use clusters::{AppmetaClusters, CONNECTION_OP, ClusterSettings, UnusableCredentials, kube_config};
pub use handler::{APPLY_COMMAND, CommandHandler, DELETE_COMMAND, EVENT_SERVICE};
pub use watch::WatchSettings;

use crate::kube_apply::Cluster;
use crate::migration::Migrator;
use crate::store::{SERVICE, Store};

/// The durable consumer the executor's replicas share on the commands stream.
pub const DURABLE: &str = "k8s-executor";

/// Why a cluster's client could not be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterError {
    /// No cluster with this id is known: the command fails (`UnknownCluster`) and is acked.
    #[error("cluster {0:?} is not known")]
    Unknown(String),
    /// The cluster's description could not be fetched or its client built just now; the command
    /// is retried.
    #[error("cluster {cluster_id:?} is unavailable: {message}")]
    Unavailable { cluster_id: String, message: String },
    /// The cluster's stored credentials do not open with the executor's key or do not make a
    /// client configuration: the command fails (`InvalidCluster`) and is acked.
    #[error("cluster {cluster_id:?} cannot be used: {message}")]
    Invalid { cluster_id: String, message: String },
}

impl ClusterError {
    /// Whether the same command may succeed later.
    pub fn is_transient(&self) -> bool {
        matches!(self, ClusterError::Unavailable { .. })
    }
}

/// Where the executor gets the client of a cluster id. Behind a trait so the handler is tested with
/// mock API servers; the appmeta-backed provider comes next.
#[async_trait]
pub trait ClusterProvider: Send + Sync + 'static {
    async fn cluster(&self, cluster_id: &str) -> Result<Cluster, ClusterError>;

    /// The client of `cluster_id` as the cluster is described now, for a probe: a provider that
    /// caches descriptions looks again. The default is [`ClusterProvider::cluster`].
    async fn fresh_cluster(&self, cluster_id: &str) -> Result<Cluster, ClusterError> {
        self.cluster(cluster_id).await
    }
}

/// A fixed set of clusters by id.
#[derive(Debug, Clone, Default)]
pub struct StaticClusters {
    clusters: HashMap<String, Cluster>,
}

impl StaticClusters {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the cluster `cluster_id`.
    pub fn with(mut self, cluster_id: impl Into<String>, cluster: Cluster) -> Self {
        self.clusters.insert(cluster_id.into(), cluster);
        self
    }

    /// Adds the cluster `config` describes; its client connects lazily.
    pub fn with_config(
        self,
        cluster_id: impl Into<String>,
        config: kube::Config,
        call_timeout: Duration,
    ) -> Result<Self, kube::Error> {
        Ok(self.with(cluster_id, Cluster::connect(config, call_timeout)?))
    }
}

#[async_trait]
impl ClusterProvider for StaticClusters {
    async fn cluster(&self, cluster_id: &str) -> Result<Cluster, ClusterError> {
        self.clusters.get(cluster_id).cloned().ok_or_else(|| ClusterError::Unknown(cluster_id.to_owned()))
    }
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The database could not be reached or migrated.
    #[error(transparent)]
    Db(#[from] sw_db::DbError),
    /// The commands or events stream could not be set up.
    #[error(transparent)]
    Bus(#[from] BusError),
}

/// A built executor, ready to consume commands.
pub struct Service {
    bus: Bus,
    db: DatabaseConnection,
    relay_db: DatabaseConnection,
    outbox: Outbox,
    consumer: ConsumerConfig,
    store: Store,
    clusters: Arc<dyn ClusterProvider>,
    watch: WatchSettings,
    /// Set by [`Service::serve_api`]: the executor's operations are answered on NATS.
    api: Option<Verifier>,
    /// How long in-flight operations may finish after shutdown (`shutdown_grace_secs`).
    grace: Duration,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service").field("consumer", &self.consumer).finish_non_exhaustive()
    }
}

/// Connects and migrates `{prefix}executor`, makes sure the streams exist, and sets up the consumer
/// of `k8s.apply` and `k8s.delete` commands with clusters from `clusters`.
pub async fn build(
    cfg: &Config,
    bus: Bus,
    clusters: Arc<dyn ClusterProvider>,
) -> Result<Service, BuildError> {
    let db = sw_db::connect(&cfg.database, SERVICE).await?;
    sw_db::migrate::<Migrator>(&db, &sw_db::database_name(&cfg.database, SERVICE)).await?;
    bus.ensure_streams().await?;
    let names = bus.names();
    let mut consumer = ConsumerConfig::new(names.commands_stream(), DURABLE);
    // One filter for both verbs: several filter subjects need NATS 2.10, and any other `k8s.*`
    // verb is this executor's to refuse (dead-lettered as not an executor command).
    consumer.filter_subjects = vec![names.command_subject("k8s.>")];
    consumer.concurrency = usize::try_from(cfg.executor.concurrency).unwrap_or(usize::MAX).max(1);
    consumer.ack_wait = Duration::from_secs(cfg.executor.ack_wait_secs);
    let outbox = Outbox::new(names.clone());
    let store = Store::new(db.clone());
    let watch = WatchSettings {
        poll: cfg.executor.health_poll(),
        lease: cfg.executor.health_lease(),
        result_retention: cfg.executor.result_retention(),
    };
    let grace = Duration::from_secs(cfg.shutdown_grace_secs);
    // The outbox relay's own connection, READ COMMITTED for the session: its passes then need no
    // `SET TRANSACTION` round trip each (the executor's other transactions keep the server's level).
    let mut relay_cfg = cfg.database.clone();
    relay_cfg.max_connections = 1;
    relay_cfg.min_connections = 0;
    let relay_db = sw_db::connect_read_committed(&relay_cfg, SERVICE).await?;
    Ok(Service { bus, db, relay_db, outbox, consumer, store, clusters, watch, api: None, grace })
}

impl Service {
    /// A handle on the executor's database pool (for readiness checks).
    pub fn db(&self) -> DatabaseConnection {
        self.db.clone()
    }

    /// The consumer's settings, to tune before [`Service::run_until_stopped`] (tests shorten the
    /// backoff). The handler reads `max_deliver` from here when the service starts.
    pub fn consumer_config_mut(&mut self) -> &mut ConsumerConfig {
        &mut self.consumer
    }

    /// The health watcher's timing and the retention of recorded results, to set before
    /// [`Service::run_until_stopped`] (`[executor]` config; tests shorten the poll).
    pub fn watch_settings_mut(&mut self) -> &mut WatchSettings {
        &mut self.watch
    }

    /// Also answers the executor's operations on NATS (`{prefix}.api.k8s-executor.*`:
    /// `clusters.probe`, see the `api` module) while running, verifying callers' tokens with
    /// `verifier`. Off unless called (tests of the consumer alone do not need it).
    pub fn serve_api(&mut self, verifier: Verifier) {
        self.api = Some(verifier);
    }

    /// Consumes commands, watches health and relays the outbox until `shutdown`; in-flight commands
    /// drain and the watcher gives up its leases first, then the relay makes its last pass so their
    /// events go out too. With [`Service::serve_api`], operations are answered until `shutdown` too
    /// (or the consumer's own end), and in-flight ones get the grace period to finish.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> Result<(), BusError> {
        let api_stop = shutdown.child_token();
        let serving = self.api.map(|verifier| {
            let api = Arc::new(api::Api {
                clusters: self.clusters.clone(),
                verifier,
                request_deadline: self.bus.config().request_timeout(),
            });
            let serve = sw_bus::rpc::serve(self.bus.clone(), api::router(api), api_stop.clone(), self.grace);
            tokio::spawn(async move {
                let served = serve.await;
                if let Err(e) = &served {
                    // Commands are still consumed; only the probe is missing.
                    tracing::error!(error = %e, "The executor's API stopped answering.");
                }
                served
            })
        });
        let handler = Arc::new(CommandHandler::new(
            self.store.clone(),
            self.outbox.clone(),
            self.clusters.clone(),
            self.bus.names().clone(),
            self.consumer.max_deliver,
            self.consumer.ack_wait,
        ));
        let relay_stop = CancellationToken::new();
        let relay = tokio::spawn(
            self.outbox
                .relay(self.relay_db.clone(), self.bus.clone())
                .session_read_committed()
                .run(relay_stop.clone()),
        );
        let watcher =
            watch::Watcher::new(self.store, self.db.clone(), self.outbox.clone(), self.clusters, self.watch);
        let watch_stop = shutdown.child_token();
        let watching = tokio::spawn(watcher.run(watch_stop.clone()));
        let consumed = sw_bus::consumer::run(self.bus, self.db, self.consumer, handler, shutdown).await;
        // The consumer also returns on an error of its own: the watcher stops with it.
        watch_stop.cancel();
        if let Err(e) = watching.await {
            tracing::warn!(error = %e, "Health watch task ended abnormally.");
        }
        api_stop.cancel();
        let served = match serving {
            Some(task) => task.await.unwrap_or_else(|e| {
                tracing::warn!(error = %e, "API task ended abnormally.");
                Ok(())
            }),
            None => Ok(()),
        };
        relay_stop.cancel();
        if let Err(e) = relay.await {
            tracing::warn!(error = %e, "Outbox relay task ended abnormally.");
        }
        consumed.and(served)
    }
}
