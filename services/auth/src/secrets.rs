//! Passwords, client secrets and opaque tokens.
//!
//! Passwords are chosen by people, so they are low-entropy and hashed with argon2id (memory-hard,
//! salted) — slow on purpose, hence always on a blocking thread. Client secrets and refresh tokens
//! are 32 random bytes generated here: nobody can guess or brute-force a 256-bit value, so a single
//! SHA-256 is enough to keep a stolen database row from being usable, and lookups stay cheap. They
//! are compared in constant time anyway, so comparison timing never tells how close a guess was.

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use rand::Rng;
use rand::distributions::Alphanumeric;
use sha2::{Digest, Sha256};
use sw_http::ApiError;

/// Hashes a password with argon2id (default parameters) on a blocking thread.
pub async fn hash_password(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || hash_password_blocking(&password))
        .await
        .map_err(|e| ApiError::internal(&e))?
}

/// The blocking part of [`hash_password`].
pub fn hash_password_blocking(password: &str) -> Result<String, ApiError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ApiError::internal(&HashError(e.to_string())))
}

/// Checks `password` against an argon2 PHC string on a blocking thread. A malformed stored hash
/// never matches.
pub async fn verify_password(hash: String, password: String) -> Result<bool, ApiError> {
    tokio::task::spawn_blocking(move || {
        let Ok(parsed) = PasswordHash::new(&hash) else {
            tracing::warn!("A stored password hash is malformed; the login is refused.");
            return false;
        };
        Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok()
    })
    .await
    .map_err(|e| ApiError::internal(&e))
}

#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
struct HashError(String);

/// 32 random bytes, base64url without padding: a client secret or a refresh token.
pub fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    B64.encode(bytes)
}

/// Hex SHA-256 of a high-entropy secret, as stored.
pub fn sha256_hex(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// True when `presented` hashes to `stored_hex`, compared in constant time.
pub fn secret_matches(stored_hex: &str, presented: &str) -> bool {
    let Ok(stored) = hex::decode(stored_hex) else { return false };
    let got = Sha256::digest(presented.as_bytes());
    if stored.len() != got.len() {
        return false;
    }
    // Fold every byte difference; no early exit, so the time does not depend on where they differ.
    let diff = stored.iter().zip(got.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b));
    std::hint::black_box(diff) == 0
}

/// A random password of `len` letters and digits (for the bootstrap `admin`).
pub fn random_password(len: usize) -> String {
    rand::thread_rng().sample_iter(&Alphanumeric).take(len).map(char::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn password_round_trip() {
        let h = hash_password("correct horse battery".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password(h.clone(), "correct horse battery".into()).await.unwrap());
        assert!(!verify_password(h, "wrong horse battery".into()).await.unwrap());
        assert!(!verify_password("not a hash".into(), "x".into()).await.unwrap());
    }

    #[test]
    fn secrets_are_random_and_compare_by_hash() {
        let a = random_token();
        let b = random_token();
        assert_ne!(a, b);
        assert_eq!(B64.decode(&a).unwrap().len(), 32);
        let stored = sha256_hex(&a);
        assert_eq!(stored.len(), 64);
        assert!(secret_matches(&stored, &a));
        assert!(!secret_matches(&stored, &b));
        assert!(!secret_matches("zz", &a));
        assert!(!secret_matches(&stored[..62], &a));
    }

    #[test]
    fn generated_passwords_are_long_and_alphanumeric() {
        let p = random_password(24);
        assert_eq!(p.chars().count(), 24);
        assert!(p.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(p, random_password(24));
    }
}
