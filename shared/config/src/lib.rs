//! Typed, layered configuration of every sreworks process.
//!
//! Values come from compiled-in defaults, then an optional TOML file (`--config` or
//! `SREWORKS_CONFIG`), then `SREWORKS_*` environment variables, where `__` separates sections:
//! `SREWORKS_NATS__URL=nats://10.0.0.5:4222`, `SREWORKS_GATEWAY__LISTEN=0.0.0.0:8080`.
//! `SREWORKS_ADMIN_PASSWORD` is accepted as a shorthand for `SREWORKS_AUTH__ADMIN_PASSWORD`.
//! The result is validated once at start-up; a bad value stops the process with a message naming
//! the key. There are no built-in secrets: every secret is `None` until configured.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use base64::Engine;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// Why configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration could not be read: {0}")]
    Load(#[from] Box<figment::Error>),
    #[error("invalid configuration: {key}: {message}")]
    Invalid { key: &'static str, message: String },
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key, message: message.into() }
}

/// A secret value: never printed by `Debug`, never serialised back out in full.
#[derive(Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    /// The secret itself. Call only where it is used, never to log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub nats: NatsConfig,
    pub database: DatabaseConfig,
    pub redis: RedisConfig,
    pub gateway: GatewayConfig,
    pub auth: AuthConfig,
    pub appmeta: AppmetaConfig,
    pub log: LogConfig,
    pub telemetry: TelemetryConfig,
    pub s3: S3Config,
    pub package_store: PackageStoreConfig,
    pub executor: ExecutorConfig,
    pub workflow: WorkflowConfig,
    /// Drain deadline on shutdown, in seconds: in-flight requests and messages get this long to finish.
    pub shutdown_grace_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            nats: NatsConfig::default(),
            database: DatabaseConfig::default(),
            redis: RedisConfig::default(),
            gateway: GatewayConfig::default(),
            auth: AuthConfig::default(),
            appmeta: AppmetaConfig::default(),
            log: LogConfig::default(),
            telemetry: TelemetryConfig::default(),
            s3: S3Config::default(),
            package_store: PackageStoreConfig::default(),
            executor: ExecutorConfig::default(),
            workflow: WorkflowConfig::default(),
            shutdown_grace_secs: 10,
        }
    }
}

/// NATS connection and naming.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct NatsConfig {
    /// Server URL(s), comma-separated.
    pub url: String,
    /// Subject prefix (`sw` → `sw.events.>`, `sw.api.<service>.<op>`); the stream names are its
    /// upper-case form (`SW_EVENTS`). Tests set a unique prefix each.
    pub prefix: String,
    /// Default deadline of a request/reply call, in milliseconds.
    pub request_timeout_ms: u64,
    /// How long to keep retrying the first connection, in seconds.
    pub connect_timeout_secs: u64,
    /// Optional credentials.
    pub user: Option<String>,
    pub password: Option<Secret>,
    pub token: Option<Secret>,
    /// Max age of events kept in the events stream, in hours.
    pub events_max_age_hours: u64,
    /// Max bytes of the events stream.
    pub events_max_bytes: i64,
    /// Events stream replicas (1 for a single server, 3 in a cluster).
    pub stream_replicas: usize,
}

impl Default for NatsConfig {
    fn default() -> Self {
        Self {
            url: "nats://127.0.0.1:4222".into(),
            prefix: "sw".into(),
            request_timeout_ms: 5_000,
            connect_timeout_secs: 30,
            user: None,
            password: None,
            token: None,
            events_max_age_hours: 24 * 7,
            events_max_bytes: 1 << 30,
            stream_replicas: 1,
        }
    }
}

impl NatsConfig {
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
}

/// The MySQL/MariaDB server. Each service uses its own database `{name_prefix}{service}`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// Server URL without a database, e.g. `mysql://sreworks:pw@db:3306`.
    pub url: Secret,
    /// Prefix of each service's database name (`sw_` → `sw_auth`, `sw_appmeta`).
    pub name_prefix: String,
    pub max_connections: u32,
    pub min_connections: u32,
    /// Deadline to get a connection from the pool, in milliseconds.
    pub acquire_timeout_ms: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: Secret::new("mysql://root@127.0.0.1:3306"),
            name_prefix: "sw_".into(),
            max_connections: 10,
            min_connections: 0,
            acquire_timeout_ms: 3_000,
        }
    }
}

