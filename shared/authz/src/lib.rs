//! Who is calling, and may they do this?
//!
//! Every service verifies the bearer token itself ([`Verifier::verify`]): the JWT must be signed
//! with EdDSA by a key in auth's JWKS (fetched over NATS, cached, refetched on an unknown `kid`),
//! be within its lifetime, name our issuer and audience, and its `jti` must not be on the Redis
//! denylist that `/oauth/revoke` writes. The result is a [`Principal`], whose role bindings are
//! checked against the service's own authorization matrix with [`Principal::require`].

pub mod jwt;
mod principal;
mod verifier;

pub use jwt::{Claims, TokenError};
pub use principal::{Principal, Scope};
pub use verifier::{BusKeySource, KeySource, Verifier, missing_token, revoked_key};
