//! `me` and `users.*`: who am I, and user management (admin only, except reading yourself).

use std::sync::Arc;

use chrono::TimeZone;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, Condition, EntityTrait, IntoActiveModel, QueryFilter, TransactionTrait};
use serde::Deserialize;
use sw_bus::{RpcCall, RpcReply};
use sw_contracts::FieldError;
use sw_contracts::auth::{RoleBinding, UserDeleted, UserIn, UserOut, UserPatch, WhoAmI};
use sw_http::ApiError;

use super::{
    CAS_ATTEMPTS, admin, check_fields, insert_with_event, like_escape, normalize_roles, page_of, param,
    roles_body, roles_from_json, roles_to_json, version_conflict,
};
use crate::authz::{self, Op};
use crate::entity::user;
use crate::refresh;
use crate::secrets;
use crate::state::{State, commit_with_event, event, now};

/// Longest accepted password (argon2 hashes anything, but a megabyte password is an attack).
pub const MAX_PASSWORD: usize = 1024;
/// Shortest accepted password.
pub const MIN_PASSWORD: usize = 12;

/// 1–64 characters of ASCII letters, digits, `.`, `_`, `-`, `@`.
pub fn valid_username(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'))
}

const USERNAME_RULE: &str = "1-64 characters of letters, digits, '.', '_', '-' and '@'";

fn check_password(field: &str, pw: &str, errors: &mut Vec<FieldError>) {
    let n = pw.chars().count();
    if n < MIN_PASSWORD {
        errors.push(FieldError::new(field, format!("must be at least {MIN_PASSWORD} characters")));
    } else if n > MAX_PASSWORD {
        errors.push(FieldError::new(field, format!("must be at most {MAX_PASSWORD} characters")));
    }
}

/// An empty string clears the field (a patch cannot tell `null` from absent).
fn check_display_name(v: Option<String>, errors: &mut Vec<FieldError>) -> Option<String> {
    let v = v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    if v.as_ref().is_some_and(|s| s.chars().count() > 128) {
        errors.push(FieldError::new("displayName", "must be at most 128 characters"));
    }
    v
}

fn check_email(v: Option<String>, errors: &mut Vec<FieldError>) -> Option<String> {
    let v = v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    if let Some(e) = &v {
        let ok = e.matches('@').count() == 1
            && !e.starts_with('@')
            && !e.ends_with('@')
            && e.chars().count() <= 254
            && !e.contains(char::is_whitespace);
        if !ok {
            errors.push(FieldError::new(
                "email",
                "must be an address with exactly one '@', at most 254 characters",
            ));
        }
    }
    v
}

/// The API view of a user row.
pub fn user_out(m: &user::Model) -> Result<UserOut, ApiError> {
    Ok(UserOut {
        username: m.username.clone(),
        display_name: m.display_name.clone(),
        email: m.email.clone(),
        disabled: m.disabled,
        roles: roles_from_json(&m.roles)?,
        created_at: m.created_at,
        updated_at: m.updated_at,
    })
}

/// Reads a user.
pub async fn find(s: &State, username: &str) -> Result<Option<user::Model>, ApiError> {
    user::Entity::find_by_id(username.to_owned()).one(&s.db).await.map_err(sw_db::api_error)
}

fn username_param(call: &RpcCall) -> Result<&str, ApiError> {
    let u = param(call, "username")?;
    if valid_username(u) { Ok(u) } else { Err(ApiError::invalid_field("username", USERNAME_RULE)) }
}

/// `GET /v1/me`: any valid token, even one without role bindings.
pub async fn me(s: Arc<State>, call: RpcCall) -> Result<RpcReply, ApiError> {
    let p = s.verifier.verify_call(&call.meta).await?;
    let expires_at = chrono::Utc.timestamp_opt(p.exp, 0).single().unwrap_or_default();
    Ok(RpcReply::ok(WhoAmI { subject: p.subject, client_id: p.client_id, roles: p.roles, expires_at }))
}

/// Query of `GET /v1/users`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ListQuery {
    page: Option<u64>,
    page_size: Option<u64>,
    /// Substring of the username, display name or email.
    search: Option<String>,
}

/// `GET /v1/users`: by username.
pub async fn list(s: Arc<State>, call: RpcCall) -> Result<RpcReply, ApiError> {
    admin(&s, &call, Op::UsersList).await?;
    let q: ListQuery = sw_http::parse_query(&call.envelope.query)?;
    let pq = sw_http::page_query(q.page, q.page_size)?;
    let mut select = user::Entity::find();
    if let Some(term) = q.search.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        if term.chars().count() > 128 {
            return Err(ApiError::invalid_field("search", "must be at most 128 characters"));
        }
        let pattern = format!("%{}%", like_escape(term));
        select = select.filter(
            Condition::any()
                .add(user::Column::Username.like(&pattern))
                .add(user::Column::DisplayName.like(&pattern))
                .add(user::Column::Email.like(&pattern)),
        );
    }
    let page = page_of(&s, select, user::Column::Username, &pq, user_out).await?;
    Ok(RpcReply::ok(page))
}