/// Redis.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    pub url: Secret,
    /// Key prefix (`sw` → `sw:<service>:<purpose>:...`). Tests set a unique prefix each.
    pub prefix: String,
    /// Deadline of one command, in milliseconds.
    pub timeout_ms: u64,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self { url: Secret::new("redis://127.0.0.1:6379"), prefix: "sw".into(), timeout_ms: 1_000 }
    }
}

impl RedisConfig {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// The HTTP gateway.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// Listen address (`127.0.0.1:0` picks a free port).
    pub listen: SocketAddr,
    /// URL users reach the gateway at, printed at start and used in links; defaults to `http://{listen}`.
    pub public_url: Option<String>,
    /// Largest JSON or form body accepted, in bytes.
    pub body_limit_bytes: usize,
    /// Requests per minute per principal (token subject, or client IP when anonymous).
    pub rate_limit_per_minute: u64,
    /// How long an `Idempotency-Key` replays the first answer, in seconds.
    pub idempotency_ttl_secs: u64,
    /// Trust `X-Forwarded-For` for the client IP (only behind a proxy you control).
    pub trust_forwarded_for: bool,
    /// How long the gateway waits for a streaming operation's answer (package import, build task)
    /// after the last byte of the body was sent, in seconds. Longer than the service's own
    /// deadline, so the service's answer (or its timeout problem) is what the client sees.
    pub stream_deadline_secs: u64,
    /// Longest pause in a streamed body, in seconds: a client's upload to a streaming operation,
    /// or a package download coming from storage. Past it the transfer is abandoned.
    pub body_idle_timeout_secs: u64,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: None,
            body_limit_bytes: 1 << 20,
            rate_limit_per_minute: 6_000,
            idempotency_ttl_secs: 24 * 3600,
            trust_forwarded_for: false,
            stream_deadline_secs: 900,
            body_idle_timeout_secs: 30,
        }
    }
}

/// The auth service.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// `iss` of issued tokens.
    pub issuer: String,
    /// `aud` of issued tokens.
    pub audience: String,
    pub access_token_ttl_secs: u64,
    pub refresh_token_ttl_secs: u64,
    /// Password of the `admin` user created on first start. Unset: a random one is generated and printed once.
    pub admin_password: Option<Secret>,
    /// Failed logins per user or per client IP before throttling.
    pub max_failed_logins: u64,
    /// The window over which failed logins are counted, and the lockout once over the limit, in seconds.
    pub failed_login_window_secs: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            issuer: "sreworks".into(),
            audience: "sreworks".into(),
            access_token_ttl_secs: 900,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            admin_password: None,
            max_failed_logins: 5,
            failed_login_window_secs: 300,
        }
    }
}

/// The appmeta service.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AppmetaConfig {
    /// 32 bytes, base64: the AES-256-GCM key that encrypts cluster credentials at rest. Required.
    pub encryption_key: Option<Secret>,
}

impl AppmetaConfig {
    /// The decoded key, once validated.
    pub fn key_bytes(&self) -> Option<[u8; 32]> {
        let raw =
            base64::engine::general_purpose::STANDARD.decode(self.encryption_key.as_ref()?.expose()).ok()?;
        raw.try_into().ok()
    }
}

/// Log output.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `pretty` or `json`.
    pub format: LogFormat,
    /// An `EnvFilter` directive; `RUST_LOG` overrides it.
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { format: LogFormat::Pretty, filter: "info".into() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

/// Traces and metrics.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// OTLP endpoint; `OTEL_EXPORTER_OTLP_ENDPOINT` sets it too.
    pub otlp_endpoint: Option<String>,
    /// Where non-gateway processes serve `/metrics` and `/healthz`; unset: not served.
    pub ops_listen: Option<SocketAddr>,
}

