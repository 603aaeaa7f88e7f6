//! `Idempotency-Key` on POST: the first answer is stored in Redis and replayed for the same key.
//!
//! The key is scoped to the caller (token subject, or client IP for anonymous calls) and bound to a
//! fingerprint of method, path, query and body: the same key with a different request is a 422.
//! While the first request runs, a second one with the same key gets 409 `idempotency_in_progress`.
//! Server errors (5xx) are not stored, so the client can retry them with the same key.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sw_http::ApiError;
use sw_redis::Redis;
use sw_redis::redis::AsyncCommands;

/// Longest accepted key.
pub const MAX_KEY_LEN: usize = 255;

/// A stored answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stored {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: Option<serde_json::Value>,
    pub problem: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    fp: String,
    #[serde(default)]
    done: Option<Stored>,
}

/// What to do with a request carrying an idempotency key.
#[derive(Debug)]
pub enum Begin {
    /// First time: run it, then [`finish`].
    Fresh { redis_key: String },
    /// Seen before: answer this.
    Replay(Stored),
}

/// The fingerprint of a request.
pub fn fingerprint(method: &str, path: &str, query: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    for part in [method.as_bytes(), path.as_bytes(), query.as_bytes(), body] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    hex::encode(h.finalize())
}

/// Claims `key` for this request or returns the stored answer.
pub async fn begin(
    redis: &Redis,
    subject: &str,
    key: &str,
    fp: &str,
    pending_ttl_secs: u64,
) -> Result<Begin, ApiError> {
    if key.is_empty() || key.len() > MAX_KEY_LEN || !key.bytes().all(|b| (0x21..0x7f).contains(&b)) {
        return Err(ApiError::invalid_field("Idempotency-Key", "must be 1-255 visible ASCII characters"));
    }
    let redis_key =
        redis.key("gateway", "idem", &format!("{subject}:{}", hex::encode(Sha256::digest(key.as_bytes()))));
    let pending = serde_json::to_string(&Entry { fp: fp.to_owned(), done: None }).unwrap_or_default();
    let mut c = redis.conn();
    let claimed: bool = sw_redis::redis::cmd("SET")
        .arg(&redis_key)
        .arg(&pending)
        .arg("NX")
        .arg("EX")
        .arg(pending_ttl_secs.max(1))
        .query_async::<Option<String>>(&mut c)
        .await
        .map_err(sw_redis::api_error)?
        .is_some();
    if claimed {
        return Ok(Begin::Fresh { redis_key });
    }
    let raw: Option<String> = c.get(&redis_key).await.map_err(sw_redis::api_error)?;
    let Some(entry) = raw.and_then(|r| serde_json::from_str::<Entry>(&r).ok()) else {
        // Expired between SET and GET: treat as in progress; the client retries.
        return Err(in_progress());
    };
    if entry.fp != fp {
        return Err(ApiError::new(
            422,
            "idempotency_key_reused",
            "This Idempotency-Key was used for a different request.",
        ));
    }
    match entry.done {
        Some(stored) => Ok(Begin::Replay(stored)),
        None => Err(in_progress()),
    }
}

fn in_progress() -> ApiError {
    let mut p = sw_contracts::Problem::new(
        409,
        "idempotency_in_progress",
        Some("A request with this Idempotency-Key is still being processed.".to_owned()),
    );
    p.retry_after = Some(1);
    ApiError::from(p)
}

/// Stores the answer (or releases the key after a server error).
pub async fn finish(redis: &Redis, redis_key: &str, fp: &str, stored: Option<Stored>, ttl_secs: u64) {
    let mut c = redis.conn();
    let result: Result<(), _> = match stored {
        Some(s) if s.status < 500 => {
            let v = serde_json::to_string(&Entry { fp: fp.to_owned(), done: Some(s) }).unwrap_or_default();
            c.set_ex(redis_key, v, ttl_secs).await
        }
        _ => c.del(redis_key).await,
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, "Could not record the idempotent answer; a retry with the same key will run again.");
    }
}
