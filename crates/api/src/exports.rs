//! The streamed exports' queries (`/api/orgs/{org}/exports/...`): a format
//! and the filters of the list they export.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `format=csv` (the default) or `format=json` (an array of rows).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    #[default]
    Csv,
    Json,
}

/// `GET /api/orgs/{org}/exports/nodes`: the node list's filters, not its paging.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NodeExportQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<ExportFormat>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// One status or several, comma-separated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// `key=value`; several separated by commas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Text in the id or hostname.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub q: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drifted: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_warning: Option<bool>,
}

/// `GET /api/orgs/{org}/exports/audit`: the audit trail's filters, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AuditExportQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<ExportFormat>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Entries whose target starts with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// `GET /api/orgs/{org}/exports/usage`: one month's usage per tenant and day.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct UsageExportQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<ExportFormat>,
    /// A month, YYYY-MM (default the current one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]{4}-[0-9]{2}$"))]
    pub period: Option<String>,
}