/// The S3-compatible object store that holds package artifacts (AWS S3, MinIO, or the s3s-fs
/// server `scripts/infra.sh` starts for local runs).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    /// Endpoint URL, e.g. `http://127.0.0.1:9000`; unset: AWS S3 of `region`.
    pub endpoint: Option<String>,
    /// Signing region (any value for most S3-compatible servers).
    pub region: String,
    /// Access key id; with `secret_access_key`, or both unset to use the AWS default credential chain.
    pub access_key_id: Option<Secret>,
    /// Secret access key, paired with `access_key_id`.
    pub secret_access_key: Option<Secret>,
    /// Bucket of package artifacts.
    pub bucket: String,
    /// Path-style addressing (`{endpoint}/{bucket}/{key}`), which MinIO and s3s-fs need; `false`
    /// uses virtual-hosted style (`{bucket}.{endpoint}`).
    pub force_path_style: bool,
    /// Deadline of one S3 operation, in milliseconds.
    pub timeout_ms: u64,
    /// Endpoint that presigned URLs handed to users name (e.g. the S3 ingress users reach);
    /// unset: `endpoint`. The platform itself always talks to `endpoint`.
    pub public_endpoint: Option<String>,
}

impl Default for S3Config {
    fn default() -> Self {
        Self {
            endpoint: None,
            region: "us-east-1".into(),
            access_key_id: None,
            secret_access_key: None,
            bucket: "sreworks-packages".into(),
            force_path_style: true,
            timeout_ms: 30_000,
            public_endpoint: None,
        }
    }
}

impl S3Config {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// package-store: limits on uploaded packages, streaming, presigned URLs and build tasks.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PackageStoreConfig {
    /// Folder for the local copy of an upload while it is checked (deleted right after);
    /// unset: the system temporary folder. Needs room for the largest package times the imports
    /// running at once.
    pub spool_dir: Option<std::path::PathBuf>,
    /// Largest package accepted, in bytes (413 beyond). At most 5 GiB (one S3 copy).
    pub max_package_bytes: u64,
    /// Most entries in one zip (outer or nested).
    pub max_entries: u64,
    /// Most decompressed bytes over the whole package, outer and nested entries together.
    pub max_uncompressed_bytes: u64,
    /// Largest decompressed/compressed ratio of one entry (after its first MiB).
    pub max_compression_ratio: u64,
    /// Largest `meta.yaml`, in bytes.
    pub max_meta_bytes: u64,
    /// Reject a component zip whose MD5 differs from the `packageMd5` declared for it. Off by
    /// default because SREWorks re-zips packages on export; each component's result is reported.
    pub strict_md5: bool,
    /// Default lifetime of presigned download URLs, in seconds.
    pub presign_expiry_secs: u64,
    /// Longest lifetime a caller may ask for, in seconds (S3's own limit is 7 days).
    pub presign_max_expiry_secs: u64,
    /// How long an upload may pause between two chunks before it is abandoned, in seconds.
    pub upload_idle_timeout_secs: u64,
    /// Deadline of one import after its last byte arrived (checks and S3 writes), in seconds.
    pub import_deadline_secs: u64,
    /// Deadline of one build task, in seconds; a task past it ends in `FAILURE`.
    pub build_deadline_secs: u64,
    /// Build tasks run at once per process.
    pub build_workers: usize,
    /// Largest chart archive a HELM component may upload with a build task, in bytes.
    pub max_chart_bytes: u64,
}

impl Default for PackageStoreConfig {
    fn default() -> Self {
        Self {
            spool_dir: None,
            max_package_bytes: 4 * 1024 * 1024 * 1024,
            max_entries: 10_000,
            max_uncompressed_bytes: 8 * 1024 * 1024 * 1024,
            max_compression_ratio: 100,
            max_meta_bytes: 1024 * 1024,
            strict_md5: false,
            presign_expiry_secs: 900,
            presign_max_expiry_secs: 7 * 24 * 3600,
            upload_idle_timeout_secs: 30,
            import_deadline_secs: 600,
            build_deadline_secs: 600,
            build_workers: 2,
            max_chart_bytes: 64 * 1024 * 1024,
        }
    }
}

