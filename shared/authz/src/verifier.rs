//! Token verification with a cached JWKS and the Redis revocation denylist.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ed25519_dalek::VerifyingKey;
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

/// The denylist key of a token id.
pub fn revoked_key(redis: &Redis, jti: &str) -> String {
    redis.key("auth", "revoked", jti)
}

struct Cache {
    keys: HashMap<String, VerifyingKey>,
    fetched: Option<Instant>,
}

/// Verifies bearer tokens. One per process, shared by every service in it.
#[derive(Clone)]
pub struct Verifier {
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
            refetch: Arc::new(Mutex::new(())),
        }
    }

    /// Verifies the bearer token of a call.
    pub async fn verify_call(&self, meta: &CallMeta) -> Result<Principal, ApiError> {
        match meta.bearer() {
            Some(t) => self.verify(t).await,
            None => Err(ApiError::unauthorized(
                "missing_token",
                "Send an access token as 'Authorization: Bearer <token>'.",
            )),
        }
    }

    /// Verifies a token: signature, lifetime, issuer, audience, and not revoked.
    pub async fn verify(&self, token: &str) -> Result<Principal, ApiError> {
        let unauthorized = |e: TokenError| ApiError::unauthorized(e.code(), e.to_string());
        let kid = jwt::kid_of(token).map_err(unauthorized)?;
        let key = self.key(&kid).await?.ok_or_else(|| unauthorized(TokenError::UnknownKey))?;
        let now = chrono::Utc::now().timestamp();
        let claims =
            jwt::verify(token, &key, &self.issuer, &self.audience, now, LEEWAY_SECS).map_err(unauthorized)?;
        let mut conn = self.redis.conn();
        let revoked: bool = sw_redis::redis::cmd("EXISTS")
            .arg(revoked_key(&self.redis, &claims.jti))
            .query_async(&mut conn)
            .await
            .map_err(sw_redis::api_error)?;
        if revoked {
            return Err(ApiError::unauthorized("token_revoked", "This token has been revoked."));
        }
        Ok(Principal {
            subject: claims.sub,
            client_id: claims.client_id,
            roles: claims.roles,
            jti: claims.jti,
            exp: claims.exp,
        })
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
