//! Test support: an isolated environment per test against the real MariaDB, NATS JetStream and
//! Redis, and a key pair to mint access tokens without running the auth service.
//!
//! ```ignore
//! let env = TestEnv::new();              // unique db prefix, subject prefix, Redis prefix
//! let bus = env.bus().await;             // connected, SW_EVENTS-equivalent stream created
//! let keys = TestKeys::new();
//! let verifier = keys.verifier(&env).await;
//! let token = keys.token(&env.cfg, vec![RoleBinding::global(Role::Admin)]);
//! ...
//! env.cleanup().await;
//! ```
//!
//! Infrastructure addresses come from the usual `SREWORKS_*` variables (defaults: loopback
//! standard ports); only the names are made unique.

pub mod k8s_emulator;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use ed25519_dalek::SigningKey;
use futures::StreamExt;
use sea_orm::ConnectionTrait;
use sw_authz::{KeySource, Verifier, jwt};
use sw_bus::{Bus, CloudEvent};
use sw_config::{Config, Secret};
use sw_contracts::auth::{Jwk, Jwks, RoleBinding};
use sw_http::ApiError;
use sw_redis::Redis;

/// One test's isolated names and configuration.
#[derive(Debug, Clone)]
pub struct TestEnv {
    pub cfg: Config,
    /// The unique id (`t` + 10 hex digits) used in every name.
    pub id: String,
}

impl Default for TestEnv {
    fn default() -> Self {
        Self::new()
    }
}

impl TestEnv {
    /// A fresh environment: database prefix `{id}_`, subject prefix `{id}`, Redis prefix `{id}`,
    /// gateway on a free port, a random encryption key and admin password.
    pub fn new() -> Self {
        init_test_logs();
        let id = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
        let mut cfg = Config::load(None).expect("test configuration");
        cfg.nats.prefix = id.clone();
        cfg.nats.connect_timeout_secs = 10;
        cfg.nats.events_max_age_hours = 1;
        cfg.nats.events_max_bytes = 64 << 20;
        cfg.database.name_prefix = format!("{id}_");
        cfg.database.max_connections = 5;
        cfg.redis.prefix = id.clone();
        cfg.gateway.listen = "127.0.0.1:0".parse().expect("addr");
        cfg.gateway.public_url = None;
        cfg.auth.admin_password = Some(Secret::new(format!("admin-{}", uuid::Uuid::new_v4().simple())));
        let key: [u8; 32] = rand::random();
        cfg.appmeta.encryption_key = Some(Secret::new(base64::engine::general_purpose::STANDARD.encode(key)));
        cfg.shutdown_grace_secs = 5;
        // A bucket of its own (the S3 server and its keys come from the environment).
        cfg.s3.bucket = format!("{id}-packages");
        cfg.validate().expect("valid test config");
        Self { cfg, id }
    }

    /// A connected bus with the events and commands streams created.
    pub async fn bus(&self) -> Bus {
        let bus = Bus::connect(&self.cfg.nats).await.expect("NATS must run on the configured URL");
        bus.ensure_streams().await.expect("events and commands streams");
        bus
    }

    pub async fn redis(&self) -> Redis {
        Redis::connect(&self.cfg.redis).await.expect("Redis must run on the configured URL")
    }

    /// A connection to this test's database of `service`, created and empty.
    pub async fn db(&self, service: &str) -> sea_orm::DatabaseConnection {
        sw_db::connect(&self.cfg.database, service).await.expect("MariaDB must run on the configured URL")
    }

    /// A durable pull consumer on this test's events stream, filtered to `filter`
    /// (e.g. `{prefix}.events.appmeta.>`), delivering everything from the start.
    pub async fn events(&self, bus: &Bus, filter: &str) -> EventTap {
        use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
        let stream = bus.jetstream().get_stream(bus.names().events_stream()).await.expect("events stream");
        let consumer = stream
            .create_consumer(pull::Config {
                durable_name: Some(format!("tap-{}", uuid::Uuid::new_v4().simple())),
                filter_subject: filter.to_owned(),
                deliver_policy: DeliverPolicy::All,
                ack_policy: AckPolicy::Explicit,
                ..Default::default()
            })
            .await
            .expect("consumer");
        let messages = consumer.messages().await.expect("messages");
        EventTap { messages }
    }

