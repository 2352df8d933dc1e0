//! The node's HTTP calls to the controller: enrollment and credential
//! refresh. Shared by the daemon (client) and the controller (server).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ids::{NodeId, OrgId, TenantId};
use crate::validate::{self, ValidationError};

pub const MAX_LABELS: usize = 32;
pub const MAX_CAPABILITIES: usize = 32;

/// `POST /api/nodes/register`
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// The enrollment token's secret.
    #[schemars(length(min = 1, max = 256))]
    pub token: String,
    /// The node's NKey public key (user key, `U...`). Its seed never leaves the node.
    #[schemars(length(min = 1, max = 64))]
    pub public_key: String,
    #[schemars(length(min = 1, max = 253))]
    pub hostname: String,
    /// At most 32: keys of letters, digits, `-`, `_`, `.` and `/` (1-63), values of at most 128.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    #[schemars(length(max = 32))]
    pub capabilities: Vec<String>,
    #[schemars(length(min = 1, max = 64))]
    pub agent_version: String,
    /// The id the node asks for; by default one is derived from hostname and key.
    #[serde(default)]
    pub node_id: Option<NodeId>,
}

impl RegisterRequest {
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate::non_empty_text("token", &self.token, 256)?;
        validate::non_empty_text("public_key", &self.public_key, 64)?;
        validate::non_empty_text("hostname", &self.hostname, 253)?;
        validate::non_empty_text("agent_version", &self.agent_version, 64)?;
        labels(&self.labels)?;
        validate::at_most("capabilities", self.capabilities.len(), MAX_CAPABILITIES)?;
        for c in &self.capabilities {
            validate::non_empty_text("capabilities", c, 64)?;
        }
        Ok(())
    }
}

pub fn labels(labels: &BTreeMap<String, String>) -> Result<(), ValidationError> {
    validate::at_most("labels", labels.len(), MAX_LABELS)?;
    for (k, v) in labels {
        validate::non_empty_text("labels (key)", k, 63)?;
        if !k
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
        {
            return Err(ValidationError::new(
                "labels (key)",
                format!("{k:?} may only contain letters, digits, '-', '_', '.', '/'"),
            ));
        }
        validate::text("labels (value)", v, 128)?;
    }
    Ok(())
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RegisterResponse {
    pub node_id: NodeId,
    pub org_id: OrgId,
    pub tenant_id: TenantId,
    /// User JWT for the bus, scoped to this node's subjects only.
    pub jwt: String,
    pub jwt_expires_at: DateTime<Utc>,
    pub nats_urls: Vec<String>,
    /// The reply-inbox prefix the node's connection must use.
    pub inbox_prefix: String,
    pub heartbeat_secs: u32,
    /// The org's control key (`V...`): the node pins it and acts only on
    /// commands and policies it signed (or a key it endorsed, in rotation).
    #[serde(default)]
    pub control_key: String,
    /// The CA bundle (PEM) of the bus servers, when the controller has one:
    /// the node pins it and verifies the bus against it alone.
    #[serde(default)]
    pub bus_ca_pem: Option<String>,
}

/// `POST /api/nodes/{id}/credentials`: proof of possession of the node key.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CredentialsRequest {
    /// Unix seconds; must be within five minutes of the controller's clock.
    pub timestamp: i64,
    /// Base64url ed25519 signature of [`credentials_challenge`] by the node key.
    pub signature: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct CredentialsResponse {
    pub jwt: String,
    pub jwt_expires_at: DateTime<Utc>,
    pub nats_urls: Vec<String>,
    /// The org's current control key. A node pins it from here only when it
    /// has none pinned (enrolled before control keys existed); otherwise it
    /// moves only along signed rotations.
    #[serde(default)]
    pub control_key: String,
}

/// The first bytes of everything a node signs for the controller. A NATS
/// server's connect nonce is base64url text (see [`is_nats_nonce`]); this
/// prefix holds spaces and a newline, so no signed request can ever be a
/// nonce, and the daemon signs only nonce-shaped text for the bus: a
/// signature over one never serves as the other.
pub const SIGNED_REQUEST_CONTEXT: &str = "ritma node request v1\n";

/// The bytes a node signs for one request: the context, the request kind,
/// then its fields, one per line.
pub fn signed_request(kind: &str, fields: &[&str]) -> String {
    let mut out = String::with_capacity(64);
    out.push_str(SIGNED_REQUEST_CONTEXT);
    out.push_str(kind);
    for f in fields {
        out.push('\n');
        out.push_str(f);
    }
    out
}

/// The length of nats-server's connect nonce: 11 random bytes, base64url
/// without padding (`nonceRawLen`/`nonceLen` in its source).
pub const NATS_NONCE_LEN: usize = 15;

/// True for text shaped like a nats-server connect nonce: exactly
/// [`NATS_NONCE_LEN`] base64url characters. The only thing the daemon signs
/// for the bus.
pub fn is_nats_nonce(nonce: &[u8]) -> bool {
    nonce.len() == NATS_NONCE_LEN
        && nonce
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
}

pub fn credentials_challenge(node_id: &NodeId, timestamp: i64) -> String {
    signed_request("credentials", &[node_id.as_str(), &timestamp.to_string()])
}

/// `POST /api/nodes/{id}/rekey`: move the node to a new key, proven by the old one.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RekeyRequest {
    /// The new NKey user public key; its seed stays on the node.
    pub new_public_key: String,
    pub timestamp: i64,
    /// Base64url signature of [`rekey_challenge`] by the node's current key.
    pub signature: String,
}

pub fn rekey_challenge(node_id: &NodeId, new_public_key: &str, timestamp: i64) -> String {
    signed_request(
        "rekey",
        &[node_id.as_str(), new_public_key, &timestamp.to_string()],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_requests_are_never_nats_nonces() {
        let node = NodeId::new("web-1").unwrap();
        for ts in [0, 1, -1, i64::MAX, i64::MIN, 1_765_000_000] {
            for payload in [
                credentials_challenge(&node, ts),
                rekey_challenge(&node, "UABC", ts),
                crate::policy::policy_challenge(&node, ts),
            ] {
                assert!(payload.starts_with(SIGNED_REQUEST_CONTEXT), "{payload}");
                assert!(!is_nats_nonce(payload.as_bytes()), "{payload}");
            }
        }
        // What nats-server sends: 11 random bytes, base64url, unpadded.
        assert!(is_nats_nonce(b"kZ3oN1_-abcDEF0"));
        for bad in [
            &b"kZ3oN1_-abcDEF"[..],
            b"kZ3oN1_-abcDEF01",
            b"kZ3oN1_-abc:EF0",
            b"kZ3oN1+/abcDEF0",
            b"",
        ] {
            assert!(!is_nats_nonce(bad), "{bad:?}");
        }
    }
}
