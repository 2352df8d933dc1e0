//! `/api/orgs/{org}/activity`: the dashboard's series over a fixed range.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::usage::EnforcementCounts;

/// `?range=24h|7d|30d` (default 24h) and `tenant_id` (default: the whole org).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ActivityQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["24h", "7d", "30d"]))]
    pub range: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = crate::ID_PATTERN))]
    pub tenant_id: Option<String>,
}

/// One bucket: decisions, DIG files and enforcement decisions by type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ActivityBucket {
    pub at: DateTime<Utc>,
    pub decisions: i64,
    pub dig_files: i64,
    #[serde(flatten)]
    pub enforcement: EnforcementCounts,
}

/// Every bucket of the range, zero where nothing was rolled up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Activity {
    pub org_id: String,
    /// The tenant shown; absent for all of the org's.
    pub tenant_id: Option<String>,
    /// `24h`, `7d` or `30d`.
    pub range: String,
    /// Bucket size in seconds.
    pub step_secs: i64,
    pub from: DateTime<Utc>,
    /// End of the last bucket (exclusive).
    pub to: DateTime<Utc>,
    pub now: DateTime<Utc>,
    pub buckets: Vec<ActivityBucket>,
}