    /// Drops this test's databases, streams and Redis keys.
    pub async fn cleanup(&self) {
        if let Ok(db) = sea_orm::Database::connect(self.cfg.database.url.expose()).await
            && let Ok(rows) = db
                .query_all(sea_orm::Statement::from_string(
                    sea_orm::DbBackend::MySql,
                    format!("SHOW DATABASES LIKE '{}\\_%'", self.id),
                ))
                .await
        {
            for r in rows {
                if let Ok(name) = r.try_get_by_index::<String>(0) {
                    let _ = db.execute_unprepared(&format!("DROP DATABASE IF EXISTS `{name}`")).await;
                }
            }
        }
        if let Ok(bus) = Bus::connect(&self.cfg.nats).await {
            let _ = bus.jetstream().delete_stream(bus.names().events_stream()).await;
            let _ = bus.jetstream().delete_stream(bus.names().commands_stream()).await;
        }
        if let Ok(r) = Redis::connect(&self.cfg.redis).await {
            let mut c = r.conn();
            let keys: Vec<String> = sw_redis::redis::cmd("KEYS")
                .arg(format!("{}:*", self.id))
                .query_async(&mut c)
                .await
                .unwrap_or_default();
            if !keys.is_empty() {
                let _: Result<(), _> = sw_redis::redis::cmd("DEL").arg(keys).query_async(&mut c).await;
            }
        }
    }
}

/// Reads events from a test consumer.
pub struct EventTap {
    messages: async_nats::jetstream::consumer::pull::Stream,
}

impl std::fmt::Debug for EventTap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EventTap")
    }
}

impl EventTap {
    /// The next event (acked), or `None` after `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Option<(CloudEvent, async_nats::HeaderMap)> {
        let msg = tokio::time::timeout(timeout, self.messages.next()).await.ok()??.ok()?;
        msg.ack().await.ok()?;
        let headers = msg.headers.clone().unwrap_or_default();
        let ev = serde_json::from_slice(&msg.payload).expect("events are CloudEvents");
        Some((ev, headers))
    }
}

/// A signing key standing in for the auth service in tests of other services.
#[derive(Debug, Clone)]
pub struct TestKeys {
    key: Arc<SigningKey>,
    pub kid: String,
}

impl Default for TestKeys {
    fn default() -> Self {
        Self::new()
    }
}

impl TestKeys {
    pub fn new() -> Self {
        Self { key: Arc::new(SigningKey::generate(&mut rand::rngs::OsRng)), kid: "test-key".into() }
    }

    /// A verifier that trusts these keys and checks revocation in the test's Redis.
    pub async fn verifier(&self, env: &TestEnv) -> Verifier {
        Verifier::new(Arc::new(self.clone()), env.redis().await, &env.cfg.auth.issuer, &env.cfg.auth.audience)
    }

    /// An access token for `user:<username>` with `roles`, valid for 10 minutes.
    pub fn token_for(&self, cfg: &Config, username: &str, roles: Vec<RoleBinding>) -> String {
        let now = chrono::Utc::now().timestamp();
        let claims = jwt::Claims {
            iss: cfg.auth.issuer.clone(),
            sub: format!("user:{username}"),
            aud: cfg.auth.audience.clone(),
            exp: now + 600,
            iat: now,
            nbf: now,
            jti: uuid::Uuid::new_v4().to_string(),
            client_id: "swcli".into(),
            roles,
        };
        jwt::sign(&claims, &self.kid, &self.key)
    }

    /// Same as [`TestKeys::token_for`] with user `tester`.
    pub fn token(&self, cfg: &Config, roles: Vec<RoleBinding>) -> String {
        self.token_for(cfg, "tester", roles)
    }
}

#[async_trait::async_trait]
impl KeySource for TestKeys {
    async fn fetch(&self) -> Result<Jwks, ApiError> {
        Ok(Jwks {
            keys: vec![Jwk {
                kty: "OKP".into(),
                crv: "Ed25519".into(),
                x: jwt::public_x(&self.key.verifying_key()),
                kid: self.kid.clone(),
                alg: "EdDSA".into(),
                use_: "sig".into(),
            }],
        })
    }
}

/// Logs for tests: `RUST_LOG` decides, default warnings only; installed once per test binary.
/// The folder of real outside data (`sreworks/`, `nab/`): `SW_FIXTURES_DIR` when set (as
/// `scripts/test.sh` does), else `../shared/fixtures` beside the checkout.
pub fn fixtures_dir() -> std::path::PathBuf {
    match std::env::var_os("SW_FIXTURES_DIR") {
        Some(dir) => dir.into(),
        None => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures"),
    }
}

pub fn init_test_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,sqlx=error".into()),
        )
        .with_test_writer()
        .try_init();
}
