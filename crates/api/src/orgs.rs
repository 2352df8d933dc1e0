//! `/api/orgs` and the read-only bus credentials of an org's integrators
//! (`/api/orgs/{org}/integrator-credentials`).

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An org the caller may see.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OrgView {
    pub id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// `POST /api/orgs` (operator only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrg {
    #[schemars(regex(pattern = crate::ID_PATTERN))]
    pub id: String,
    /// Shown in the console; the id when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub name: Option<String>,
}

/// `POST /api/orgs/{org}/integrator-credentials`: read-only bus credentials
/// for the holder of `public_key`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IntegratorRequest {
    /// The integrator's own NKey user public key (`U...`); its seed stays with it.
    pub public_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// One tenant's subjects only; absent: the whole org.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = crate::ID_PATTERN))]
    pub tenant_id: Option<String>,
    /// Beyond telemetry and state changes, by name: `commands`, `audit`,
    /// `alerts` (the last two org-wide only).
    #[serde(default)]
    pub include: Vec<String>,
    /// Narrower subjects inside what is granted (never wider).
    #[serde(default)]
    #[schemars(length(max = 32))]
    pub subjects: Vec<String>,
    /// Lifetime in seconds (default 30 days, at most 366 days).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_secs: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct IntegratorResponse {
    pub jwt: String,
    pub expires_at: DateTime<Utc>,
    pub nats_urls: Vec<String>,
    /// What it may subscribe to.
    pub subscribe: Vec<String>,
}

/// An integrator credential as the org sees it (never the JWT).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct IntegratorView {
    pub public_key: String,
    pub org_id: String,
    pub tenant_id: Option<String>,
    pub name: String,
    pub subjects: Vec<String>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}
