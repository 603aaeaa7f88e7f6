//! `jwks` (public) and `keys.*` (admin): the signing keys.

use std::sync::Arc;

use sw_bus::{RpcCall, RpcReply};
use sw_http::ApiError;

use super::admin;
use crate::authz::Op;
use crate::state::State;

/// `GET /.well-known/jwks.json`: no authentication. The active key and the retired keys whose
/// tokens may still be unexpired.
pub async fn jwks(s: Arc<State>, _call: RpcCall) -> Result<RpcReply, ApiError> {
    Ok(RpcReply::ok(s.keys.jwks().await.map_err(sw_db::api_error)?))
}

/// `GET /v1/auth/keys`: every key, newest first (public metadata only).
pub async fn list(s: Arc<State>, call: RpcCall) -> Result<RpcReply, ApiError> {
    admin(&s, &call, Op::KeysList).await?;
    Ok(RpcReply::ok(s.keys.list().await.map_err(sw_db::api_error)?))
}

/// `POST /v1/auth/keys/rotate` → 201 with the new key. New tokens are signed with it at once;
/// tokens of the old key keep verifying until they expire.
pub async fn rotate(s: Arc<State>, call: RpcCall) -> Result<RpcReply, ApiError> {
    admin(&s, &call, Op::KeysRotate).await?;
    let key = s.keys.rotate(&s.outbox, call.meta.traceparent.clone()).await.map_err(sw_db::api_error)?;
    Ok(RpcReply::created(key).header("Location", "/v1/auth/keys"))
}
