//! Compact JWS with EdDSA (Ed25519) — the only algorithm sreworks issues or accepts.
//!
//! Deliberately small: the header must say `alg: EdDSA` and carry a `kid`; anything else is
//! rejected before any signature work, so algorithm-confusion tricks (`none`, HS256 with the
//! public key) have nothing to bite on.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sw_contracts::auth::RoleBinding;

/// Claims of an access token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    /// `user:<username>` or `client:<clientId>`.
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    /// Token id, the key of the revocation denylist.
    pub jti: String,
    pub client_id: String,
    #[serde(default)]
    pub roles: Vec<RoleBinding>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    typ: Option<String>,
}

/// Why a token was refused. Each maps to a 401 with its own stable code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("the token must be signed with EdDSA and name its key")]
    UnsupportedAlgorithm,
    #[error("the token was signed by an unknown key")]
    UnknownKey,
    #[error("the token signature is invalid")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token was issued for another issuer or audience")]
    WrongAudience,
}

impl TokenError {
    /// The problem `code`.
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::Expired => "token_expired",
            _ => "invalid_token",
        }
    }
}

/// Signs `claims` with `key`, naming it `kid`.
pub fn sign(claims: &Claims, kid: &str, key: &SigningKey) -> String {
    let header = Header { alg: "EdDSA".into(), kid: Some(kid.into()), typ: Some("JWT".into()) };
    let h = B64.encode(serde_json::to_vec(&header).unwrap_or_default());
    let c = B64.encode(serde_json::to_vec(claims).unwrap_or_default());
    let signing_input = format!("{h}.{c}");
    let sig = key.sign(signing_input.as_bytes());
    format!("{signing_input}.{}", B64.encode(sig.to_bytes()))
}

/// The `kid` a token claims to be signed with (unverified).
pub fn kid_of(token: &str) -> Result<String, TokenError> {
    let (h, _, _) = split(token)?;
    let header: Header = serde_json::from_slice(&B64.decode(h).map_err(|_| TokenError::Malformed)?)
        .map_err(|_| TokenError::Malformed)?;
    if header.alg != "EdDSA" {
        return Err(TokenError::UnsupportedAlgorithm);
    }
    header.kid.filter(|k| !k.is_empty() && k.len() <= 128).ok_or(TokenError::UnsupportedAlgorithm)
}

fn split(token: &str) -> Result<(&str, &str, &str), TokenError> {
    if token.len() > 16 * 1024 {
        return Err(TokenError::Malformed);
    }
    let mut it = token.split('.');
    match (it.next(), it.next(), it.next(), it.next()) {
        (Some(h), Some(c), Some(s), None) if !h.is_empty() && !c.is_empty() && !s.is_empty() => Ok((h, c, s)),
        _ => Err(TokenError::Malformed),
    }
}

/// Verifies signature, lifetime (with `leeway` seconds), issuer and audience.
pub fn verify(
    token: &str,
    key: &VerifyingKey,
    issuer: &str,
    audience: &str,
    now: i64,
    leeway: i64,
) -> Result<Claims, TokenError> {
    kid_of(token)?;
    let (h, c, s) = split(token)?;
    let sig_bytes: [u8; 64] =
        B64.decode(s).map_err(|_| TokenError::Malformed)?.try_into().map_err(|_| TokenError::Malformed)?;
    let sig = Signature::from_bytes(&sig_bytes);
    key.verify_strict(format!("{h}.{c}").as_bytes(), &sig).map_err(|_| TokenError::BadSignature)?;
    let claims: Claims = serde_json::from_slice(&B64.decode(c).map_err(|_| TokenError::Malformed)?)
        .map_err(|_| TokenError::Malformed)?;
    if claims.exp <= now - leeway {
        return Err(TokenError::Expired);
    }
    if claims.nbf > now + leeway {
        return Err(TokenError::NotYetValid);
    }
    if claims.iss != issuer || claims.aud != audience {
        return Err(TokenError::WrongAudience);
    }
    Ok(claims)
}

/// base64url of the public key, as in a JWK's `x`.
pub fn public_x(key: &VerifyingKey) -> String {
    B64.encode(key.as_bytes())
}

/// Parses a JWK `x` back into a key.
pub fn key_from_x(x: &str) -> Option<VerifyingKey> {
    let raw: [u8; 32] = B64.decode(x).ok()?.try_into().ok()?;
    VerifyingKey::from_bytes(&raw).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sw_contracts::auth::Role;

    fn key() -> SigningKey {
        SigningKey::generate(&mut rand::rngs::OsRng)
    }

    fn claims(now: i64) -> Claims {
        Claims {
            iss: "sreworks".into(),
            sub: "user:admin".into(),
            aud: "sreworks".into(),
            exp: now + 60,
            iat: now,
            nbf: now,
            jti: "j1".into(),
            client_id: "swcli".into(),
            roles: vec![RoleBinding::global(Role::Admin)],
        }
    }

    #[test]
    fn round_trip() {
        let k = key();
        let t = sign(&claims(1000), "k1", &k);
        assert_eq!(kid_of(&t).unwrap(), "k1");
        let c = verify(&t, &k.verifying_key(), "sreworks", "sreworks", 1000, 0).unwrap();
        assert_eq!(c, claims(1000));
    }

    #[test]
    fn rejects_tampering_expiry_and_audience() {
        let k = key();
        let t = sign(&claims(1000), "k1", &k);
        let vk = k.verifying_key();
        assert_eq!(
            verify(&t, &key().verifying_key(), "sreworks", "sreworks", 1000, 0),
            Err(TokenError::BadSignature)
        );
        assert_eq!(verify(&t, &vk, "sreworks", "sreworks", 1060, 0), Err(TokenError::Expired));
        assert_eq!(verify(&t, &vk, "sreworks", "sreworks", 900, 5), Err(TokenError::NotYetValid));
        assert_eq!(verify(&t, &vk, "other", "sreworks", 1000, 0), Err(TokenError::WrongAudience));
        // Swap in other claims but keep the signature.
        let mut c = claims(1000);
        c.roles.clear();
        c.sub = "user:mallory".into();
        let forged = sign(&c, "k1", &key());
        let parts: Vec<_> = t.split('.').collect();
        let fparts: Vec<_> = forged.split('.').collect();
        let mixed = format!("{}.{}.{}", parts[0], fparts[1], parts[2]);
        assert_eq!(verify(&mixed, &vk, "sreworks", "sreworks", 1000, 0), Err(TokenError::BadSignature));
    }

    #[test]
    fn rejects_other_algorithms() {
        let none = format!("{}.{}.x", B64.encode(br#"{"alg":"none","kid":"k1"}"#), B64.encode(b"{}"));
        assert_eq!(kid_of(&none), Err(TokenError::UnsupportedAlgorithm));
        let hs = format!("{}.{}.x", B64.encode(br#"{"alg":"HS256","kid":"k1"}"#), B64.encode(b"{}"));
        assert_eq!(kid_of(&hs), Err(TokenError::UnsupportedAlgorithm));
        let nokid = format!("{}.{}.x", B64.encode(br#"{"alg":"EdDSA"}"#), B64.encode(b"{}"));
        assert_eq!(kid_of(&nokid), Err(TokenError::UnsupportedAlgorithm));
    }

    proptest::proptest! {
        #[test]
        fn garbage_never_verifies(s in "\\PC{0,300}") {
            let k = key();
            proptest::prop_assert!(verify(&s, &k.verifying_key(), "sreworks", "sreworks", 0, 0).is_err());
        }
    }
}