/// The k8s-executor: its calls to clusters, the clients it keeps, and how it watches health.
/// Cluster credentials are opened with `appmeta.encryption_key`, the key appmeta seals them with.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExecutorConfig {
    /// Deadline of one Kubernetes API call, in seconds: a cluster slower than that fails (and
    /// retries) only the command it serves.
    pub call_timeout_secs: u64,
    /// How long a cluster's client is used before appmeta is asked again whether the cluster
    /// changed, in seconds (an unchanged cluster keeps its client).
    pub cluster_cache_secs: u64,
    /// How often the health of applied components is read back, in milliseconds.
    pub health_poll_ms: u64,
    /// How long one replica holds the health watch of a component before another may take it
    /// over, in seconds.
    pub health_lease_secs: u64,
    /// How long the result of a command is kept for replay to a redelivery, in hours.
    pub result_retention_hours: u64,
    /// Commands one replica works on at once: a cluster that answers slowly or not at all holds
    /// only the slots of its own commands (each for at most `call_timeout_secs` per call), so the
    /// other clusters' commands go on in the remaining ones.
    pub concurrency: u64,
    /// How long a command delivered to a replica that died (or whose attempt hangs) waits before it
    /// is delivered again, in seconds; also the longest one attempt may take. A newer command for
    /// the same component instance waits this long (plus 5 s) behind a command cut off mid-apply.
    pub ack_wait_secs: u64,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        Self {
            call_timeout_secs: 10,
            cluster_cache_secs: 60,
            health_poll_ms: 2_000,
            health_lease_secs: 30,
            result_retention_hours: 24 * 7,
            concurrency: 8,
            ack_wait_secs: 30,
        }
    }
}

impl ExecutorConfig {
    pub fn call_timeout(&self) -> Duration {
        Duration::from_secs(self.call_timeout_secs)
    }
    pub fn cluster_cache(&self) -> Duration {
        Duration::from_secs(self.cluster_cache_secs)
    }
    pub fn health_poll(&self) -> Duration {
        Duration::from_millis(self.health_poll_ms)
    }
    pub fn health_lease(&self) -> Duration {
        Duration::from_secs(self.health_lease_secs)
    }
    pub fn result_retention(&self) -> Duration {
        Duration::from_secs(self.result_retention_hours * 3600)
    }
}

/// What a second launch for an app instance that already has a deployment running does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LaunchConflict {
    /// It is accepted and waits (state `CREATED`) until the running one ends.
    Queue,
    /// It is refused with 409 `deployment_in_progress`.
    Reject,
}

/// The workflow service: deadlines, how launches for one app instance are serialised, timers and
/// the `webhook` step.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkflowConfig {
    /// Deadline of a whole deployment (its workflow) from its start, in seconds; reaching it ends
    /// the deployment in `FAILURE` with reason `Timeout`.
    pub deployment_timeout_secs: u64,
    /// Default deadline of a step from its start, in seconds (a step's `timeout` property wins).
    pub step_timeout_secs: u64,
    /// Default deadline of a `suspend` or `rollout-promotion` step waiting for an operator.
    pub approval_timeout_secs: u64,
    /// How long the executor waits for a component to become healthy, in seconds (sent with each
    /// apply command; the executor reports `failed` with reason `Timeout` after it).
    pub health_timeout_secs: u64,
    /// A launch for an app instance with a deployment still running: `queue` or `reject`.
    pub on_conflict: LaunchConflict,
    /// How often each replica looks for due work (timers, work another replica left), in
    /// milliseconds. Work this replica causes itself is picked up at once.
    pub poll_ms: u64,
    /// How long one replica holds a deployment while advancing it before another may take over,
    /// in seconds.
    pub lease_secs: u64,
    /// Deployments advanced at once per replica.
    pub concurrency: u64,
    /// Launches and replays worked on at once per replica (from reading the file to the commit
    /// of the deployment and its first step); more wait their turn within the request's deadline.
    /// A burst beyond what the CPUs can work on at once only makes every launch in it slower.
    pub launch_concurrency: u64,
    /// Executor results applied at once per replica (each with the pass it allows). Raise it
    /// when the database is remote and the replica's CPUs are idle under load.
    pub results_concurrency: u64,
    /// How long an executor result delivered to a replica that died waits before another replica
    /// gets it, in seconds (the results consumer's ack wait; applying a result takes milliseconds).
    pub results_ack_wait_secs: u64,
    /// HMAC-SHA256 key signing `webhook` step requests (`webhook-signature` header). No default:
    /// without it a launch with a `webhook` step is refused.
    pub webhook_signing_key: Option<Secret>,
    /// Deadline of one webhook request, in seconds.
    pub webhook_timeout_secs: u64,
    /// Let `webhook` steps call private, loopback and link-local addresses (refused by default: a
    /// launch file must not reach the cluster's internal services or cloud metadata).
    pub webhook_allow_private: bool,
    /// Attempts of a webhook before its step fails (with backoff between them).
    pub webhook_attempts: u64,
}

