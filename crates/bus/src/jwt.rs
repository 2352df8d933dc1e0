//! Encoding, signing and verifying NATS v2 JWTs.
//!
//! Shape (as nats-server expects): header `{"typ":"JWT","alg":"ed25519-nkey"}`,
//! claims JSON with `jti`, `iat`, `iss`, `sub`, optional `exp`, `name` and the
//! type-specific `nats` object; the signature is ed25519 by the issuer's nkey
//! over `header.claims`, all three parts base64url without padding.

use data_encoding::{BASE32_NOPAD, BASE64URL_NOPAD};
use nkeys::KeyPair;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::BusError;

const HEADER: &str = r#"{"typ":"JWT","alg":"ed25519-nkey"}"#;

/// Standard claims around a type-specific `nats` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    #[serde(default)]
    pub jti: String,
    pub iat: i64,
    pub iss: String,
    pub sub: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub nats: Value,
}

impl Claims {
    pub fn new(issuer: &KeyPair, subject: &str, name: &str, nats: Value) -> Self {
        Self {
            jti: String::new(),
            iat: chrono::Utc::now().timestamp(),
            iss: issuer.public_key(),
            sub: subject.to_owned(),
            exp: None,
            name: Some(name.to_owned()),
            nats,
        }
    }

    pub fn expires_at(mut self, unix_secs: i64) -> Self {
        self.exp = Some(unix_secs);
        self
    }
}

/// Sign `claims` with `issuer`. The `jti` is a hash of the claims, so two
/// otherwise identical JWTs share it (as the Go library does).
pub fn encode(mut claims: Claims, issuer: &KeyPair) -> Result<String, BusError> {
    claims.iss = issuer.public_key();
    claims.jti = String::new();
    let unsigned =
        serde_json::to_vec(&claims).map_err(|e| BusError::MalformedJwt(e.to_string()))?;
    claims.jti = BASE32_NOPAD.encode(&Sha256::digest(&unsigned));
    let body = serde_json::to_vec(&claims).map_err(|e| BusError::MalformedJwt(e.to_string()))?;
    let signing_input = format!(
        "{}.{}",
        BASE64URL_NOPAD.encode(HEADER.as_bytes()),
        BASE64URL_NOPAD.encode(&body)
    );
    let signature = issuer
        .sign(signing_input.as_bytes())
        .map_err(BusError::key)?;
    Ok(format!(
        "{signing_input}.{}",
        BASE64URL_NOPAD.encode(&signature)
    ))
}

/// Decode and verify a JWT's signature against its own `iss`. The caller
/// decides whether that issuer is one it trusts.
pub fn decode_verified(token: &str) -> Result<Claims, BusError> {
    let mut parts = token.trim().split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(BusError::MalformedJwt(
            "expected three dot-separated parts".into(),
        ));
    };
    let bad = |e: data_encoding::DecodeError| BusError::MalformedJwt(e.to_string());
    let body = BASE64URL_NOPAD.decode(c.as_bytes()).map_err(bad)?;
    let signature = BASE64URL_NOPAD.decode(s.as_bytes()).map_err(bad)?;
    let claims: Claims =
        serde_json::from_slice(&body).map_err(|e| BusError::MalformedJwt(e.to_string()))?;
    let issuer = KeyPair::from_public_key(&claims.iss).map_err(BusError::key)?;
    issuer
        .verify(format!("{h}.{c}").as_bytes(), &signature)
        .map_err(|_| BusError::BadSignature)?;
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_tokens_verify_and_tampering_is_caught() {
        let op = KeyPair::new_operator();
        let token = encode(
            Claims::new(
                &op,
                &op.public_key(),
                "op",
                serde_json::json!({"type": "operator", "version": 2}),
            ),
            &op,
        )
        .unwrap();
        let claims = decode_verified(&token).unwrap();
        assert_eq!(claims.iss, op.public_key());
        assert!(!claims.jti.is_empty());

        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let forged =
            serde_json::json!({"jti":"x","iat":1,"iss":op.public_key(),"sub":"evil","nats":{}});
        parts[1] = BASE64URL_NOPAD.encode(forged.to_string().as_bytes());
        assert!(matches!(
            decode_verified(&parts.join(".")),
            Err(BusError::BadSignature)
        ));
        assert!(decode_verified("a.b").is_err());
    }
}
