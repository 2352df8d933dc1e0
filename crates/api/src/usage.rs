//! Telemetry rollups and usage: a node's SLO and enforcement summaries
//! (`/api/nodes/{id}/slo-summary`, `/api/orgs/{org}/nodes/{id}/events`)
//! and an org's usage per tenant and day (`/api/orgs/{org}/usage/summary`).

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The last `hours` (1-9,600, default 24), in pages of `limit` buckets
/// (1-1,000, default 500) after the `cursor` of the previous page.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct HoursPageQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 9600))]
    pub hours: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub limit: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// SLO outcomes of one kind, over the whole window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SloTotal {
    pub component: String,
    pub operation: String,
    pub outcome: String,
    pub count: i64,
}

/// SLO outcomes of one kind in one hour.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SloBucket {
    pub hour: DateTime<Utc>,
    pub component: String,
    pub operation: String,
    pub outcome: String,
    pub count: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NodeSloSummary {
    pub node_id: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Largest first, at most 1,000 ...
    pub totals: Vec<SloTotal>,
    /// ... true when there were more.
    pub totals_truncated: bool,
    pub buckets: Vec<SloBucket>,
    /// Pass back as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<String>,
}

/// Enforcement decisions by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct EnforcementCounts {
    pub allow: i64,
    pub deny: i64,
    pub throttle: i64,
    pub isolate: i64,
}

/// One hour's decisions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct EnforcementBucket {
    pub hour: DateTime<Utc>,
    #[serde(flatten)]
    pub counts: EnforcementCounts,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NodeEventsSummary {
    pub node_id: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub totals: EnforcementCounts,
    pub buckets: Vec<EnforcementBucket>,
    pub next_cursor: Option<String>,
}

/// `?period=YYYY-MM` (the current month when absent).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PeriodQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]{4}-[0-9]{2}$"))]
    pub period: Option<String>,
}

/// The four priced metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct UsageTotals {
    pub decisions: i64,
    pub dig_files: i64,
    pub storage_bytes: i64,
    pub snapshot_exports: i64,
}

/// One tenant's usage over the period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TenantUsage {
    pub tenant_id: String,
    /// Active nodes of the tenant now.
    pub nodes: i64,
    #[serde(flatten)]
    pub usage: UsageTotals,
}

/// One UTC day's usage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DailyUsage {
    pub day: DateTime<Utc>,
    #[serde(flatten)]
    pub usage: UsageTotals,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct UsageSummary {
    pub org_id: String,
    /// `YYYY-MM`.
    pub period: String,
    /// Months since 1970-01 (the billing service's period index).
    pub period_idx: i64,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub totals: UsageTotals,
    pub tenants: Vec<TenantUsage>,
    pub daily: Vec<DailyUsage>,
}

/// `?hours=` (1-9,600, default 24).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct HoursQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 9600))]
    pub hours: Option<i64>,
}

/// One priced metric of a tenant's bill.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BillingLine {
    pub metric: String,
    /// In the metric's own unit (decisions, bytes): an integer from the
    /// price table, as the billing service states it otherwise.
    pub quantity: serde_json::Number,
    /// In the unit it is priced in (`unit`: millions of decisions, GiB);
    /// absent where the source already states it so (the billing service).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priced_quantity: Option<f64>,
    /// How many of the metric's own unit make one priced `unit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per: Option<f64>,
    #[serde(default)]
    pub unit: String,
    pub unit_price: f64,
    pub amount: f64,
}

/// One tenant's bill: from the billing service, or estimated from the price table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TenantBill {
    pub tenant_id: String,
    /// `billing_daemon` or `price_table`.
    pub source: String,
    pub currency: String,
    pub lines: Vec<BillingLine>,
    pub total: f64,
    /// Why a tenant fell back to the price table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// `GET /api/orgs/{org}/billing/estimate?period=YYYY-MM`: the billing
/// service's drafts (cached) or a labelled estimate from the price table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BillingEstimate {
    pub org_id: String,
    pub period: String,
    pub period_idx: i64,
    pub currency: String,
    /// `billing_daemon`, `price_table` or `mixed`.
    pub source: String,
    /// Shown as is ("Estimate ...; not an invoice").
    pub label: String,
    pub tenants: Vec<TenantBill>,
    pub total: f64,
}
