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
