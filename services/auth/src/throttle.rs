//! Failed-login throttling in Redis.
//!
//! Each failed password login increments `{prefix}:auth:fail:user:<username>` and
//! `{prefix}:auth:fail:ip:<client ip>`; each failed client authentication increments the IP counter.
//! Every increment (re)sets the key's TTL to the window, so an attacker who keeps failing stays
//! locked out. Once a counter reaches the limit, logins for that user or from that IP are answered
//! 429 without looking at the password, so the lockout also stops password guessing. Counters are
//! shared by all replicas because they live in Redis.

use sha2::{Digest, Sha256};
use sw_http::ApiError;
use sw_redis::Redis;
use sw_redis::redis;

use crate::SERVICE;

/// Counts failures and refuses attempts over the limit.
#[derive(Debug, Clone)]
pub struct Throttle {
    redis: Redis,
    /// Failures before lockout; 0 disables throttling.
    max: u64,
    window_secs: u64,
}

impl Throttle {
    pub fn new(redis: Redis, max: u64, window_secs: u64) -> Self {
        Self { redis, max, window_secs: window_secs.max(1) }
    }

    /// The counter of `username`. Names that cannot be usernames (any length, any bytes: this is
    /// untrusted input) are counted under their hash, so keys stay short and printable.
    pub fn user_key(&self, username: &str) -> String {
        let rest = if crate::handlers::users::valid_username(username) {
            format!("user:{username}")
        } else {
            format!("user:#{}", hex::encode(Sha256::digest(username.as_bytes())))
        };
        self.redis.key(SERVICE, "fail", &rest)
    }

    /// The counter of a client IP (`None` when the caller did not say, e.g. an internal call).
    pub fn ip_key(&self, ip: Option<&str>) -> Option<String> {
        let ip = ip?.trim();
        if ip.is_empty() || ip.len() > 64 {
            return None;
        }
        Some(self.redis.key(SERVICE, "fail", &format!("ip:{ip}")))
    }

    /// 429 `too_many_attempts` when any counter in `keys` reached the limit; `Retry-After` is the
    /// longest remaining lockout.
    pub async fn check(&self, keys: &[String]) -> Result<(), ApiError> {
        if self.max == 0 || keys.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for k in keys {
            pipe.cmd("GET").arg(k).cmd("TTL").arg(k);
        }
        let mut conn = self.redis.conn();
        let answers: Vec<(Option<u64>, i64)> = {
            let flat: Vec<redis::Value> = pipe.query_async(&mut conn).await.map_err(sw_redis::api_error)?;
            flat.chunks(2)
                .map(|c| {
                    let count = redis::from_redis_value::<Option<u64>>(&c[0]).unwrap_or(None);
                    let ttl = redis::from_redis_value::<i64>(&c[1]).unwrap_or(-2);
                    (count, ttl)
                })
                .collect()
        };
        let retry_after = answers
            .iter()
            .filter(|(count, _)| count.is_some_and(|n| n >= self.max))
            // A key without TTL cannot happen (set together with INCR); fall back to the window.
            .map(|(_, ttl)| if *ttl > 0 { *ttl as u64 } else { self.window_secs })
            .max();
        match retry_after {
            Some(secs) => Err(ApiError::too_many_requests(
                "too_many_attempts",
                secs,
                "Too many failed attempts; wait before trying again.",
            )),
            None => Ok(()),
        }
    }

    /// Records one failure on every counter in `keys`.
    pub async fn fail(&self, keys: &[String]) -> Result<(), ApiError> {
        if self.max == 0 || keys.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        for k in keys {
            pipe.cmd("INCR").arg(k).ignore().cmd("EXPIRE").arg(k).arg(self.window_secs).ignore();
        }
        let mut conn = self.redis.conn();
        pipe.query_async::<()>(&mut conn).await.map_err(sw_redis::api_error)
    }

    /// Forgets the failures of `key` (after a successful login).
    pub async fn clear(&self, key: &str) -> Result<(), ApiError> {
        let mut conn = self.redis.conn();
        redis::cmd("DEL").arg(key).query_async::<()>(&mut conn).await.map_err(sw_redis::api_error)
    }
}
