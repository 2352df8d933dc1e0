//! Secrets: the master key that encrypts org account seeds at rest, and
//! hashing of bearer secrets (tokens are stored and compared as SHA-256).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("master key must be 64 hex characters (32 bytes)")]
    BadMasterKey,
    #[error("could not decrypt a stored secret: wrong master key or corrupt data")]
    Decrypt,
}

#[derive(Clone)]
pub struct MasterKey(Aes256Gcm);

impl MasterKey {
    pub fn from_hex(hex_key: &str) -> Result<Self, CryptoError> {
        let bytes = hex::decode(hex_key.trim()).map_err(|_| CryptoError::BadMasterKey)?;
        Aes256Gcm::new_from_slice(&bytes)
            .map(Self)
            .map_err(|_| CryptoError::BadMasterKey)
    }

    /// `nonce || ciphertext`, bound to `context` (e.g. the org id and purpose)
    /// so a ciphertext cannot be moved to another row.
    pub fn encrypt(&self, plaintext: &[u8], context: &str) -> Vec<u8> {
        let nonce: [u8; 12] = rand::random();
        let mut out = nonce.to_vec();
        // Encryption with a valid key and a fresh nonce does not fail.
        let ct = self
            .0
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: context.as_bytes(),
                },
            )
            .unwrap_or_default();
        out.extend(ct);
        out
    }

    pub fn decrypt(&self, data: &[u8], context: &str) -> Result<Vec<u8>, CryptoError> {
        if data.len() < 12 {
            return Err(CryptoError::Decrypt);
        }
        let (nonce, ct) = data.split_at(12);
        self.0
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Decrypt)
    }
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Compare two secrets without leaking where they differ.
pub fn secrets_equal(a: &str, b: &str) -> bool {
    let (x, y) = (sha256(a.as_bytes()), sha256(b.as_bytes()));
    x.iter()
        .zip(y.iter())
        .fold(0u8, |acc, (p, q)| acc | (p ^ q))
        == 0
}

/// A new random secret with a recognisable prefix (so leaked tokens can be
/// found by secret scanners).
pub fn new_secret(prefix: &str) -> String {
    let bytes: [u8; 24] = rand::random();
    format!("{prefix}{}", hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encryption_is_bound_to_key_and_context() {
        let key = MasterKey::from_hex(&"11".repeat(32)).unwrap();
        let ct = key.encrypt(b"seed", "org:acme");
        assert_eq!(key.decrypt(&ct, "org:acme").unwrap(), b"seed");
        assert!(key.decrypt(&ct, "org:other").is_err());
        let other = MasterKey::from_hex(&"22".repeat(32)).unwrap();
        assert!(other.decrypt(&ct, "org:acme").is_err());
        assert!(MasterKey::from_hex("abcd").is_err());
    }

    #[test]
    fn secret_comparison() {
        assert!(secrets_equal("a", "a"));
        assert!(!secrets_equal("a", "b"));
        assert!(new_secret("x_").starts_with("x_"));
    }
}
