//! Redis access with the platform's key naming and deadlines.
//!
//! Keys are `{prefix}:{service}:{purpose}:...` (`sw:auth:revoked:<jti>`); tests use a unique prefix.
//! The connection manager reconnects by itself, so a Redis restart needs no process restart; while
//! Redis is down every command fails within the configured timeout and callers answer 503.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use sw_config::RedisConfig;
use sw_http::ApiError;

pub use redis;

/// A shared, auto-reconnecting Redis handle.
#[derive(Clone)]
pub struct Redis {
    conn: ConnectionManager,
    prefix: String,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis").field("prefix", &self.prefix).finish()
    }
}

/// Redis could not be reached at start-up.
#[derive(Debug, thiserror::Error)]
#[error("redis unreachable: {0}")]
pub struct RedisConnectError(#[from] redis::RedisError);

impl Redis {
    /// Connects (retrying briefly) and returns the handle.
    pub async fn connect(cfg: &RedisConfig) -> Result<Self, RedisConnectError> {
        let client = redis::Client::open(cfg.url.expose())?;
        let mc = ConnectionManagerConfig::new()
            .set_connection_timeout(cfg.timeout().max(Duration::from_millis(500)))
            .set_response_timeout(cfg.timeout())
            .set_number_of_retries(2)
            .set_max_delay(1000);
        let mut last = None;
        for _ in 0..20 {
            match ConnectionManager::new_with_config(client.clone(), mc.clone()).await {
                Ok(conn) => return Ok(Self { conn, prefix: cfg.prefix.clone() }),
                Err(e) => {
                    tracing::warn!(error = %e, "Redis not reachable yet; retrying.");
                    last = Some(e);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
        Err(RedisConnectError(last.expect("at least one attempt")))
    }

    /// A connection to run commands on (cheap clone of the manager).
    pub fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// `{prefix}:{service}:{purpose}:{rest}`.
    pub fn key(&self, service: &str, purpose: &str, rest: &str) -> String {
        format!("{}:{service}:{purpose}:{rest}", self.prefix)
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// True when Redis answers PING.
    pub async fn ping(&self) -> bool {
        let mut c = self.conn();
        redis::cmd("PING").query_async::<String>(&mut c).await.is_ok()
    }
}

/// Maps a Redis failure to a 503 (the cause is logged, not returned).
pub fn api_error(e: redis::RedisError) -> ApiError {
    ApiError::unavailable("redis_unavailable", &e)
}
