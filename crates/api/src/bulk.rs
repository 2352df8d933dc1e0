//! `/api/orgs/{org}/bulk-jobs`: one action on many nodes, previewed first,
//! run as one audited job with a result per node.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use ritma_protocol::NodeStatus;
use ritma_protocol::jobs::{BulkAction, BulkJobState};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// `POST /api/orgs/{org}/bulk-jobs` and `.../bulk-jobs/preview`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkJobRequest {
    /// Read as text, so an unknown action is named in the refusal.
    #[schemars(with = "BulkAction")]
    pub action: String,
    /// assign_rulepack: `{rulepack, revision?, mode: observe|enforce}`;
    /// add_labels: `{labels: {key: value}}`; remove_labels: `{keys: [key]}`;
    /// decommission: `{}`.
    #[serde(default)]
    pub params: Value,
    pub selection: SelectionBody,
    /// The same key again returns the job it started, not a second one
    /// (1-128 printable characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub idempotency_key: Option<String>,
}

impl BulkJobRequest {
    pub fn new(params: BulkJobParams, selection: SelectionBody) -> Self {
        Self {
            action: params.action().as_str().to_owned(),
            params: params.to_value(),
            selection,
            idempotency_key: None,
        }
    }
}

/// An action with its parameters, for building a [`BulkJobRequest`].
#[derive(Debug, Clone, PartialEq)]
pub enum BulkJobParams {
    AssignRulepack(AssignRulepackParams),
    AddLabels(AddLabelsParams),
    RemoveLabels(RemoveLabelsParams),
    Decommission,
}

impl BulkJobParams {
    pub fn action(&self) -> BulkAction {
        match self {
            Self::AssignRulepack(_) => BulkAction::AssignRulepack,
            Self::AddLabels(_) => BulkAction::AddLabels,
            Self::RemoveLabels(_) => BulkAction::RemoveLabels,
            Self::Decommission => BulkAction::Decommission,
        }
    }

    /// The request's `params`.
    pub fn to_value(&self) -> Value {
        let value = match self {
            Self::AssignRulepack(p) => serde_json::to_value(p),
            Self::AddLabels(p) => serde_json::to_value(p),
            Self::RemoveLabels(p) => serde_json::to_value(p),
            Self::Decommission => Ok(Value::Object(Default::default())),
        };
        // Plain structs of strings and numbers always serialise.
        value.unwrap_or(Value::Null)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignRulepackParams {
    pub rulepack: String,
    /// The latest when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<i32>,
    /// `observe` or `enforce`.
    pub mode: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddLabelsParams {
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoveLabelsParams {
    pub keys: Vec<String>,
}

/// Which nodes: exactly one of `ids` (at most 10,000) or `filter`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SelectionBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 10_000))]
    pub ids: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<SelectionFilter>,
}

/// The node list's filters (no sort, no paging): what "all N matching this
/// filter" means, stored with the job and evaluated when it runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SelectionFilter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub q: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drifted: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_warning: Option<bool>,
}

/// What a job would do, changing nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BulkJobPreview {
    pub action: BulkAction,
    pub params: Value,
    /// Nodes of the org the job would act on (decommissioned ones are
    /// counted, and skipped when it runs).
    pub count: i64,
    /// Ids given that are not nodes of this org: never acted on.
    pub unknown_ids: i64,
    /// At most ten of them.
    pub sample: Vec<SampleNode>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SampleNode {
    pub id: String,
    pub tenant_id: String,
    pub hostname: String,
    pub status: NodeStatus,
    pub labels: BTreeMap<String, String>,
}

/// A bulk job and its counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BulkJobView {
    pub id: Uuid,
    pub org_id: String,
    pub action: BulkAction,
    pub params: Value,
    /// As given: `{ids}` or `{filter}`.
    pub selection: Value,
    pub idempotency_key: Option<String>,
    pub state: BulkJobState,
    /// A filter selection has been expanded into its nodes.
    pub expanded: bool,
    pub total: i32,
    pub succeeded: i32,
    pub failed: i32,
    pub skipped: i32,
    pub error: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// `GET /api/orgs/{org}/bulk-jobs?limit=`: newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkJobListQuery {
    /// 1-100, default 20.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub limit: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BulkJobList {
    pub items: Vec<BulkJobView>,
}

/// Where one node is in a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BulkJobItemState {
    Pending,
    Succeeded,
    Failed,
    Skipped,
}

impl BulkJobItemState {
    pub const ALL: [Self; 4] = [Self::Pending, Self::Succeeded, Self::Failed, Self::Skipped];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// `GET /api/orgs/{org}/bulk-jobs/{id}/items`: keyset pages in node id order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkJobItemQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["pending", "succeeded", "failed", "skipped"]))]
    pub state: Option<String>,
    /// The last node id of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// 1-1,000, default 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub limit: Option<i64>,
}

/// One node's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct BulkJobItemView {
    pub node_id: String,
    pub state: BulkJobItemState,
    pub detail: Option<String>,
    pub done_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct BulkJobItemPage {
    pub items: Vec<BulkJobItemView>,
    /// Pass as `after` for the next page; absent at the end.
    pub next_after: Option<String>,
}
