//! The OAuth 2.0 endpoints, `token` (RFC 6749) and `revoke` (RFC 7009), and client authentication.
//!
//! Both are unauthenticated at the bearer level: they authenticate the client themselves, either a
//! public client named by `client_id` (the CLI, which cannot keep a secret) or a confidential
//! client with its secret in HTTP Basic (preferred) or the form. Errors carry the RFC 6749 codes.

pub mod revoke;
pub mod token;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sw_bus::CallMeta;
use sw_http::ApiError;

use crate::entity::client;
use crate::handlers::clients;
use crate::secrets;
use crate::state::State;

/// 400 `invalid_request`.
pub fn invalid_request(description: impl Into<String>) -> ApiError {
    ApiError::oauth(400, "invalid_request", description)
}

/// 401 `invalid_client`.
pub fn invalid_client(description: impl Into<String>) -> ApiError {
    ApiError::oauth(401, "invalid_client", description)
}

/// Form fields (sent by the gateway as a JSON object of strings). Empty values count as absent,
/// as RFC 6749 §3.1 asks; unknown fields are ignored, as it also asks.
pub fn parse_form<T: DeserializeOwned>(body: Option<Value>) -> Result<T, ApiError> {
    let Some(Value::Object(mut map)) = body else {
        return Err(invalid_request("Send the parameters as application/x-www-form-urlencoded form fields."));
    };
    map.retain(|_, v| !matches!(v, Value::String(s) if s.is_empty()));
    serde_json::from_value(Value::Object(map)).map_err(|e| invalid_request(e.to_string()))
}

/// Decodes one `application/x-www-form-urlencoded` value (RFC 6749 §2.3.1 encodes the Basic
/// user and password that way before base64).
fn form_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// The `client_id:client_secret` of an `Authorization: Basic` header, if one was sent.
fn basic_credentials(meta: &CallMeta) -> Result<Option<(String, String)>, ApiError> {
    let Some((scheme, rest)) = meta.authorization.as_deref().and_then(|v| v.split_once(' ')) else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let malformed = || invalid_client("The Basic credentials are malformed.");
    let raw = STANDARD.decode(rest.trim()).map_err(|_| malformed())?;
    let text = String::from_utf8(raw).map_err(|_| malformed())?;
    let (id, secret) = text.split_once(':').ok_or_else(malformed)?;
    Ok(Some((form_decode(id).ok_or_else(malformed)?, form_decode(secret).ok_or_else(malformed)?)))
}

/// Authenticates the calling client: a confidential one by its secret (Basic, or form
/// `client_secret`), a public one by its `client_id` alone. Failed secrets count against the
/// caller's IP, and an IP over the limit is refused before the secret is looked at.
pub async fn authenticate_client(
    s: &State,
    meta: &CallMeta,
    form_id: Option<&str>,
    form_secret: Option<&str>,
) -> Result<client::Model, ApiError> {
    let (id, secret) = match basic_credentials(meta)? {
        Some(_) if form_secret.is_some() => {
            return Err(invalid_request(
                "Use one client authentication method, not Basic and client_secret both.",
            ));
        }
        Some((id, _)) if form_id.is_some_and(|f| f != id) => {
            return Err(invalid_request("client_id does not match the Basic credentials."));
        }
        Some((id, secret)) => (id, Some(secret)),
        None => match form_id {
            Some(id) => (id.to_owned(), form_secret.map(str::to_owned)),
            None => {
                return Err(invalid_client(
                    "Client authentication is required: send client_id, or HTTP Basic for confidential clients.",
                ));
            }
        },
    };
    let found = if clients::valid_client_id(&id) { clients::find(s, &id).await? } else { None };
    match secret {
        Some(secret) => {
            let ip_key = s.throttle.ip_key(meta.client_ip.as_deref());
            let ip_keys: Vec<String> = ip_key.into_iter().collect();
            s.throttle.check(&ip_keys).await?;
            let ok = found.as_ref().is_some_and(|c| {
                c.confidential
                    && c.secret_hash.as_deref().is_some_and(|h| secrets::secret_matches(h, &secret))
            });
            match found {
                Some(c) if ok => Ok(c),
                _ => {
                    s.throttle.fail(&ip_keys).await?;
                    Err(invalid_client("Client authentication failed."))
                }
            }
        }
        None => match found {
            Some(c) if !c.confidential => Ok(c),
            Some(_) => {
                Err(invalid_client("This client is confidential and must authenticate with its secret."))
            }
            None => Err(invalid_client("Client authentication failed.")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_values_decode() {
        assert_eq!(form_decode("a%3Ab+c").as_deref(), Some("a:b c"));
        assert_eq!(form_decode("plain-_.~").as_deref(), Some("plain-_.~"));
        assert_eq!(form_decode("bad%2"), None);
        assert_eq!(form_decode("bad%zz"), None);
        assert_eq!(form_decode("%ff"), None, "not UTF-8");
    }

    #[test]
    fn basic_header_parses() {
        let meta = |v: &str| CallMeta { authorization: Some(v.into()), ..Default::default() };
        let enc = STANDARD.encode("ci-bot:s%3Acret");
        assert_eq!(
            basic_credentials(&meta(&format!("Basic {enc}"))).unwrap(),
            Some(("ci-bot".into(), "s:cret".into()))
        );
        assert_eq!(basic_credentials(&meta("Bearer abc")).unwrap(), None);
        assert_eq!(basic_credentials(&CallMeta::default()).unwrap(), None);
        let e = basic_credentials(&meta("Basic !!!")).unwrap_err();
        assert_eq!((e.status(), e.code()), (401, "invalid_client"));
        let nocolon = STANDARD.encode("just-an-id");
        assert_eq!(basic_credentials(&meta(&format!("basic {nocolon}"))).unwrap_err().status(), 401);
    }

    #[test]
    fn forms_drop_empty_values_and_reject_non_strings() {
        let f: sw_contracts::auth::TokenForm =
            parse_form(Some(serde_json::json!({"grant_type": "password", "scope": "", "extra": "ignored"})))
                .unwrap();
        assert_eq!(f.grant_type, "password");
        assert_eq!(f.scope, None);
        let e = parse_form::<sw_contracts::auth::TokenForm>(Some(serde_json::json!({"grant_type": ""})))
            .unwrap_err();
        assert_eq!(e.code(), "invalid_request");
        assert_eq!(parse_form::<sw_contracts::auth::TokenForm>(None).unwrap_err().status(), 400);
        let e = parse_form::<sw_contracts::auth::TokenForm>(Some(serde_json::json!({"grant_type": 1})))
            .unwrap_err();
        assert_eq!(e.code(), "invalid_request");
    }
}