impl Default for WorkflowConfig {
    fn default() -> Self {
        Self {
            // Longer than `approval_timeout_secs`, so an approval can wait its whole time.
            deployment_timeout_secs: 26 * 3600,
            step_timeout_secs: 1800,
            approval_timeout_secs: 24 * 3600,
            health_timeout_secs: 600,
            on_conflict: LaunchConflict::Queue,
            poll_ms: 500,
            lease_secs: 30,
            concurrency: 8,
            // Measured with loadtests/workflow-bench.sh (200 launches at once, 2 cores shared with
            // MariaDB, NATS and the executor): results and launches are database work whose round
            // trips wait for CPU there, so more at once finished no sooner and made each transaction
            // slower (engine's own time per step p99: results 1 → 19–30 ms, 2 → 45, 8 → 80;
            // launches 1 → 19–25, 2 → 26–30). One result at a time also keeps a
            // component's `applied` and `healthy`, published together, from racing each other.
            launch_concurrency: 2,
            results_concurrency: 1,
            results_ack_wait_secs: 10,
            webhook_signing_key: None,
            webhook_timeout_secs: 10,
            webhook_allow_private: false,
            webhook_attempts: 3,
        }
    }
}

/// S3 bucket naming rules: 3-63 characters of a-z, 0-9, '-' and '.', starting and ending with a
/// letter or digit.
fn valid_bucket_name(name: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    (3..=63).contains(&name.len())
        && name.bytes().all(|b| alnum(b) || b == b'-' || b == b'.')
        && name.bytes().next().is_some_and(alnum)
        && name.bytes().last().is_some_and(alnum)
}

