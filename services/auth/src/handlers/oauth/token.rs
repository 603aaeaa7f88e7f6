//! `token` — `POST /oauth/token` with the `password`, `client_credentials` and `refresh_token`
//! grants. Access tokens are EdDSA JWTs signed with the active key; refresh tokens are opaque and
//! rotate on every use (see `refresh.rs`).

use std::sync::Arc;

use sea_orm::TransactionTrait;
use sw_authz::{Claims, jwt};
use sw_bus::{RpcCall, RpcReply};
use sw_contracts::auth::{RoleBinding, TokenForm, TokenOut};
use sw_http::ApiError;

use super::{authenticate_client, invalid_request, parse_form};
use crate::entity::client;
use crate::handlers::{clients, roles_from_json, users};
use crate::refresh;
use crate::secrets;
use crate::state::State;

fn invalid_grant(description: impl Into<String>) -> ApiError {
    ApiError::oauth(400, "invalid_grant", description)
}

fn unauthorized_client(grant: &str) -> ApiError {
    ApiError::oauth(400, "unauthorized_client", format!("This client may not use the '{grant}' grant."))
}

/// The one answer to every failed password login, whether the user exists or not.
const BAD_LOGIN: &str = "The username or password is incorrect.";

/// `POST /oauth/token`.
pub async fn token(s: Arc<State>, call: RpcCall) -> Result<RpcReply, ApiError> {
    let form: TokenForm = parse_form(call.envelope.body.clone())?;
    let out = match form.grant_type.as_str() {
        "password" => password(&s, &call, &form).await?,
        "client_credentials" => client_credentials(&s, &call, &form).await?,
        "refresh_token" => refresh_token(&s, &call, &form).await?,
        other => {
            return Err(ApiError::oauth(
                400,
                "unsupported_grant_type",
                format!("Grant type '{}' is not supported.", other.chars().take(64).collect::<String>()),
            ));
        }
    };
    // RFC 6749 §5.1: token answers must not be cached.
    Ok(RpcReply::ok(out).header("Cache-Control", "no-store").header("Pragma", "no-cache"))
}

fn may_use(c: &client::Model, grant: &str) -> Result<(), ApiError> {
    if clients::grant_types(c)?.iter().any(|g| g == grant) { Ok(()) } else { Err(unauthorized_client(grant)) }
}

/// RFC 6749 §4.3.
async fn password(s: &State, call: &RpcCall, form: &TokenForm) -> Result<TokenOut, ApiError> {
    let (Some(username), Some(password)) = (form.username.as_deref(), form.password.as_deref()) else {
        return Err(invalid_request("The password grant needs username and password."));
    };
    let user_key = s.throttle.user_key(username);
    let ip_key = s.throttle.ip_key(call.meta.client_ip.as_deref());
    let keys: Vec<String> = std::iter::once(user_key.clone()).chain(ip_key).collect();
    // Over the limit: refuse before the password is looked at, so guessing gains nothing.
    s.throttle.check(&keys).await?;
    let client =
        authenticate_client(s, &call.meta, form.client_id.as_deref(), form.client_secret.as_deref()).await?;
    may_use(&client, "password")?;

    let user = if users::valid_username(username) { users::find(s, username).await? } else { None };
    // Unknown users are checked against a dummy hash so they take as long as real ones.
    let hash = user.as_ref().map_or_else(|| s.dummy_hash.clone(), |u| u.password_hash.clone());
    let matches = secrets::verify_password(hash, password.to_owned()).await?;
    let Some(user) = user.filter(|_| matches) else {
        s.throttle.fail(&keys).await?;
        return Err(invalid_grant(BAD_LOGIN));
    };
    if user.disabled {
        return Err(invalid_grant(BAD_LOGIN));
    }
    s.throttle.clear(&user_key).await?;

    let roles = roles_from_json(&user.roles)?;
    let access = access_token(s, &format!("user:{}", user.username), &client.client_id, roles).await?;
    let txn = s.db.begin().await.map_err(sw_db::api_error)?;
    let refresh = refresh::start_family(&txn, &user.username, &client.client_id, s.refresh_ttl())
        .await
        .map_err(sw_db::api_error)?;
    txn.commit().await.map_err(sw_db::api_error)?;
    Ok(token_out(s, access, Some(refresh)))
}

/// RFC 6749 §4.4: confidential clients act as themselves, with their own role bindings.
async fn client_credentials(s: &State, call: &RpcCall, form: &TokenForm) -> Result<TokenOut, ApiError> {
    let client =
        authenticate_client(s, &call.meta, form.client_id.as_deref(), form.client_secret.as_deref()).await?;
    if !client.confidential {
        return Err(unauthorized_client("client_credentials"));
    }
    may_use(&client, "client_credentials")?;
    let roles = roles_from_json(&client.roles)?;
    let access = access_token(s, &format!("client:{}", client.client_id), &client.client_id, roles).await?;
    Ok(token_out(s, access, None))
}

/// RFC 6749 §6, with rotation and reuse detection.
async fn refresh_token(s: &State, call: &RpcCall, form: &TokenForm) -> Result<TokenOut, ApiError> {
    let Some(presented) = form.refresh_token.as_deref() else {
        return Err(invalid_request("The refresh_token grant needs refresh_token."));
    };
    let client =
        authenticate_client(s, &call.meta, form.client_id.as_deref(), form.client_secret.as_deref()).await?;
    may_use(&client, "refresh_token")?;
    if presented.len() > 256 {
        return Err(invalid_grant(refresh::Refused::Unknown.describe()));
    }
    // Fetch the signing key first, so a failure here does not burn the presented token.
    s.keys.active().await.map_err(sw_db::api_error)?;
    let rotated = refresh::rotate(&s.db, presented, &client.client_id, s.refresh_ttl())
        .await
        .map_err(sw_db::api_error)?
        .map_err(|r| invalid_grant(r.describe()))?;
    // Roles come from the user's current bindings, so a role change reaches the next access token.
    let user = users::find(s, &rotated.username).await?.filter(|u| !u.disabled);
    let Some(user) = user else {
        return Err(invalid_grant(refresh::Refused::Revoked.describe()));
    };
    let roles = roles_from_json(&user.roles)?;
    let access = access_token(s, &format!("user:{}", user.username), &client.client_id, roles).await?;
    Ok(token_out(s, access, Some(rotated.token)))
}

fn token_out(s: &State, access_token: String, refresh_token: Option<String>) -> TokenOut {
    TokenOut {
        access_token,
        token_type: "Bearer".into(),
        expires_in: s.auth.access_token_ttl_secs,
        refresh_token,
        scope: None,
    }
}

/// Signs an access token for `sub` with the active key.
async fn access_token(
    s: &State,
    sub: &str,
    client_id: &str,
    roles: Vec<RoleBinding>,
) -> Result<String, ApiError> {
    let key = s.keys.active().await.map_err(sw_db::api_error)?;
    let now = chrono::Utc::now().timestamp();
    let claims = Claims {
        iss: s.auth.issuer.clone(),
        sub: sub.to_owned(),
        aud: s.auth.audience.clone(),
        exp: now + s.access_ttl(),
        iat: now,
        nbf: now,
        jti: uuid::Uuid::new_v4().to_string(),
        client_id: client_id.to_owned(),
        roles,
    };
    Ok(jwt::sign(&claims, &key.kid, &key.key))
}
