//! What a node trusts the controller with. Each org has one control key, an
//! NKey of the service type (`V...`), kept by the controller encrypted under
//! its master key. It signs every command to a node, every rulepack revision
//! (when it is created) and every policy assignment a node is served; the
//! node pins the public key at enrollment and acts on nothing else. One key
//! for both: commands and policies come from the same authority in the same
//! process, so a second key would add a rotation without adding isolation;
//! each statement kind has its own context line instead, so a signature over
//! one kind never passes as another (nor as a node's signed request, which
//! the node's own key makes, nor as a NATS nonce, which has no newline).

use data_encoding::BASE64URL_NOPAD;
use nkeys::KeyPair;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ids::{NodeId, OrgId};

/// The first character of a control key's public key (NKey service type).
pub const CONTROL_KEY_PREFIX: char = 'V';

const COMMAND_CONTEXT: &str = "ritma command v1\n";
const RULEPACK_CONTEXT: &str = "ritma rulepack v1\n";
const ASSIGNMENT_CONTEXT: &str = "ritma policy assignment v1\n";
const ROTATION_CONTEXT: &str = "ritma control key rotation v1\n";
const BUS_CA_CONTEXT: &str = "ritma bus ca v1\n";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    #[error("{0:?} is not a control key (an NKey service public key, V...)")]
    NotAControlKey(String),
    #[error("signed by {found}, but this node trusts only {pinned}")]
    UnknownSigner { found: String, pinned: String },
    #[error("the signature does not verify under {0}")]
    BadSignature(String),
    #[error("signing failed: {0}")]
    Sign(String),
}

pub fn is_control_key(public_key: &str) -> bool {
    public_key.starts_with(CONTROL_KEY_PREFIX) && KeyPair::from_public_key(public_key).is_ok()
}

/// A new control key (the controller's side).
pub fn control_key_new() -> KeyPair {
    KeyPair::new(nkeys::KeyPairType::Service)
}

/// Base64url signature of `statement` by `key`.
pub fn sign(key: &KeyPair, statement: &str) -> Result<String, TrustError> {
    key.sign(statement.as_bytes())
        .map(|s| BASE64URL_NOPAD.encode(&s))
        .map_err(|e| TrustError::Sign(e.to_string()))
}

/// `signature` over `statement` by `signer`, which must be the pinned key.
pub fn verify(
    pinned: &str,
    signer: &str,
    statement: &str,
    signature: &str,
) -> Result<(), TrustError> {
    if signer != pinned {
        return Err(TrustError::UnknownSigner {
            found: signer.chars().take(64).collect(),
            pinned: pinned.to_owned(),
        });
    }
    verify_by(pinned, statement, signature)
}

/// `signature` over `statement` by the control key `public_key`.
pub fn verify_by(public_key: &str, statement: &str, signature: &str) -> Result<(), TrustError> {
    if !public_key.starts_with(CONTROL_KEY_PREFIX) {
        return Err(TrustError::NotAControlKey(public_key.to_owned()));
    }
    let key = KeyPair::from_public_key(public_key)
        .map_err(|_| TrustError::NotAControlKey(public_key.to_owned()))?;
    let bad = || TrustError::BadSignature(public_key.to_owned());
    let raw = BASE64URL_NOPAD
        .decode(signature.as_bytes())
        .map_err(|_| bad())?;
    key.verify(statement.as_bytes(), &raw).map_err(|_| bad())
}

/// What the control key signs for a command: the command's JSON text.
pub fn command_statement(payload: &str) -> String {
    format!("{COMMAND_CONTEXT}{payload}")
}

/// What the control key signs when a rulepack revision is created: which
/// org, rulepack and revision, the hash of its content, and its frameworks.
pub fn rulepack_statement(
    org: &str,
    rulepack: &str,
    revision: i32,
    sha256: &str,
    frameworks: &[String],
) -> String {
    let frameworks = serde_json::to_string(frameworks).unwrap_or_default();
    format!("{RULEPACK_CONTEXT}{org}\n{rulepack}\n{revision}\n{sha256}\n{frameworks}")
}

/// What the control key signs when it serves a node its policy: this
/// version, with this content hash and mode, is for this node of this org.
pub fn assignment_statement(
    org: &OrgId,
    node: &NodeId,
    version: &str,
    sha256: &str,
    mode: &str,
    assigned_at: i64,
) -> String {
    format!("{ASSIGNMENT_CONTEXT}{org}\n{node}\n{version}\n{sha256}\n{mode}\n{assigned_at}")
}

/// What an org's outgoing control key signs to hand over to `new_key`.
pub fn rotation_statement(org: &OrgId, new_key: &str) -> String {
    format!("{ROTATION_CONTEXT}{org}\n{new_key}")
}

/// What the control key signs to hand nodes a new bus CA bundle: the org
/// and the bundle's SHA-256.
pub fn bus_ca_statement(org: &OrgId, pem: &str) -> String {
    format!(
        "{BUS_CA_CONTEXT}{org}\n{}",
        crate::policy::content_sha256(pem)
    )
}

