//! `revoke` — `POST /oauth/revoke` (RFC 7009).
//!
//! An access token is put on the Redis denylist under its `jti` until it would have expired (plus a
//! minute), which every service's `Verifier` consults, so it stops working everywhere at once. A
//! refresh token revokes its whole family. Tokens we do not recognise are answered 200 all the same
//! (RFC 7009 §2.2): the caller's goal, that the token not work, is met.

use std::sync::Arc;

use sw_authz::jwt;
use sw_bus::{RpcCall, RpcReply};
use sw_contracts::auth::RevokeForm;
use sw_http::ApiError;

use super::{authenticate_client, parse_form};
use crate::refresh;
use crate::state::State;

/// Extra lifetime of a denylist entry past the token's `exp` (the verifiers' clock leeway is 30 s).
const DENYLIST_GRACE_SECS: i64 = 60;

/// `POST /oauth/revoke`.
pub async fn revoke(s: Arc<State>, call: RpcCall) -> Result<RpcReply, ApiError> {
    let form: RevokeForm = parse_form(call.envelope.body.clone())?;
    let client =
        authenticate_client(&s, &call.meta, form.client_id.as_deref(), form.client_secret.as_deref()).await?;
    // The hint only says where to look first (RFC 7009 §2.1); the token's shape decides here.
    if form.token.split('.').count() == 3 {
        revoke_access_token(&s, &form.token, &client.client_id).await?;
    } else if form.token.len() <= 256
        && let Some((family, owner)) =
            refresh::family_of(&s.db, &form.token).await.map_err(sw_db::api_error)?
    {
        if owner != client.client_id {
            return Err(wrong_client());
        }
        refresh::revoke_family(&s.db, &family).await.map_err(sw_db::api_error)?;
    }
    Ok(RpcReply::ok(serde_json::json!({})).header("Cache-Control", "no-store"))
}

fn wrong_client() -> ApiError {
    ApiError::oauth(400, "unauthorized_client", "The token was issued to another client.")
}

async fn revoke_access_token(s: &State, token: &str, client_id: &str) -> Result<(), ApiError> {
    let Ok(kid) = jwt::kid_of(token) else { return Ok(()) };
    let Some(key) = s.keys.verifying_key(&kid).await.map_err(sw_db::api_error)? else {
        return Ok(());
    };
    let now = chrono::Utc::now().timestamp();
    // An expired token is refused everywhere already, and one that does not verify is not ours:
    // either way there is nothing to revoke.
    let Ok(claims) = jwt::verify(token, &key, &s.auth.issuer, &s.auth.audience, now, 0) else {
        return Ok(());
    };
    if claims.client_id != client_id {
        return Err(wrong_client());
    }
    let ttl = (claims.exp - now).max(0) + DENYLIST_GRACE_SECS;
    let mut conn = s.redis.conn();
    sw_redis::redis::cmd("SET")
        .arg(sw_authz::revoked_key(&s.redis, &claims.jti))
        .arg(1)
        .arg("EX")
        .arg(ttl)
        .query_async::<()>(&mut conn)
        .await
        .map_err(sw_redis::api_error)?;
    tracing::info!(jti = %claims.jti, sub = %claims.sub, "Access token revoked.");
    Ok(())
}
