//! `/api/me`, role grants (`/api/orgs/{org}/roles`) and the audit trail
//! (`/api/orgs/{org}/audit`).

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `GET /api/me`: who the caller is and what it may do where.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MeView {
    pub subject: String,
    pub email: Option<String>,
    pub name: Option<String>,
    /// The operator: every role in every org, and org creation.
    pub operator: bool,
    pub orgs: Vec<MeOrg>,
}

/// One org the caller has a role in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MeOrg {
    pub id: String,
    /// Shown for the operator, who sees every org.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub roles: Vec<String>,
}

/// One entry of an org's hash-chained audit trail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AuditEntryView {
    pub id: i64,
    pub org_id: Option<String>,
    pub actor: String,
    pub action: String,
    pub target: String,
    /// The caller's address, where there was one.
    pub source: Option<String>,
    /// The target's state before the change, where it had one.
    pub before: Option<Value>,
    pub after: Option<Value>,
    pub at: DateTime<Utc>,
    /// Hex SHA-256 of the previous entry (the chain).
    pub prev_hash: String,
    pub hash: String,
}

/// A person's role in an org.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RoleGrantView {
    pub org_id: String,
    /// The OIDC subject it is granted to.
    pub subject: String,
    pub role: String,
    /// Absent: until revoked.
    pub expires_at: Option<DateTime<Utc>>,
    pub granted_by: String,
    pub granted_at: DateTime<Utc>,
}

/// `POST /api/orgs/{org}/roles`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantRequest {
    #[schemars(length(min = 1, max = 256))]
    pub subject: String,
    /// `org_owner`, `org_admin`, `node_admin`, `viewer` or `support`.
    pub role: String,
    /// Required for `support`, which is always time-boxed (at most 30 days).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

/// `GET /api/orgs/{org}/audit`: the filters and the page, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AuditQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Entries whose target starts with this (a node id, `token:...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The page after the entry with this id (the last one of the previous page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
}