/// `POST /v1/users` → 201.
pub async fn create(s: Arc<State>, call: RpcCall) -> Result<RpcReply, ApiError> {
    admin(&s, &call, Op::UsersCreate).await?;
    let input: UserIn = sw_http::parse_body(call.envelope.body.clone())?;
    let mut errors = Vec::new();
    if !valid_username(&input.username) {
        errors.push(FieldError::new("username", USERNAME_RULE));
    }
    check_password("password", &input.password, &mut errors);
    let display_name = check_display_name(input.display_name, &mut errors);
    let email = check_email(input.email, &mut errors);
    let roles = normalize_roles("roles", input.roles, &mut errors);
    check_fields(errors)?;
    if find(&s, &input.username).await?.is_some() {
        return Err(already_exists(&input.username));
    }
    let hash = secrets::hash_password(input.password).await?;
    let row = insert_user(&s, &call, &input.username, hash, display_name, email, &roles).await?;
    let out = user_out(&row)?;
    Ok(RpcReply::created(out).header("Location", format!("/v1/users/{}", row.username)))
}

fn already_exists(username: &str) -> ApiError {
    ApiError::conflict("already_exists", format!("User '{username}' already exists."))
}

/// Inserts a user and its `auth.user.created` event in one transaction (also used by bootstrap).
pub async fn insert_user(
    s: &State,
    call: &RpcCall,
    username: &str,
    password_hash: String,
    display_name: Option<String>,
    email: Option<String>,
    roles: &[RoleBinding],
) -> Result<user::Model, ApiError> {
    let at = now();
    let row = user::Model {
        username: username.to_owned(),
        password_hash,
        display_name,
        email,
        disabled: false,
        roles: roles_to_json(roles),
        version: 1,
        created_at: at,
        updated_at: at,
    };
    let ev = event(call, "auth.user.created", username, user_out(&row)?);
    insert_with_event(s, row.clone().into_active_model(), &ev, || already_exists(username)).await?;
    Ok(row)
}

/// `GET /v1/users/{username}`: admins, and the user themselves.
pub async fn get(s: Arc<State>, call: RpcCall) -> Result<RpcReply, ApiError> {
    let p = s.verifier.verify_call(&call.meta).await?;
    let username = param(&call, "username")?;
    if !authz::may_get_user(&p, username) {
        return Err(ApiError::forbidden(format!("Your roles do not allow {:?} here.", Op::UsersGet)));
    }
    let username = username_param(&call)?;
    let row = find(&s, username).await?.ok_or_else(|| not_found(username))?;
    Ok(RpcReply::ok(user_out(&row)?))
}

fn not_found(username: &str) -> ApiError {
    ApiError::not_found(format!("User '{username}' does not exist."))
}

/// `PATCH /v1/users/{username}`. A new password or disabling revokes the user's refresh tokens.
pub async fn update(s: Arc<State>, call: RpcCall) -> Result<RpcReply, ApiError> {
    admin(&s, &call, Op::UsersUpdate).await?;
    let username = username_param(&call)?.to_owned();
    let patch: UserPatch = sw_http::parse_body(call.envelope.body.clone())?;
    let mut errors = Vec::new();
    if let Some(pw) = &patch.password {
        check_password("password", pw, &mut errors);
    }
    let display_name =
        patch.display_name.is_some().then(|| check_display_name(patch.display_name, &mut errors));
    let email = patch.email.is_some().then(|| check_email(patch.email, &mut errors));
    check_fields(errors)?;
    let new_hash = match patch.password {
        Some(pw) => Some(secrets::hash_password(pw).await?),
        None => None,
    };
    let row = change_user(&s, &call, &username, |u| {
        if let Some(d) = &display_name {
            u.display_name.clone_from(d);
        }
        if let Some(e) = &email {
            u.email.clone_from(e);
        }
        let mut revoke = false;
        if let Some(h) = &new_hash {
            u.password_hash.clone_from(h);
            revoke = true;
        }
        if let Some(d) = patch.disabled {
            revoke |= d && !u.disabled;
            u.disabled = d;
        }
        revoke
    })
    .await?;
    Ok(RpcReply::ok(user_out(&row)?))
}

