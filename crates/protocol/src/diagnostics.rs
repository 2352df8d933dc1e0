//! The node's diagnostic bundle: what `ritma-node diagnose` writes, and what
//! a node answers to a `diagnose` command. Its parts are free-form objects
//! (they follow the node's configuration and platform); secrets never enter
//! it: the node reports them as set or not, and redacts its log lines.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The bundle's `bundle` field: what made it.
pub const DIAGNOSTIC_BUNDLE_KIND: &str = "ritma-node diagnose";

/// The node's reply to a `diagnose` command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DiagnosticBundle {
    /// Always [`DIAGNOSTIC_BUNDLE_KIND`].
    pub bundle: String,
    pub v: u16,
    pub made_at: DateTime<Utc>,
    /// Agent version, OS, kernel, architecture.
    pub versions: Value,
    /// The configuration, secrets reported as set or not.
    pub config: Value,
    /// What enrollment handed out (ids, URLs without user info).
    pub identity: Value,
    /// The bus credential's expiry (never the credential).
    pub credential: Value,
    /// The spool on disk: depth, bytes, dropped.
    pub spool: Value,
    /// The daemon's recent warnings and errors, redacted.
    #[serde(default)]
    pub recent_problems: Option<Value>,
}
