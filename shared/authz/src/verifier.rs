//! Token verification with a cached JWKS and the Redis revocation denylist.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ed25519_dalek::VerifyingKey;
use sha2::{Digest, Sha256};
use sw_bus::{Bus, CallMeta, RpcEnvelope};
use sw_contracts::auth::Jwks;
use sw_http::ApiError;
use sw_redis::Redis;
use tokio::sync::{Mutex, RwLock};

use crate::jwt::{self, TokenError};
use crate::principal::Principal;

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
const LEEWAY_SECS: i64 = 30;
/// Cached keys are refetched at least this often, so retired keys drop out.
const MAX_CACHE_AGE: Duration = Duration::from_secs(300);
/// Unknown `kid`s trigger a refetch at most this often, so forged kids cannot flood auth.
const MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(1);

/// Where public keys come from.
#[async_trait::async_trait]
pub trait KeySource: Send + Sync {
    async fn fetch(&self) -> Result<Jwks, ApiError>;
}

/// Fetches the JWKS from the auth service over NATS (`{prefix}.api.auth.jwks`).
#[derive(Debug, Clone)]
pub struct BusKeySource(pub Bus);

#[async_trait::async_trait]
impl KeySource for BusKeySource {
    async fn fetch(&self) -> Result<Jwks, ApiError> {
        let reply = self.0.call("auth", "jwks", &CallMeta::default(), &RpcEnvelope::default(), None).await?;
        serde_json::from_value(reply.body.unwrap_or_default())
            .map_err(|e| ApiError::new(502, "bad_upstream_reply", format!("auth sent an invalid JWKS: {e}")))
    }
}

/// Names a counter key after the verified token's subject (see [`Verifier::verify_counting`]).
pub type CounterKey<'a> = dyn Fn(&str) -> String + Sync + 'a;

/// The 401 for a call without a bearer token.
pub fn missing_token() -> ApiError {
    ApiError::unauthorized("missing_token", "Send an access token as 'Authorization: Bearer <token>'.")
}

/// The denylist key of a token id.
pub fn revoked_key(redis: &Redis, jti: &str) -> String {
    redis.key("auth", "revoked", jti)
}

struct Cache {
    keys: HashMap<String, VerifyingKey>,
    fetched: Option<Instant>,
}

/// Tokens whose signature, issuer and audience were already checked, by SHA-256 of the token.
///
/// An Ed25519 verification costs far more than the rest of a request, and a client sends the same
/// token many times. A hit skips only the signature work: lifetime is checked against the cached
/// `exp`/`nbf` on every use, revocation is checked in Redis on every use, and an entry lives at
/// most [`VERIFIED_TTL_SECS`] so a key withdrawn from the JWKS stops being honoured soon after.
#[derive(Default)]
struct VerifiedCache {
    entries: std::sync::Mutex<HashMap<[u8; 32], (jwt::Claims, i64)>>,
}

/// Most tokens remembered at once; past this the cache is emptied and refills.
const VERIFIED_CAPACITY: usize = 10_000;
/// Longest time a verified token is remembered, in seconds.
const VERIFIED_TTL_SECS: i64 = 60;

impl VerifiedCache {
    fn lookup(&self, digest: &[u8; 32], now: i64) -> Option<jwt::Claims> {
        let map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let (claims, until) = map.get(digest)?;
        let live = now < *until && claims.exp > now - LEEWAY_SECS && claims.nbf <= now + LEEWAY_SECS;
        live.then(|| claims.clone())
    }

    fn insert(&self, digest: [u8; 32], claims: &jwt::Claims, now: i64) {
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= VERIFIED_CAPACITY {
            map.retain(|_, (c, until)| now < *until && c.exp > now);
            if map.len() >= VERIFIED_CAPACITY {
                map.clear();
            }
        }
        map.insert(digest, (claims.clone(), now + VERIFIED_TTL_SECS));
    }
}

/// Verifies bearer tokens. One per process, shared by every service in it.
#[derive(Clone)]
pub struct Verifier {
    verified: Arc<VerifiedCache>,
    source: Arc<dyn KeySource>,
    redis: Redis,
    issuer: String,
    audience: String,
    cache: Arc<RwLock<Cache>>,
    refetch: Arc<Mutex<()>>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier").field("issuer", &self.issuer).finish()
    }
}

impl Verifier {
    pub fn new(source: Arc<dyn KeySource>, redis: Redis, issuer: &str, audience: &str) -> Self {
        Self {
            source,
            redis,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            cache: Arc::new(RwLock::new(Cache { keys: HashMap::new(), fetched: None })),
            verified: Arc::new(VerifiedCache::default()),
            refetch: Arc::new(Mutex::new(())),
        }
    }

    /// Verifies the bearer token of a call.
    pub async fn verify_call(&self, meta: &CallMeta) -> Result<Principal, ApiError> {
        match meta.bearer() {
            Some(t) => self.verify(t).await,
            None => Err(missing_token()),
        }
    }

    /// Verifies a token: signature, lifetime, issuer, audience, and not revoked.
    pub async fn verify(&self, token: &str) -> Result<Principal, ApiError> {
        self.verify_counting(token, None).await.map(|(p, _)| p)
    }