impl Config {
    /// Defaults → `file` (if any) → `SREWORKS_*` environment, then validated.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(f) = file {
            fig = fig.merge(Toml::file_exact(f));
        }
        fig = fig.merge(
            Env::prefixed("SREWORKS_")
                .ignore(&["CONFIG", "ADMIN_PASSWORD", "TARGET"])
                .split("__")
                .map(|k| k.as_str().to_ascii_lowercase().into()),
        );
        if let Ok(pw) = std::env::var("SREWORKS_ADMIN_PASSWORD") {
            fig = fig.merge(Serialized::default("auth.admin_password", pw));
        }
        if let Ok(ep) = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT") {
            fig = fig.merge(Serialized::default("telemetry.otlp_endpoint", ep));
        }
        let cfg: Config = fig.extract().map_err(|e| ConfigError::Load(Box::new(e)))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks every value that could make the platform misbehave later.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let p = &self.nats.prefix;
        if p.is_empty()
            || p.len() > 32
            || !p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(invalid("nats.prefix", "1-32 characters of a-z, 0-9 and _"));
        }
        if self.nats.request_timeout_ms == 0 {
            return Err(invalid("nats.request_timeout_ms", "must be > 0"));
        }
        if self.nats.stream_replicas == 0 || self.nats.stream_replicas > 5 {
            return Err(invalid("nats.stream_replicas", "must be 1..=5"));
        }
        let dp = &self.database.name_prefix;
        if dp.len() > 40 || !dp.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
            return Err(invalid("database.name_prefix", "at most 40 characters of a-z, 0-9 and _"));
        }
        if !self.database.url.expose().starts_with("mysql://") {
            return Err(invalid("database.url", "must be a mysql:// URL"));
        }
        if self.database.max_connections == 0 {
            return Err(invalid("database.max_connections", "must be > 0"));
        }
        let rp = &self.redis.prefix;
        if rp.is_empty() || rp.contains(char::is_whitespace) {
            return Err(invalid("redis.prefix", "must be non-empty without spaces"));
        }
        if !(self.redis.url.expose().starts_with("redis://")
            || self.redis.url.expose().starts_with("rediss://"))
        {
            return Err(invalid("redis.url", "must be a redis:// or rediss:// URL"));
        }
        if self.gateway.body_limit_bytes < 1024 {
            return Err(invalid("gateway.body_limit_bytes", "must be at least 1024"));
        }
        if self.gateway.rate_limit_per_minute == 0 {
            return Err(invalid("gateway.rate_limit_per_minute", "must be > 0"));
        }
        if self.gateway.stream_deadline_secs == 0 || self.gateway.stream_deadline_secs > 24 * 3600 {
            return Err(invalid("gateway.stream_deadline_secs", "must be 1..=86400"));
        }
        if self.gateway.body_idle_timeout_secs == 0 || self.gateway.body_idle_timeout_secs > 3600 {
            return Err(invalid("gateway.body_idle_timeout_secs", "must be 1..=3600"));
        }
        if self.auth.access_token_ttl_secs < 30 || self.auth.access_token_ttl_secs > 24 * 3600 {
            return Err(invalid("auth.access_token_ttl_secs", "must be 30..=86400"));
        }
        if self.auth.refresh_token_ttl_secs < self.auth.access_token_ttl_secs {
            return Err(invalid("auth.refresh_token_ttl_secs", "must be at least the access token TTL"));
        }
        if let Some(pw) = &self.auth.admin_password
            && pw.expose().chars().count() < 12
        {
            return Err(invalid("auth.admin_password", "must be at least 12 characters"));
        }
        if self.appmeta.encryption_key.is_some() && self.appmeta.key_bytes().is_none() {
            return Err(invalid("appmeta.encryption_key", "must be 32 bytes encoded in base64"));
        }
        self.validate_s3()?;
        self.validate_executor()?;
        self.validate_workflow()
    }

    fn validate_workflow(&self) -> Result<(), ConfigError> {
        let wf = &self.workflow;
        for (name, v) in [
            ("workflow.deployment_timeout_secs", wf.deployment_timeout_secs),
            ("workflow.step_timeout_secs", wf.step_timeout_secs),
            ("workflow.approval_timeout_secs", wf.approval_timeout_secs),
            ("workflow.health_timeout_secs", wf.health_timeout_secs),
            ("workflow.poll_ms", wf.poll_ms),
            ("workflow.lease_secs", wf.lease_secs),
            ("workflow.concurrency", wf.concurrency),
            ("workflow.launch_concurrency", wf.launch_concurrency),
            ("workflow.results_ack_wait_secs", wf.results_ack_wait_secs),
            ("workflow.results_concurrency", wf.results_concurrency),
            ("workflow.webhook_timeout_secs", wf.webhook_timeout_secs),
            ("workflow.webhook_attempts", wf.webhook_attempts),
        ] {
            if v == 0 {
                return Err(invalid(name, "must be > 0"));
            }
        }
        if let Some(k) = &wf.webhook_signing_key
            && k.expose().len() < 16
        {
            return Err(invalid("workflow.webhook_signing_key", "must be at least 16 characters"));
        }
        Ok(())
    }

    fn validate_executor(&self) -> Result<(), ConfigError> {
        let ex = &self.executor;
        for (name, v) in [
            ("executor.call_timeout_secs", ex.call_timeout_secs),
            ("executor.cluster_cache_secs", ex.cluster_cache_secs),
            ("executor.health_poll_ms", ex.health_poll_ms),
            ("executor.health_lease_secs", ex.health_lease_secs),
            ("executor.result_retention_hours", ex.result_retention_hours),
            ("executor.concurrency", ex.concurrency),
            ("executor.ack_wait_secs", ex.ack_wait_secs),
        ] {
            if v == 0 {
                return Err(invalid(name, "must be > 0"));
            }
        }
        Ok(())
    }

    fn validate_s3(&self) -> Result<(), ConfigError> {
        let s3 = &self.s3;
        if let Some(ep) = &s3.endpoint
            && !(ep.starts_with("http://") || ep.starts_with("https://"))
        {
            return Err(invalid("s3.endpoint", "must be an http:// or https:// URL"));
        }
        if s3.region.trim().is_empty() {
            return Err(invalid("s3.region", "must be non-empty"));
        }
        match (&s3.access_key_id, &s3.secret_access_key) {
            (Some(_), None) => {
                return Err(invalid("s3.secret_access_key", "must be set when s3.access_key_id is set"));
            }
            (None, Some(_)) => {
                return Err(invalid("s3.access_key_id", "must be set when s3.secret_access_key is set"));
            }
            _ => {}
        }
        if !valid_bucket_name(&s3.bucket) {
            return Err(invalid(
                "s3.bucket",
                "3-63 characters of a-z, 0-9, '-' and '.', starting and ending with a letter or digit",
            ));
        }
        if s3.timeout_ms == 0 {
            return Err(invalid("s3.timeout_ms", "must be > 0"));
        }
        if let Some(ep) = &s3.public_endpoint
            && !(ep.starts_with("http://") || ep.starts_with("https://"))
        {
            return Err(invalid("s3.public_endpoint", "must be an http:// or https:// URL"));
        }
        let ps = &self.package_store;
        if ps.max_package_bytes == 0 || ps.max_package_bytes > 5 * 1024 * 1024 * 1024 {
            return Err(invalid("package_store.max_package_bytes", "must be 1..=5368709120 (5 GiB)"));
        }
        for (name, v) in [
            ("package_store.max_entries", ps.max_entries),
            ("package_store.max_uncompressed_bytes", ps.max_uncompressed_bytes),
            ("package_store.max_compression_ratio", ps.max_compression_ratio),
            ("package_store.max_meta_bytes", ps.max_meta_bytes),
            ("package_store.upload_idle_timeout_secs", ps.upload_idle_timeout_secs),
            ("package_store.import_deadline_secs", ps.import_deadline_secs),
            ("package_store.build_deadline_secs", ps.build_deadline_secs),
            ("package_store.max_chart_bytes", ps.max_chart_bytes),
        ] {
            if v == 0 {
                return Err(invalid(name, "must be > 0"));
            }
        }
        if ps.build_workers == 0 || ps.build_workers > 64 {
            return Err(invalid("package_store.build_workers", "must be 1..=64"));
        }
        if ps.presign_expiry_secs == 0
            || ps.presign_max_expiry_secs > 7 * 24 * 3600
            || ps.presign_expiry_secs > ps.presign_max_expiry_secs
        {
            return Err(invalid(
                "package_store.presign_expiry_secs",
                "must be 1..=presign_max_expiry_secs, and that at most 604800 (7 days)",
            ));
        }
        Ok(())
    }

    /// Checks what a service needs beyond the generic validation (called by the server for each target).
    pub fn require_appmeta_key(&self) -> Result<[u8; 32], ConfigError> {
        self.appmeta.key_bytes().ok_or_else(|| {
            invalid(
                "appmeta.encryption_key",
                "required: set SREWORKS_APPMETA__ENCRYPTION_KEY to 32 random bytes in base64 (openssl rand -base64 32)",
            )
        })
    }

    /// The URL users reach the gateway at: `gateway.public_url`, else the bound address.
    pub fn public_url_for(&self, bound: Option<SocketAddr>) -> String {
        self.gateway
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", bound.unwrap_or(self.gateway.listen)))
    }
}

#[cfg(test)]
// figment's test `Jail` closures must return figment's own (large) error type.
#[allow(clippy::result_large_err)]
mod tests;
