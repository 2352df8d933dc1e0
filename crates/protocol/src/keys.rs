//! Signing-key governance states, shared by the controller, the console and
//! the `ritma_cloud` registry.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeyStatus {
    Active,
    Revoked,
    Compromised,
    Expired,
}

impl KeyStatus {
    pub const ALL: [KeyStatus; 4] = [
        Self::Active,
        Self::Revoked,
        Self::Compromised,
        Self::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Revoked => "revoked",
            Self::Compromised => "compromised",
            Self::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// A node still signing with a key in this state raises a key warning.
    pub fn warns(self) -> bool {
        self != Self::Active
    }
}

/// Why a signing-key id is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "key_id {0:?} is refused: 1-128 letters, digits, '-', '_', '.' or ':', not starting with '.' and without '..'"
)]
pub struct KeyIdError(pub String);

/// Signing-key ids are per org, and they travel in URL paths (the API's and
/// the `ritma_cloud` registry's): only plain characters, nothing that a path
/// could read as a separator, a parent folder or an escape (`/`, `\`, `%`,
/// `..`, a leading `.`).
pub fn key_id_check(raw: &str) -> Result<(), KeyIdError> {
    let plain = raw
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c));
    if raw.is_empty() || raw.len() > 128 || !plain || raw.starts_with('.') || raw.contains("..") {
        return Err(KeyIdError(raw.chars().take(64).collect()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_refuse_path_tricks() {
        for ok in ["sign-2026", "k1", "org:key.v2", "a_b"] {
            assert!(key_id_check(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "a/../b",
            "a..b",
            "a/b",
            "a%2fb",
            "%2e%2e",
            "a\\b",
            ".hidden",
            "a b",
            "a?b",
            "a#b",
            "ключ",
            &"k".repeat(129),
        ] {
            assert!(key_id_check(bad).is_err(), "{bad}");
        }
    }
}