    /// [`Verifier::verify`], and in the same Redis round trip as the revocation check, increments
    /// the counter `counter(subject)` (expiring after `ttl_secs`) and returns its new value — the
    /// gateway's per-principal rate limit costs no extra round trip this way.
    pub async fn verify_counting(
        &self,
        token: &str,
        counter: Option<(&CounterKey<'_>, u64)>,
    ) -> Result<(Principal, Option<u64>), ApiError> {
        let unauthorized = |e: TokenError| ApiError::unauthorized(e.code(), e.to_string());
        let now = chrono::Utc::now().timestamp();
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let claims = match self.verified.lookup(&digest, now) {
            Some(claims) => claims,
            None => {
                let kid = jwt::kid_of(token).map_err(unauthorized)?;
                let key = self.key(&kid).await?.ok_or_else(|| unauthorized(TokenError::UnknownKey))?;
                let claims = jwt::verify(token, &key, &self.issuer, &self.audience, now, LEEWAY_SECS)
                    .map_err(unauthorized)?;
                self.verified.insert(digest, &claims, now);
                claims
            }
        };
        // Revocation is checked on every use, cached signature or not, so it takes effect at once.
        let mut conn = self.redis.conn();
        let mut pipe = sw_redis::redis::pipe();
        pipe.cmd("EXISTS").arg(revoked_key(&self.redis, &claims.jti));
        if let Some((key_of, ttl)) = counter {
            let key = key_of(&claims.sub);
            pipe.cmd("INCR").arg(&key).cmd("EXPIRE").arg(&key).arg(ttl).ignore();
        }
        let (revoked, count): (bool, Option<u64>) = if counter.is_some() {
            let (r, c): (bool, u64) = pipe.query_async(&mut conn).await.map_err(sw_redis::api_error)?;
            (r, Some(c))
        } else {
            let (r,): (bool,) = pipe.query_async(&mut conn).await.map_err(sw_redis::api_error)?;
            (r, None)
        };
        if revoked {
            return Err(ApiError::unauthorized("token_revoked", "This token has been revoked."));
        }
        let principal = Principal {
            subject: claims.sub,
            client_id: claims.client_id,
            roles: claims.roles,
            jti: claims.jti,
            exp: claims.exp,
        };
        Ok((principal, count))
    }

    async fn key(&self, kid: &str) -> Result<Option<VerifyingKey>, ApiError> {
        {
            let c = self.cache.read().await;
            let fresh = c.fetched.is_some_and(|t| t.elapsed() < MAX_CACHE_AGE);
            if fresh && let Some(k) = c.keys.get(kid) {
                return Ok(Some(*k));
            }
        }
        let _guard = self.refetch.lock().await;
        // Another task may have refetched while we waited.
        let wait = {
            let c = self.cache.read().await;
            if let Some(k) = c.keys.get(kid)
                && c.fetched.is_some_and(|t| t.elapsed() < MAX_CACHE_AGE)
            {
                return Ok(Some(*k));
            }
            c.fetched.map(|t| MIN_REFETCH_INTERVAL.saturating_sub(t.elapsed())).unwrap_or_default()
        };
        // A key rotated just after our last fetch is picked up after a short wait rather than
        // refused; unknown (forged) kids still cost auth at most one JWKS fetch per interval.
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        let jwks = self.source.fetch().await?;
        let keys: HashMap<_, _> = jwks
            .keys
            .iter()
            .filter(|k| k.kty == "OKP" && k.crv == "Ed25519")
            .filter_map(|k| Some((k.kid.clone(), jwt::key_from_x(&k.x)?)))
            .collect();
        let mut c = self.cache.write().await;
        c.keys = keys;
        c.fetched = Some(Instant::now());
        Ok(c.keys.get(kid).copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sw_contracts::auth::{Role, RoleBinding};

    fn claims(exp: i64) -> jwt::Claims {
        jwt::Claims {
            iss: "i".into(),
            sub: "user:a".into(),
            aud: "a".into(),
            exp,
            iat: 0,
            nbf: 0,
            jti: "j".into(),
            client_id: "c".into(),
            roles: vec![RoleBinding::global(Role::Viewer)],
        }
    }

    #[test]
    fn cached_tokens_still_expire() {
        let cache = VerifiedCache::default();
        cache.insert([1; 32], &claims(1000), 900);
        assert!(cache.lookup(&[1; 32], 950).is_some());
        assert!(cache.lookup(&[2; 32], 950).is_none(), "other tokens miss");
        assert!(cache.lookup(&[1; 32], 1000 + LEEWAY_SECS).is_none(), "past exp + leeway");
        cache.insert([3; 32], &claims(10_000), 900);
        assert!(
            cache.lookup(&[3; 32], 900 + VERIFIED_TTL_SECS).is_none(),
            "entries live at most the cache TTL"
        );
    }

    #[test]
    fn the_cache_stays_bounded() {
        let cache = VerifiedCache::default();
        for i in 0..(VERIFIED_CAPACITY + 10) {
            let mut d = [0u8; 32];
            d[..8].copy_from_slice(&(i as u64).to_le_bytes());
            cache.insert(d, &claims(10_000), 0);
        }
        assert!(cache.entries.lock().unwrap().len() <= VERIFIED_CAPACITY);
    }
}
