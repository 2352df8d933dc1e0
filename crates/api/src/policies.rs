//! Rulepacks (signed, revisioned rule sets) and their assignment to nodes:
//! `/api/orgs/{org}/rulepacks`, `/api/orgs/{org}/policy-assignments`,
//! `/api/nodes/{id}/policies`.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// One revision of a rulepack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RulepackView {
    pub name: String,
    pub revision: i32,
    pub latest_revision: i32,
    /// `name@revision`, as nodes report it.
    pub version: String,
    pub description: String,
    pub frameworks: Vec<String>,
    pub sha256: String,
    /// The rules, when one rulepack's revisions are asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    /// The control key that signed this revision (absent: made before
    /// signing existed; nodes refuse it until it is published again).
    pub signed_by: Option<String>,
}

/// The org's rulepacks, each at its latest revision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RulepackList {
    pub items: Vec<RulepackView>,
}

/// Every revision of one rulepack, with its rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RulepackRevisions {
    pub name: String,
    pub revisions: Vec<RulepackView>,
}

/// A new revision of a rulepack (the same content as the latest is no new revision).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RulepackCreate {
    #[schemars(regex(pattern = crate::ID_PATTERN))]
    pub name: String,
    #[serde(default)]
    #[schemars(length(max = 1024))]
    pub description: String,
    /// At most 32, each 1-64 characters.
    #[serde(default)]
    #[schemars(length(max = 32))]
    pub frameworks: Vec<String>,
    /// A JSON object or array (at most 48 KiB).
    pub rules: Value,
}

/// Which nodes an assignment covers, and with what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignmentCreate {
    /// `org`, `tenant`, `label` or `node`; the narrowest scope wins.
    pub scope_kind: String,
    /// Empty for `org`; a tenant or node id; `key=value` for a label.
    #[serde(default)]
    pub scope_value: String,
    #[schemars(regex(pattern = crate::ID_PATTERN))]
    pub rulepack: String,
    /// Absent: follow the latest revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub revision: Option<i32>,
    /// `observe` or `enforce`.
    pub mode: String,
}

/// `POST /api/nodes/{id}/policies`: a node-scoped assignment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeAssign {
    #[schemars(regex(pattern = crate::ID_PATTERN))]
    pub rulepack: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub revision: Option<i32>,
    pub mode: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AssignmentView {
    pub id: Uuid,
    pub scope_kind: String,
    pub scope_value: String,
    pub rulepack: String,
    /// Absent: follows the latest revision.
    pub revision: Option<i32>,
    pub mode: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    /// Nodes whose effective policy comes from this assignment.
    pub nodes: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AssignmentList {
    pub items: Vec<AssignmentView>,
}

/// What the controller assigns a node: the winning assignment, resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AssignedPolicy {
    pub version: String,
    pub rulepack: String,
    pub revision: i32,
    pub mode: String,
    pub sha256: String,
    pub assignment_id: Option<Uuid>,
    pub scope_kind: Option<String>,
    pub scope_value: Option<String>,
}

/// `GET /api/nodes/{id}/policies`: assigned against applied, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NodePolicies {
    pub node_id: String,
    pub assigned: Option<AssignedPolicy>,
    /// The policy version the node last reported.
    pub applied: Option<String>,
    pub last_policy_sync_at: Option<DateTime<Utc>>,
    pub drifted: bool,
    pub drift_since: Option<DateTime<Utc>>,
    /// Every assignment matching the node, the winner first.
    pub assignments: Vec<AssignmentView>,
}
