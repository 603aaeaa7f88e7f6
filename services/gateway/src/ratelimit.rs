//! Per-principal rate limiting in Redis: a fixed one-minute window per subject.
//!
//! Fixed windows let a client burst up to twice the limit across a window edge; that is accepted
//! in exchange for one `INCR` per request (a sliding log would cost a sorted-set write per request).
//! For authenticated calls the `INCR` rides in the same pipeline as the token's revocation check.

use sw_http::ApiError;
use sw_redis::Redis;

/// Seconds a window key lives (a little over the window).
pub const WINDOW_TTL_SECS: u64 = 61;

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs()
}

/// The counter key of `subject` in the current window.
pub fn window_key(redis: &Redis, subject: &str) -> String {
    redis.key("gateway", "rl", &format!("{subject}:{}", now_secs() / 60))
}

/// 429 with `Retry-After` once `count` is over `per_minute`.
pub fn enforce(count: u64, per_minute: u64) -> Result<(), ApiError> {
    if count > per_minute {
        let retry = 60 - (now_secs() % 60);
        metrics::counter!("sw_gateway_rate_limited_total").increment(1);
        return Err(ApiError::too_many_requests(
            "rate_limited",
            retry,
            format!("More than {per_minute} requests per minute; retry in {retry} s."),
        ));
    }
    Ok(())
}

/// Counts one request for `subject` (its own round trip; for anonymous calls) and enforces the limit.
pub async fn check(redis: &Redis, subject: &str, per_minute: u64) -> Result<(), ApiError> {
    let key = window_key(redis, subject);
    let mut c = redis.conn();
    let (n,): (u64,) = sw_redis::redis::pipe()
        .incr(&key, 1u64)
        .expire(&key, WINDOW_TTL_SECS as i64)
        .ignore()
        .query_async(&mut c)
        .await
        .map_err(sw_redis::api_error)?;
    enforce(n, per_minute)
}