/// `PUT /v1/users/{username}/roles`: replaces every binding.
pub async fn roles_set(s: Arc<State>, call: RpcCall) -> Result<RpcReply, ApiError> {
    admin(&s, &call, Op::UsersRolesSet).await?;
    let username = username_param(&call)?.to_owned();
    let json = roles_body(&call)?;
    let row = change_user(&s, &call, &username, |u| {
        u.roles.clone_from(&json);
        false
    })
    .await?;
    Ok(RpcReply::ok(user_out(&row)?))
}

/// Applies `change` with compare-and-swap on `version`, retrying on conflict. `change` returns
/// whether the user's refresh tokens must be revoked. An unchanged row is returned as is, with no
/// event.
async fn change_user(
    s: &State,
    call: &RpcCall,
    username: &str,
    change: impl Fn(&mut user::Model) -> bool,
) -> Result<user::Model, ApiError> {
    for _ in 0..CAS_ATTEMPTS {
        let cur = find(s, username).await?.ok_or_else(|| not_found(username))?;
        let mut next = cur.clone();
        let revoke = change(&mut next);
        if next == cur {
            return Ok(cur);
        }
        next.version = cur.version + 1;
        next.updated_at = now();
        let out = user_out(&next)?;
        let txn = s.db.begin().await.map_err(sw_db::api_error)?;
        let res = user::Entity::update_many()
            .col_expr(user::Column::PasswordHash, Expr::value(next.password_hash.clone()))
            .col_expr(user::Column::DisplayName, Expr::value(next.display_name.clone()))
            .col_expr(user::Column::Email, Expr::value(next.email.clone()))
            .col_expr(user::Column::Disabled, Expr::value(next.disabled))
            .col_expr(user::Column::Roles, Expr::value(next.roles.clone()))
            .col_expr(user::Column::Version, Expr::value(next.version))
            .col_expr(user::Column::UpdatedAt, Expr::value(next.updated_at))
            .filter(user::Column::Username.eq(username))
            .filter(user::Column::Version.eq(cur.version))
            .exec(&txn)
            .await
            .map_err(sw_db::api_error)?;
        if res.rows_affected != 1 {
            txn.rollback().await.map_err(sw_db::api_error)?;
            continue;
        }
        if revoke {
            refresh::revoke_user(&txn, username).await.map_err(sw_db::api_error)?;
        }
        let ev = event(call, "auth.user.updated", username, &out);
        commit_with_event(&s.outbox, txn, &ev).await.map_err(sw_db::api_error)?;
        return Ok(next);
    }
    Err(version_conflict(&format!("User '{username}'")))
}

/// `DELETE /v1/users/{username}` → 204. Revokes the user's refresh tokens; you cannot delete yourself.
pub async fn delete(s: Arc<State>, call: RpcCall) -> Result<RpcReply, ApiError> {
    let p = admin(&s, &call, Op::UsersDelete).await?;
    let username = username_param(&call)?;
    if p.username() == Some(username) {
        return Err(ApiError::conflict(
            "cannot_delete_self",
            "You cannot delete the user you are logged in as.",
        ));
    }
    let txn = s.db.begin().await.map_err(sw_db::api_error)?;
    let res = user::Entity::delete_many()
        .filter(user::Column::Username.eq(username))
        .exec(&txn)
        .await
        .map_err(sw_db::api_error)?;
    if res.rows_affected == 0 {
        return Err(not_found(username));
    }
    refresh::revoke_user(&txn, username).await.map_err(sw_db::api_error)?;
    let data = UserDeleted { username: username.to_owned() };
    let ev = event(&call, "auth.user.deleted", username, &data);
    commit_with_event(&s.outbox, txn, &ev).await.map_err(sw_db::api_error)?;
    Ok(RpcReply::no_content())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        for ok in ["a", "admin", "jane.doe@example.com", "x_y-z", &"u".repeat(64)] {
            assert!(valid_username(ok), "{ok}");
        }
        for bad in ["", "a b", "ä", "a/b", "a:b", &"u".repeat(65)] {
            assert!(!valid_username(bad), "{bad}");
        }
    }

    #[test]
    fn field_checks_collect_every_error() {
        let mut errors = Vec::new();
        check_password("password", "short", &mut errors);
        check_password("password", &"p".repeat(1025), &mut errors);
        check_password("password", &"p".repeat(12), &mut errors);
        assert_eq!(check_display_name(Some("  ".into()), &mut errors), None);
        check_display_name(Some("d".repeat(129)), &mut errors);
        assert_eq!(check_email(Some("a@b".into()), &mut errors).as_deref(), Some("a@b"));
        for bad in ["ab", "a@b@c", "@b", "a@", "a @b"] {
            check_email(Some(bad.into()), &mut errors);
        }
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["password", "password", "displayName", "email", "email", "email", "email", "email"]
        );
    }
}