/// The bus CA bundle (PEM) the controller trusts now, signed by the org's
/// control key: a node that pinned an older bundle moves to this one (CA
/// rotation without enrolling again).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SignedBusCa {
    pub pem: String,
    pub signed_by: String,
    pub signature: String,
}

/// One link of an org's control-key chain: `key` replaced `previous`, which
/// vouches for it with `signature` over [`rotation_statement`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct KeyRotation {
    pub previous: String,
    pub key: String,
    pub signature: String,
}

/// Walk `chain` from the `pinned` key: the newest key reachable through
/// links each signed by the key before it (the pinned key itself when no
/// link starts there). Links that do not verify are ignored.
pub fn chain_follow(org: &OrgId, pinned: &str, chain: &[KeyRotation]) -> String {
    let mut current = pinned.to_owned();
    // Each step moves to a key not seen yet, so this ends.
    let mut seen = vec![current.clone()];
    while let Some(link) = chain.iter().find(|l| {
        l.previous == current
            && !seen.contains(&l.key)
            && is_control_key(&l.key)
            && verify_by(&current, &rotation_statement(org, &l.key), &l.signature).is_ok()
    }) {
        current = link.key.clone();
        seen.push(current.clone());
    }
    current
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org() -> OrgId {
        OrgId::new("acme").unwrap()
    }

    #[test]
    fn signatures_verify_only_under_their_key_and_statement() {
        let k = control_key_new();
        let pk = k.public_key();
        assert!(is_control_key(&pk));
        assert!(!is_control_key(&KeyPair::new_user().public_key()));
        let sig = sign(&k, &command_statement("{}")).unwrap();
        assert!(verify(&pk, &pk, &command_statement("{}"), &sig).is_ok());
        assert!(matches!(
            verify(&pk, &pk, &command_statement("{ }"), &sig),
            Err(TrustError::BadSignature(_))
        ));
        let other = control_key_new().public_key();
        assert!(matches!(
            verify(&other, &pk, &command_statement("{}"), &sig),
            Err(TrustError::UnknownSigner { .. })
        ));
        // A user key (a node's) is never a control key, even when it signed.
        let user = KeyPair::new_user();
        let user_sig = BASE64URL_NOPAD.encode(&user.sign(b"x").unwrap());
        assert!(matches!(
            verify_by(&user.public_key(), "x", &user_sig),
            Err(TrustError::NotAControlKey(_))
        ));
    }

    #[test]
    fn statement_kinds_are_separated() {
        let fw = vec!["cis".to_owned()];
        let kinds = [
            command_statement("x"),
            rulepack_statement("acme", "base", 1, "ab", &fw),
            assignment_statement(
                &org(),
                &NodeId::new("n1").unwrap(),
                "base@1",
                "ab",
                "enforce",
                0,
            ),
            rotation_statement(&org(), "VABC"),
        ];
        for (i, a) in kinds.iter().enumerate() {
            assert!(!crate::enrollment::is_nats_nonce(a.as_bytes()));
            assert!(!a.starts_with(crate::enrollment::SIGNED_REQUEST_CONTEXT));
            for b in &kinds[i + 1..] {
                let (ca, cb) = (a.split('\n').next(), b.split('\n').next());
                assert_ne!(ca, cb);
            }
        }
    }

    #[test]
    fn chain_moves_only_along_signed_links() {
        let (k1, k2, k3) = (control_key_new(), control_key_new(), control_key_new());
        let link = |from: &KeyPair, to: &KeyPair| KeyRotation {
            previous: from.public_key(),
            key: to.public_key(),
            signature: sign(from, &rotation_statement(&org(), &to.public_key())).unwrap(),
        };
        let chain = vec![link(&k2, &k3), link(&k1, &k2)];
        assert_eq!(
            chain_follow(&org(), &k1.public_key(), &chain),
            k3.public_key()
        );
        assert_eq!(
            chain_follow(&org(), &k2.public_key(), &chain),
            k3.public_key()
        );
        // A link signed by a key other than the pinned one is not followed.
        let rogue = control_key_new();
        let forged = vec![KeyRotation {
            previous: k1.public_key(),
            key: rogue.public_key(),
            signature: sign(&rogue, &rotation_statement(&org(), &rogue.public_key())).unwrap(),
        }];
        assert_eq!(
            chain_follow(&org(), &k1.public_key(), &forged),
            k1.public_key()
        );
        // Nor one made for another org.
        let other_org = OrgId::new("other").unwrap();
        let foreign = vec![KeyRotation {
            previous: k1.public_key(),
            key: k2.public_key(),
            signature: sign(&k1, &rotation_statement(&other_org, &k2.public_key())).unwrap(),
        }];
        assert_eq!(
            chain_follow(&org(), &k1.public_key(), &foreign),
            k1.public_key()
        );
    }
}
