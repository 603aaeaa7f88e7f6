//! `clients.*`: OAuth client registration (admin only). A secret is shown once, when the client
//! is created or its secret rotated; only its SHA-256 is stored.

use std::sync::Arc;

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, TransactionTrait};
use serde::Deserialize;
use sw_bus::{RpcCall, RpcReply};
use sw_contracts::FieldError;
use sw_contracts::auth::{ClientDeleted, ClientIn, ClientOut, ClientSecretOut, RoleBinding};
use sw_http::ApiError;

use super::{
    CAS_ATTEMPTS, admin, check_fields, insert_with_event, normalize_roles, page_of, param, roles_body,
    roles_from_json, roles_to_json, version_conflict,
};
use crate::authz::Op;
use crate::entity::client;
use crate::refresh;
use crate::secrets;
use crate::state::{State, commit_with_event, event, now};

/// The built-in public client of the CLI; it cannot be deleted.
pub const SWCLI: &str = "swcli";

/// Grant types of a public client.
pub const PUBLIC_GRANTS: [&str; 2] = ["password", "refresh_token"];
/// Grant types of a confidential client.
pub const CONFIDENTIAL_GRANTS: [&str; 3] = ["client_credentials", "password", "refresh_token"];

/// 3–64 characters of ASCII letters, digits, `.`, `_`, `-`.
pub fn valid_client_id(s: &str) -> bool {
    (3..=64).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

const CLIENT_ID_RULE: &str = "3-64 characters of letters, digits, '.', '_' and '-'";

/// The API view of a client row.
pub fn client_out(m: &client::Model) -> Result<ClientOut, ApiError> {
    Ok(ClientOut {
        client_id: m.client_id.clone(),
        name: m.name.clone(),
        confidential: m.confidential,
        grant_types: grant_types(m)?,
        roles: roles_from_json(&m.roles)?,
        created_at: m.created_at,
    })
}

/// The grant types a client may use.
pub fn grant_types(m: &client::Model) -> Result<Vec<String>, ApiError> {
    serde_json::from_str(&m.grant_types).map_err(|e| ApiError::internal(&e))
}

/// Reads a client.
pub async fn find(s: &State, client_id: &str) -> Result<Option<client::Model>, ApiError> {
    client::Entity::find_by_id(client_id.to_owned()).one(&s.db).await.map_err(sw_db::api_error)
}

fn client_id_param(call: &RpcCall) -> Result<&str, ApiError> {
    let id = param(call, "clientId")?;
    if valid_client_id(id) { Ok(id) } else { Err(ApiError::invalid_field("clientId", CLIENT_ID_RULE)) }
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("Client '{id}' does not exist."))
}

/// Query of `GET /v1/clients`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ListQuery {
    page: Option<u64>,
    page_size: Option<u64>,
}

/// `GET /v1/clients`: by client id.
pub async fn list(s: Arc<State>, call: RpcCall) -> Result<RpcReply, ApiError> {
    admin(&s, &call, Op::ClientsList).await?;
    let q: ListQuery = sw_http::parse_query(&call.envelope.query)?;
    let pq = sw_http::page_query(q.page, q.page_size)?;
    let page = page_of(&s, client::Entity::find(), client::Column::ClientId, &pq, client_out).await?;
    Ok(RpcReply::ok(page))
}

/// `POST /v1/clients` → 201 with the secret (confidential clients only), shown this once.
pub async fn create(s: Arc<State>, call: RpcCall) -> Result<RpcReply, ApiError> {
    admin(&s, &call, Op::ClientsCreate).await?;
    let input: ClientIn = sw_http::parse_body(call.envelope.body.clone())?;
    let mut errors = Vec::new();
    if !valid_client_id(&input.client_id) {
        errors.push(FieldError::new("clientId", CLIENT_ID_RULE));
    }
    let name = input.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 128 {
        errors.push(FieldError::new("name", "must be 1-128 characters"));
    }
    let roles = normalize_roles("roles", input.roles, &mut errors);
    check_fields(errors)?;
    let secret = input.confidential.then(secrets::random_token);
    let row = insert_client(&s, &call, &input.client_id, &name, secret.as_deref(), &roles).await?;
    let out = ClientSecretOut { client: client_out(&row)?, client_secret: secret };
    Ok(RpcReply::created(out).header("Location", format!("/v1/clients/{}", row.client_id)))
}

/// Inserts a client and its `auth.client.created` event in one transaction (also used by
/// bootstrap). `secret` makes it confidential.
pub async fn insert_client(
    s: &State,
    call: &RpcCall,
    client_id: &str,
    name: &str,
    secret: Option<&str>,
    roles: &[RoleBinding],
) -> Result<client::Model, ApiError> {
    let at = now();
    let grants: &[&str] = if secret.is_some() { &CONFIDENTIAL_GRANTS } else { &PUBLIC_GRANTS };
    let row = client::Model {
        client_id: client_id.to_owned(),
        name: name.to_owned(),
        confidential: secret.is_some(),
        secret_hash: secret.map(secrets::sha256_hex),
        grant_types: serde_json::to_string(grants).unwrap_or_else(|_| "[]".into()),
        roles: roles_to_json(roles),
        version: 1,
        created_at: at,
        updated_at: at,
    };
    let ev = event(call, "auth.client.created", client_id, client_out(&row)?);
    insert_with_event(s, row.clone().into_active_model(), &ev, || {
        ApiError::conflict("already_exists", format!("Client '{client_id}' already exists."))
    })
    .await?;
    Ok(row)
}

