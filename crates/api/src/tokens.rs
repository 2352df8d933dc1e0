//! `/api/orgs/{org}/enrollment-tokens`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `POST /api/orgs/{org}/enrollment-tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    #[schemars(regex(pattern = crate::ID_PATTERN))]
    pub tenant_id: String,
    /// Lifetime in seconds (default one day, at most 90 days).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 60, max = 7_776_000))]
    pub ttl_secs: Option<i64>,
    /// How many nodes may enroll with it (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100_000))]
    pub max_uses: Option<i32>,
    /// Labels given to every node that enrolls with it.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// Whether a token can still enroll a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TokenState {
    Active,
    Expired,
    /// Every use it allows has been taken.
    UsedUp,
    Revoked,
}

/// An enrollment token, without its secret except in the reply that created it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TokenView {
    pub id: Uuid,
    /// The secret: present only in the reply that created the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    pub org_id: String,
    pub tenant_id: String,
    pub labels: BTreeMap<String, String>,
    pub max_uses: i32,
    pub uses: i32,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub state: TokenState,
}
