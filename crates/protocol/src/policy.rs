//! Policies as nodes receive them: a rulepack revision, content-hashed, with
//! its enforcement mode. The node fetches its bundle over HTTP (signed by
//! its key), checks the hash, caches it and reports `version` in heartbeats.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ids::NodeId;

/// What a node does with a rulepack's verdicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EnforcementMode {
    /// Decide and report, never block.
    Observe,
    /// Decide and act (deny, throttle, isolate).
    Enforce,
}

impl EnforcementMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Observe => "observe",
            Self::Enforce => "enforce",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Observe, Self::Enforce]
            .into_iter()
            .find(|m| m.as_str() == s)
    }
}

/// The version string of a rulepack revision, as nodes report it.
pub fn policy_version(rulepack: &str, revision: i32) -> String {
    format!("{rulepack}@{revision}")
}

/// Hex SHA-256 of a rulepack's content (the exact bytes the node receives).
pub fn content_sha256(content: &str) -> String {
    Sha256::digest(content.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The policy a node must apply: `POST /api/nodes/{id}/policy` answers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PolicyBundle {
    /// `<rulepack>@<revision>`, what the node reports as `policy_version`.
    pub version: String,
    pub rulepack: String,
    pub revision: i32,
    pub mode: EnforcementMode,
    pub frameworks: Vec<String>,
    /// Hex SHA-256 of `content`.
    pub sha256: String,
    /// The rulepack's rules as JSON text, exactly as hashed.
    pub content: String,
    pub assigned_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("policy {version}: content hash {found} does not match the announced {expected}")]
    HashMismatch {
        version: String,
        expected: String,
        found: String,
    },
    #[error("policy {version}: content is not JSON: {message}")]
    NotJson { version: String, message: String },
}

impl PolicyBundle {
    /// Refuse a bundle whose content is not what its hash says.
    pub fn verify(&self) -> Result<(), PolicyError> {
        let found = content_sha256(&self.content);
        if found != self.sha256 {
            return Err(PolicyError::HashMismatch {
                version: self.version.clone(),
                expected: self.sha256.clone(),
                found,
            });
        }
        serde_json::from_str::<serde_json::Value>(&self.content).map_err(|e| {
            PolicyError::NotJson {
                version: self.version.clone(),
                message: e.to_string(),
            }
        })?;
        Ok(())
    }
}

/// `POST /api/nodes/{id}/policy`: proof of possession of the node key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFetchRequest {
    pub timestamp: i64,
    /// Base64url ed25519 signature of [`policy_challenge`] by the node key.
    pub signature: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PolicyFetchResponse {
    /// None: nothing is assigned to this node.
    pub bundle: Option<PolicyBundle>,
}

pub fn policy_challenge(node_id: &NodeId, timestamp: i64) -> String {
    crate::enrollment::signed_request("policy", &[node_id.as_str(), &timestamp.to_string()])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle(content: &str) -> PolicyBundle {
        PolicyBundle {
            version: policy_version("baseline", 2),
            rulepack: "baseline".into(),
            revision: 2,
            mode: EnforcementMode::Enforce,
            frameworks: vec!["cis".into()],
            sha256: content_sha256(content),
            content: content.into(),
            assigned_at: Utc::now(),
        }
    }

    #[test]
    fn verify_accepts_matching_content_and_refuses_tampering() {
        let good = bundle(r#"{"rules":[]}"#);
        assert!(good.verify().is_ok());
        let tampered = PolicyBundle {
            content: r#"{"rules":[1]}"#.into(),
            ..good.clone()
        };
        assert!(matches!(
            tampered.verify(),
            Err(PolicyError::HashMismatch { .. })
        ));
        assert!(matches!(
            bundle("not json").verify(),
            Err(PolicyError::NotJson { .. })
        ));
    }

    #[test]
    fn known_hash() {
        assert_eq!(
            content_sha256(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(policy_version("base", 3), "base@3");
    }
}