/// `GET /v1/clients/{clientId}` (never the secret).
pub async fn get(s: Arc<State>, call: RpcCall) -> Result<RpcReply, ApiError> {
    admin(&s, &call, Op::ClientsGet).await?;
    let id = client_id_param(&call)?;
    let row = find(&s, id).await?.ok_or_else(|| not_found(id))?;
    Ok(RpcReply::ok(client_out(&row)?))
}

/// `DELETE /v1/clients/{clientId}` → 204; revokes the client's refresh tokens. `swcli` stays.
pub async fn delete(s: Arc<State>, call: RpcCall) -> Result<RpcReply, ApiError> {
    admin(&s, &call, Op::ClientsDelete).await?;
    let id = client_id_param(&call)?;
    if id == SWCLI {
        return Err(ApiError::conflict("builtin_client", "The built-in client 'swcli' cannot be deleted."));
    }
    let txn = s.db.begin().await.map_err(sw_db::api_error)?;
    let res = client::Entity::delete_many()
        .filter(client::Column::ClientId.eq(id))
        .exec(&txn)
        .await
        .map_err(sw_db::api_error)?;
    if res.rows_affected == 0 {
        return Err(not_found(id));
    }
    refresh::revoke_client(&txn, id).await.map_err(sw_db::api_error)?;
    let data = ClientDeleted { client_id: id.to_owned() };
    let ev = event(&call, "auth.client.deleted", id, &data);
    commit_with_event(&s.outbox, txn, &ev).await.map_err(sw_db::api_error)?;
    Ok(RpcReply::no_content())
}

/// `POST /v1/clients/{clientId}/secret`: a new secret, shown this once; the old one stops working.
pub async fn rotate_secret(s: Arc<State>, call: RpcCall) -> Result<RpcReply, ApiError> {
    admin(&s, &call, Op::ClientsRotateSecret).await?;
    let id = client_id_param(&call)?;
    let secret = secrets::random_token();
    let hash = secrets::sha256_hex(&secret);
    let row = change_client(&s, &call, id, |c| {
        if !c.confidential {
            return Err(ApiError::conflict(
                "public_client",
                format!("Client '{id}' is public and has no secret."),
            ));
        }
        c.secret_hash = Some(hash.clone());
        Ok(())
    })
    .await?;
    Ok(RpcReply::ok(ClientSecretOut { client: client_out(&row)?, client_secret: Some(secret) }))
}

/// `PUT /v1/clients/{clientId}/roles`: replaces every binding.
pub async fn roles_set(s: Arc<State>, call: RpcCall) -> Result<RpcReply, ApiError> {
    admin(&s, &call, Op::ClientsRolesSet).await?;
    let id = client_id_param(&call)?;
    let json = roles_body(&call)?;
    let row = change_client(&s, &call, id, |c| {
        c.roles.clone_from(&json);
        Ok(())
    })
    .await?;
    Ok(RpcReply::ok(client_out(&row)?))
}

/// Applies `change` with compare-and-swap on `version`, retrying on conflict, and writes
/// `auth.client.updated` (which never carries the secret or its hash).
async fn change_client(
    s: &State,
    call: &RpcCall,
    id: &str,
    change: impl Fn(&mut client::Model) -> Result<(), ApiError>,
) -> Result<client::Model, ApiError> {
    for _ in 0..CAS_ATTEMPTS {
        let cur = find(s, id).await?.ok_or_else(|| not_found(id))?;
        let mut next = cur.clone();
        change(&mut next)?;
        if next == cur {
            return Ok(cur);
        }
        next.version = cur.version + 1;
        next.updated_at = now();
        let out = client_out(&next)?;
        let txn = s.db.begin().await.map_err(sw_db::api_error)?;
        let res = client::Entity::update_many()
            .col_expr(client::Column::SecretHash, Expr::value(next.secret_hash.clone()))
            .col_expr(client::Column::Roles, Expr::value(next.roles.clone()))
            .col_expr(client::Column::Version, Expr::value(next.version))
            .col_expr(client::Column::UpdatedAt, Expr::value(next.updated_at))
            .filter(client::Column::ClientId.eq(id))
            .filter(client::Column::Version.eq(cur.version))
            .exec(&txn)
            .await
            .map_err(sw_db::api_error)?;
        if res.rows_affected != 1 {
            txn.rollback().await.map_err(sw_db::api_error)?;
            continue;
        }
        let ev = event(call, "auth.client.updated", id, &out);
        commit_with_event(&s.outbox, txn, &ev).await.map_err(sw_db::api_error)?;
        return Ok(next);
    }
    Err(version_conflict(&format!("Client '{id}'")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids() {
        for ok in ["abc", "ci.deploy-bot_1", &"c".repeat(64)] {
            assert!(valid_client_id(ok), "{ok}");
        }
        for bad in ["ab", "a b", "a@b", "ä-x", &"c".repeat(65)] {
            assert!(!valid_client_id(bad), "{bad}");
        }
    }
}
