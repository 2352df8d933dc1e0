//! The cue the controller publishes on `ritma.<org>.activity` when the
//! ingest has added telemetry to the org's hourly rollups, at most every few
//! seconds per org: dashboards re-read `GET /api/orgs/{org}/activity` (and
//! usage) on it instead of polling.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ids::OrgId;

/// The org's rollups have grown since the last cue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RollupsUpdated {
    pub v: u16,
    pub org_id: OrgId,
    /// When the ingest committed the telemetry that caused it.
    pub at: DateTime<Utc>,
}
