//! `/api/orgs/{org}/keys`: the signing keys an org's nodes use, and their
//! governance (mirrored from `ritma_cloud` when it is configured).

use chrono::{DateTime, Utc};
use ritma_protocol::KeyStatus;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `POST /api/orgs/{org}/keys`: register a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyCreate {
    #[schemars(length(min = 1, max = 128))]
    pub key_id: String,
    #[serde(default)]
    #[schemars(length(max = 256))]
    pub label: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotate_by: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

/// `PATCH /api/orgs/{org}/keys/{key_id}/governance`: at least one of
/// status, label or rotate_by.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GovernancePatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<KeyStatus>")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotate_by: Option<DateTime<Utc>>,
    /// Why (kept in the audit trail and sent to the registry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct KeyView {
    pub key_id: String,
    pub org_id: String,
    pub label: String,
    pub status: KeyStatus,
    /// `console` or `ritma_cloud`: where its governance was last set.
    pub source: String,
    pub created_at: DateTime<Utc>,
    pub rotated_at: Option<DateTime<Utc>>,
    pub rotate_by: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    pub updated_by: String,
    /// Active nodes reporting this key in their heartbeats.
    pub nodes_using: i64,
}

/// The registry mirror's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CloudSyncStatus {
    /// `RITMA_CLOUD_URL` is set.
    pub configured: bool,
    pub last_sync_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct KeyList {
    pub items: Vec<KeyView>,
    pub cloud: CloudSyncStatus,
}

/// `GET /api/orgs/{org}/keys/summary`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct KeySummaryView {
    pub active: i64,
    pub revoked: i64,
    pub compromised: i64,
    pub expired: i64,
    /// Active keys whose rotation date has passed.
    pub rotation_due: i64,
    pub nodes_with_warnings: i64,
    /// The registry's own summary, or `{"error": ...}`; absent without a registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud: Option<Value>,
}
