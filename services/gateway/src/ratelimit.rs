//! Per-principal rate limiting in Redis: a fixed one-minute window per subject.
//!
//! Fixed windows let a client burst up to twice the limit across a window edge; that is accepted
//! in exchange for one `INCR` per request (a sliding log would cost a sorted-set write per request).

use sw_http::ApiError;
use sw_redis::Redis;
use sw_redis::redis::AsyncCommands;

/// Counts one request for `subject`; 429 with `Retry-After` once over `per_minute`.
pub async fn check(redis: &Redis, subject: &str, per_minute: u64) -> Result<(), ApiError> {
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
    let window = now / 60;
    let key = redis.key("gateway", "rl", &format!("{subject}:{window}"));
    let mut c = redis.conn();
    let n: u64 = c.incr(&key, 1u64).await.map_err(sw_redis::api_error)?;
    if n == 1 {
        let _: () = c.expire(&key, 61).await.map_err(sw_redis::api_error)?;
    }
    if n > per_minute {
        let retry = 60 - (now % 60);
        metrics::counter!("sw_gateway_rate_limited_total").increment(1);
        return Err(ApiError::too_many_requests(
            "rate_limited",
            retry,
            format!("More than {per_minute} requests per minute; retry in {retry} s."),
        ));
    }
    Ok(())
}
