//! sw-crypto: cluster credentials at rest, sealed with AES-256-GCM under a random 96-bit nonce per
//! write and the cluster id as associated data.
//!
//! How credentials move: appmeta checks what a user registers and seals it with
//! [`seal_credentials`] under `appmeta.encryption_key` before the row is written; replies and events
//! never carry it. The k8s-executor asks appmeta for the sealed blob of a cluster and opens it with
//! [`decrypt_credentials`] under the same key, so the plaintext exists only inside the executor.
//!
//! The sealed form is `[format = 1][nonce: 12 bytes][ciphertext + 16-byte tag]`, the plaintext
//! the JSON of [`ClusterCredentials`]. Binding the cluster id as associated data means a sealed
//! blob copied onto another cluster's row does not decrypt. The format byte leaves room for a
//! later key-rotation scheme.

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use sw_contracts::appmeta::ClusterCredentials;

/// The first byte of every sealed blob.
const FORMAT_V1: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// The 32-byte credential key (`appmeta.encryption_key`). Its `Debug` never shows the bytes.
#[derive(Clone)]
pub struct CredentialKey([u8; 32]);

impl CredentialKey {
    /// The key from its 32 raw bytes (as `sw_config::Config::require_appmeta_key` returns them).
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&self.0))
    }
}

impl std::fmt::Debug for CredentialKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CredentialKey(***)")
    }
}

/// Why credentials could not be sealed or opened. Messages never include key or plaintext.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// Not a blob [`seal_credentials`] wrote: unknown format, too short, or not credentials inside.
    #[error("sealed credentials are malformed (unknown format or too short)")]
    Malformed,
    /// Wrong key, altered ciphertext, or sealed for another cluster.
    #[error("sealed credentials failed authentication")]
    Authentication,
    /// The credentials could not be serialised or encrypted.
    #[error("credentials could not be encoded")]
    Encode,
}

/// Seals `credentials` of cluster `cluster_id` under `key` with a fresh random nonce.
pub fn seal_credentials(
    key: &CredentialKey,
    cluster_id: &str,
    credentials: &ClusterCredentials,
) -> Result<Vec<u8>, CryptoError> {
    let plaintext = serde_json::to_vec(credentials).map_err(|_| CryptoError::Encode)?;
    let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
    let ciphertext = key
        .cipher()
        .encrypt(&nonce, Payload { msg: &plaintext, aad: cluster_id.as_bytes() })
        .map_err(|_| CryptoError::Encode)?;
    let mut sealed = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
    sealed.push(FORMAT_V1);
    sealed.extend_from_slice(&nonce);
    sealed.extend_from_slice(&ciphertext);
    Ok(sealed)
}

/// Opens credentials sealed by [`seal_credentials`] for cluster `cluster_id`.
///
/// Fails with [`CryptoError::Authentication`] for a wrong key, a modified blob or a blob sealed
/// for another cluster id.
pub fn decrypt_credentials(
    key: &CredentialKey,
    cluster_id: &str,
    sealed: &[u8],
) -> Result<ClusterCredentials, CryptoError> {
    let (&format, rest) = sealed.split_first().ok_or(CryptoError::Malformed)?;
    if format != FORMAT_V1 || rest.len() < NONCE_LEN + TAG_LEN {
        return Err(CryptoError::Malformed);
    }
    let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
    let plaintext = key
        .cipher()
        .decrypt(Nonce::from_slice(nonce), Payload { msg: ciphertext, aad: cluster_id.as_bytes() })
        .map_err(|_| CryptoError::Authentication)?;
    // Authenticated data that does not parse was sealed by something else than this module.
    serde_json::from_slice(&plaintext).map_err(|_| CryptoError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> CredentialKey {
        CredentialKey::new([b; 32])
    }

    fn token() -> ClusterCredentials {
        ClusterCredentials::Token {
            token: "sa-token-123".into(),
            ca_cert: None,
            insecure_skip_tls_verify: false,
        }
    }

    #[test]
    fn round_trip() {
        let sealed = seal_credentials(&key(1), "prod", &token()).unwrap();
        assert_eq!(decrypt_credentials(&key(1), "prod", &sealed).unwrap(), token());
        let kc =
            ClusterCredentials::Kubeconfig { kubeconfig: "clusters: []\nusers: []\ncontexts: []\n".into() };
        let sealed = seal_credentials(&key(1), "prod", &kc).unwrap();
        assert_eq!(decrypt_credentials(&key(1), "prod", &sealed).unwrap(), kc);
    }

    #[test]
    fn ciphertext_hides_the_plaintext_and_nonces_differ() {
        let a = seal_credentials(&key(1), "prod", &token()).unwrap();
        let b = seal_credentials(&key(1), "prod", &token()).unwrap();
        assert_ne!(a[1..1 + NONCE_LEN], b[1..1 + NONCE_LEN], "a fresh nonce per write");
        assert_ne!(a, b);
        assert!(!a.windows(b"sa-token-123".len()).any(|w| w == b"sa-token-123"));
    }

    #[test]
    fn wrong_key_fails() {
        let sealed = seal_credentials(&key(1), "prod", &token()).unwrap();
        assert!(matches!(decrypt_credentials(&key(2), "prod", &sealed), Err(CryptoError::Authentication)));
    }

    #[test]
    fn tampered_ciphertext_fails() {
        let sealed = seal_credentials(&key(1), "prod", &token()).unwrap();
        for i in [1, 1 + NONCE_LEN, sealed.len() - 1] {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert!(
                matches!(decrypt_credentials(&key(1), "prod", &bad), Err(CryptoError::Authentication)),
                "byte {i}"
            );
        }
        let truncated = &sealed[..sealed.len() - 1];
        assert!(decrypt_credentials(&key(1), "prod", truncated).is_err());
        assert!(matches!(decrypt_credentials(&key(1), "prod", &sealed[..10]), Err(CryptoError::Malformed)));
        assert!(matches!(decrypt_credentials(&key(1), "prod", &[]), Err(CryptoError::Malformed)));
        let mut other_format = sealed.clone();
        other_format[0] = 2;
        assert!(matches!(decrypt_credentials(&key(1), "prod", &other_format), Err(CryptoError::Malformed)));
    }

    #[test]
    fn aad_mismatch_fails() {
        let sealed = seal_credentials(&key(1), "prod", &token()).unwrap();
        assert!(matches!(decrypt_credentials(&key(1), "staging", &sealed), Err(CryptoError::Authentication)));
    }

    #[test]
    fn key_debug_is_redacted() {
        assert_eq!(format!("{:?}", key(7)), "CredentialKey(***)");
    }
}
