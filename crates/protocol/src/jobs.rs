//! Bulk jobs: the progress message the controller publishes on
//! `ritma.<org>.jobs` while a job runs (throttled) and when it ends.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ids::OrgId;

/// What a bulk job does to each selected node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BulkAction {
    AssignRulepack,
    AddLabels,
    RemoveLabels,
    Decommission,
}

impl BulkAction {
    pub const ALL: [BulkAction; 4] = [
        Self::AssignRulepack,
        Self::AddLabels,
        Self::RemoveLabels,
        Self::Decommission,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AssignRulepack => "assign_rulepack",
            Self::AddLabels => "add_labels",
            Self::RemoveLabels => "remove_labels",
            Self::Decommission => "decommission",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// Where a bulk job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BulkJobState {
    Pending,
    Running,
    Done,
    Failed,
}

impl BulkJobState {
    pub const ALL: [BulkJobState; 4] = [Self::Pending, Self::Running, Self::Done, Self::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// Done or failed: nothing more will change.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Done | Self::Failed)
    }
}

/// A bulk job's counts at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BulkJobProgress {
    pub v: u16,
    pub job_id: uuid::Uuid,
    pub org_id: OrgId,
    pub action: BulkAction,
    pub state: BulkJobState,
    /// Nodes selected so far (grows while a filter selection is expanded).
    pub total: u64,
    pub succeeded: u64,
    pub failed: u64,
    /// Not acted on: not a node of the org, or nothing to do (decommissioned).
    pub skipped: u64,
    pub at: DateTime<Utc>,
}
