//! Request handlers, one module per resource, and the helpers they share.
//!
//! Each handler takes the shared [`crate::state::State`] and the [`RpcCall`], verifies the caller
//! (except the unauthenticated OAuth endpoints and the JWKS), checks the authorization matrix,
//! parses params, query and body, does the work and answers an [`sw_bus::RpcReply`] or an
//! [`ApiError`].

pub mod clients;
pub mod keys;
pub mod oauth;
pub mod users;

use sea_orm::{
    ActiveModelTrait, EntityTrait, IntoActiveModel, PaginatorTrait, QueryOrder, QuerySelect, Select,
    TransactionTrait,
};
use sw_authz::{Principal, Scope};
use sw_bus::{CloudEvent, RpcCall};
use sw_contracts::auth::RoleBinding;
use sw_contracts::{FieldError, Page, PageQuery};
use sw_http::ApiError;

use crate::authz::{self, Op};
use crate::state::{State, commit_with_event};

/// Most role bindings one user or client may carry (they travel in every access token).
pub const MAX_BINDINGS: usize = 64;

/// A path parameter the gateway must have sent.
pub fn param<'a>(call: &'a RpcCall, name: &str) -> Result<&'a str, ApiError> {
    call.envelope
        .params
        .get(name)
        .map(String::as_str)
        .ok_or_else(|| ApiError::invalid_field(name, "is required"))
}

/// Verifies the caller and requires `op` globally (the admin-only operations).
pub async fn admin(s: &State, call: &RpcCall, op: Op) -> Result<Principal, ApiError> {
    let p = s.verifier.verify_call(&call.meta).await?;
    p.require(authz::allowed, op, Scope::Global)?;
    Ok(p)
}

/// 422 listing every field error collected while checking a request, if there is any.
pub fn check_fields(errors: Vec<FieldError>) -> Result<(), ApiError> {
    if errors.is_empty() { Ok(()) } else { Err(ApiError::validation(errors)) }
}

/// The body of `PUT …/roles` (every binding, replacing the old ones), checked and as stored.
pub fn roles_body(call: &RpcCall) -> Result<String, ApiError> {
    let roles: Vec<RoleBinding> = sw_http::parse_body(call.envelope.body.clone())?;
    let mut errors = Vec::new();
    let roles = normalize_roles("roles", roles, &mut errors);
    check_fields(errors)?;
    Ok(roles_to_json(&roles))
}

/// The page `pq` of `select` ordered by `order`, each row shown through `out`, and the total.
pub async fn page_of<E: EntityTrait, T>(
    s: &State,
    select: Select<E>,
    order: E::Column,
    pq: &PageQuery,
    out: impl Fn(&E::Model) -> Result<T, ApiError>,
) -> Result<Page<T>, ApiError>
where
    E::Model: Sync,
{
    let total = select.clone().count(&s.db).await.map_err(sw_db::api_error)?;
    let rows = select
        .order_by_asc(order)
        .offset(pq.offset())
        .limit(pq.page_size())
        .all(&s.db)
        .await
        .map_err(sw_db::api_error)?;
    let items = rows.iter().map(out).collect::<Result<Vec<_>, _>>()?;
    Ok(Page::new(items, pq, total))
}

/// Inserts `row` (a whole row as an active model) and its event `ev` in one transaction. A row
/// with the same primary key answers `exists()` (409) rather than a server fault.
pub async fn insert_with_event<A>(
    s: &State,
    row: A,
    ev: &CloudEvent,
    exists: impl FnOnce() -> ApiError,
) -> Result<(), ApiError>
where
    A: ActiveModelTrait + Send,
    <A::Entity as EntityTrait>::Model: IntoActiveModel<A>,
{
    let txn = s.db.begin().await.map_err(sw_db::api_error)?;
    if let Err(e) = A::Entity::insert(row).exec_without_returning(&txn).await {
        return Err(if sw_db::is_duplicate(&e) { exists() } else { sw_db::api_error(e) });
    }
    commit_with_event(&s.outbox, txn, ev).await.map_err(sw_db::api_error)
}

/// Attempts at a compare-and-swap on a row's `version` before giving up with [`version_conflict`].
pub const CAS_ATTEMPTS: usize = 3;

/// 409 `version_conflict`: `what` (e.g. "User 'jane'") kept changing under every attempt.
pub fn version_conflict(what: &str) -> ApiError {
    ApiError::conflict("version_conflict", format!("{what} changed concurrently; retry."))
}

/// Role bindings as stored.
pub fn roles_to_json(roles: &[RoleBinding]) -> String {
    serde_json::to_string(roles).unwrap_or_else(|_| "[]".into())
}

/// Role bindings from a stored row. A row we cannot read is a server fault, not the caller's.
pub fn roles_from_json(s: &str) -> Result<Vec<RoleBinding>, ApiError> {
    serde_json::from_str(s).map_err(|e| ApiError::internal(&e))
}

/// Drops duplicate bindings (keeping the first) and reports too many of them under `field`.
pub fn normalize_roles(
    field: &str,
    roles: Vec<RoleBinding>,
    errors: &mut Vec<FieldError>,
) -> Vec<RoleBinding> {
    let mut out: Vec<RoleBinding> = Vec::with_capacity(roles.len());
    for r in roles {
        if !out.contains(&r) {
            out.push(r);
        }
    }
    if out.len() > MAX_BINDINGS {
        errors.push(FieldError::new(field, format!("at most {MAX_BINDINGS} role bindings")));
    }
    out
}

/// Escapes `%`, `_` and `\` for a `LIKE` pattern.
pub fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use sw_contracts::auth::Role;

    #[test]
    fn roles_are_deduplicated_and_bounded() {
        let mut errors = Vec::new();
        let r = normalize_roles(
            "roles",
            vec![
                RoleBinding::global(Role::Admin),
                RoleBinding::global(Role::Viewer),
                RoleBinding::global(Role::Admin),
            ],
            &mut errors,
        );
        assert_eq!(r, vec![RoleBinding::global(Role::Admin), RoleBinding::global(Role::Viewer)]);
        assert!(errors.is_empty());
        let many = (0..65)
            .map(|i| RoleBinding {
                role: Role::Viewer,
                team: None,
                app: Some(sw_contracts::AppId::parse(&format!("a{i}")).unwrap()),
            })
            .collect();
        normalize_roles("roles", many, &mut errors);
        assert_eq!(errors[0].field, "roles");
    }

    #[test]
    fn like_patterns_are_escaped() {
        assert_eq!(like_escape(r"a%b_c\d"), r"a\%b\_c\\d");
    }
}
