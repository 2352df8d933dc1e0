//! `/api/console/bus-credential`: the console's own bus credential.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Only the public key travels; the console keeps its seed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsoleCredentialRequest {
    /// The console's NKey user public key (`U...`).
    pub public_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ConsoleCredentialResponse {
    pub jwt: String,
    pub expires_at: DateTime<Utc>,
    pub account_public_key: String,
    /// What the credential may subscribe to (every org's state changes, read only).
    pub subscribe: Vec<String>,
    /// The bus's current addresses.
    pub nats_urls: Vec<String>,
}
