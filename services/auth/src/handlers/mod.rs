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

use sw_bus::RpcCall;
use sw_contracts::FieldError;
use sw_contracts::auth::RoleBinding;
use sw_http::ApiError;

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
