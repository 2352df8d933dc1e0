//! Policies as nodes receive them: a rulepack revision, content-hashed, with
//! its enforcement mode. The node fetches its bundle over HTTP (the request
//! signed by its key), checks the hash and both control-key signatures (the
//! revision's, made when it was created, and the assignment's, naming this
//! node), caches it and reports `version` in heartbeats.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ids::{NodeId, OrgId};
use crate::trust::{self, KeyRotation, TrustError};

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
    /// The node this bundle was served to.
    #[serde(default)]
    pub node_id: Option<NodeId>,
    /// The control key that signed the revision when it was created, and its
    /// signature over [`trust::rulepack_statement`].
    #[serde(default)]
    pub rulepack_signed_by: String,
    #[serde(default)]
    pub rulepack_signature: String,
    /// The control key that signed this assignment when it was served, and
    /// its signature over [`trust::assignment_statement`].
    #[serde(default)]
    pub signed_by: String,
    #[serde(default)]
    pub assignment_signature: String,
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
    #[error("policy {version}: the version does not name rulepack {rulepack} revision {revision}")]
    VersionMismatch {
        version: String,
        rulepack: String,
        revision: i32,
    },
    #[error("policy {version}: the {what} is not signed")]
    Unsigned { version: String, what: &'static str },
    #[error("policy {version}: the {what} signature is refused: {source}")]
    Signature {
        version: String,
        what: &'static str,
        source: TrustError,
    },
    #[error("policy {version}: served to node {served_to}, not to this node ({this})")]
    OtherNode {
        version: String,
        served_to: String,
        this: String,
    },
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

    /// [`Self::verify`], and: the revision is signed by the `pinned` control
    /// key (so content or hash edited after its creation is refused), and so
    /// is an assignment of this version, mode and hash to this very node.
    pub fn verify_signed(
        &self,
        org: &OrgId,
        node: &NodeId,
        pinned: &str,
    ) -> Result<(), PolicyError> {
        self.verify()?;
        let version = || self.version.clone();
        if self.version != policy_version(&self.rulepack, self.revision) {
            return Err(PolicyError::VersionMismatch {
                version: version(),
                rulepack: self.rulepack.clone(),
                revision: self.revision,
            });
        }
        let check = |what: &'static str, signer: &str, statement: String, signature: &str| {
            if signer.is_empty() || signature.is_empty() {
                return Err(PolicyError::Unsigned {
                    version: version(),
                    what,
                });
            }
            trust::verify(pinned, signer, &statement, signature).map_err(|source| {
                PolicyError::Signature {
                    version: version(),
                    what,
                    source,
                }
            })
        };
        check(
            "rulepack revision",
            &self.rulepack_signed_by,
            trust::rulepack_statement(
                org.as_str(),
                &self.rulepack,
                self.revision,
                &self.sha256,
                &self.frameworks,
            ),
            &self.rulepack_signature,
        )?;
        let served_to = self.node_id.as_ref().map(NodeId::as_str).unwrap_or("");
        if served_to != node.as_str() {
            return Err(PolicyError::OtherNode {
                version: version(),
                served_to: served_to.to_owned(),
                this: node.to_string(),
            });
        }
        check(
            "assignment",
            &self.signed_by,
            trust::assignment_statement(
                org,
                node,
                &self.version,
                &self.sha256,
                self.mode.as_str(),
                self.assigned_at.timestamp(),
            ),
            &self.assignment_signature,
        )
    }
}

/// `POST /api/nodes/{id}/policy`: proof of possession of the node key.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyFetchRequest {
    pub timestamp: i64,
    /// Base64url ed25519 signature of [`policy_challenge`] by the node key.
    pub signature: String,
}

/// `POST /api/nodes/{id}/policy`: the node's policy and what it needs to verify it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct PolicyFetchResponse {
    /// None: nothing is assigned to this node.
    pub bundle: Option<PolicyBundle>,
    /// The org's control-key rotations, oldest first: a node that pinned an
    /// older key follows the links each signed by the key before.
    #[serde(default)]
    pub key_rotations: Vec<KeyRotation>,
    /// The bus CA bundle, signed by the org's control key (None: the
    /// controller has none configured).
    #[serde(default)]
    pub bus_ca: Option<trust::SignedBusCa>,
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
            node_id: None,
            rulepack_signed_by: String::new(),
            rulepack_signature: String::new(),
            signed_by: String::new(),
            assignment_signature: String::new(),
        }
    }

    /// A bundle signed as the controller signs it, for `node` of `org`.
    pub(crate) fn signed(
        content: &str,
        org: &OrgId,
        node: &NodeId,
        key: &nkeys::KeyPair,
    ) -> PolicyBundle {
        let mut b = bundle(content);
        b.node_id = Some(node.clone());
        b.rulepack_signed_by = key.public_key();
        b.rulepack_signature = trust::sign(
            key,
            &trust::rulepack_statement(
                org.as_str(),
                &b.rulepack,
                b.revision,
                &b.sha256,
                &b.frameworks,
            ),
        )
        .unwrap();
        b.signed_by = key.public_key();
        b.assignment_signature = trust::sign(
            key,
            &trust::assignment_statement(
                org,
                node,
                &b.version,
                &b.sha256,
                b.mode.as_str(),
                b.assigned_at.timestamp(),
            ),
        )
        .unwrap();
        b
    }

    #[test]
    fn signed_bundles_verify_only_as_served() {
        let org = OrgId::new("acme").unwrap();
        let (n1, n2) = (NodeId::new("n1").unwrap(), NodeId::new("n2").unwrap());
        let key = trust::control_key_new();
        let pinned = key.public_key();
        let good = signed(r#"{"rules":[]}"#, &org, &n1, &key);
        good.verify_signed(&org, &n1, &pinned).unwrap();
        // Served to another node.
        assert!(matches!(
            good.verify_signed(&org, &n2, &pinned),
            Err(PolicyError::OtherNode { .. })
        ));
        // Another org's key, or an org that did not sign it.
        let other = trust::control_key_new().public_key();
        assert!(matches!(
            good.verify_signed(&org, &n1, &other),
            Err(PolicyError::Signature { .. })
        ));
        let org2 = OrgId::new("other").unwrap();
        assert!(matches!(
            good.verify_signed(&org2, &n1, &pinned),
            Err(PolicyError::Signature { .. })
        ));
        // Content and hash both edited (as in the database): the revision's signature fails.
        let content = r#"{"rules":["allow-all"]}"#;
        let edited = PolicyBundle {
            content: content.into(),
            sha256: content_sha256(content),
            ..good.clone()
        };
        assert!(matches!(
            edited.verify_signed(&org, &n1, &pinned),
            Err(PolicyError::Signature {
                what: "rulepack revision",
                ..
            })
        ));
        // The mode changed on the way: the assignment's signature fails.
        let observe = PolicyBundle {
            mode: EnforcementMode::Observe,
            ..good.clone()
        };
        assert!(matches!(
            observe.verify_signed(&org, &n1, &pinned),
            Err(PolicyError::Signature {
                what: "assignment",
                ..
            })
        ));
        // Unsigned.
        let plain = bundle(r#"{"rules":[]}"#);
        assert!(matches!(
            plain.verify_signed(&org, &n1, &pinned),
            Err(PolicyError::Unsigned { .. })
        ));
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
