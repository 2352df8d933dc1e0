//! Telemetry rollups, usage per tenant and period, and the cost estimate.

use axum::extract::State;
use axum::{Extension, Json};
use chrono::{Duration, Utc};
use data_encoding::BASE64URL_NOPAD;
use ritma_api::nodes::ConfigTemplateQuery;
use ritma_api::service::{
    BudgetsView, ConfigTemplate, IngestCounts, IngestHour, IngestStats, RateView,
};
use ritma_api::usage::{
    BillingEstimate, BillingLine, DailyUsage, EnforcementBucket, EnforcementCounts, HoursPageQuery,
    HoursQuery, NodeEventsSummary, NodeSloSummary, PeriodQuery, SloBucket, SloTotal, TenantBill,
    TenantUsage, UsageSummary,
};
use ritma_db::telemetry::{self, UsageTotals};

use super::fleet_common::{node_authorized, org_authorized};
use super::{AppState, PathParams, QueryParams, path_id};
use crate::auth::{Action, Principal};
use crate::error::ApiError;
use crate::fleet::{Period, PriceTable, money};

fn since(q: &HoursQuery) -> Result<chrono::DateTime<Utc>, ApiError> {
    since_hours(q.hours)
}

fn since_hours(hours: Option<i64>) -> Result<chrono::DateTime<Utc>, ApiError> {
    let hours = hours.unwrap_or(24);
    if !(1..=24 * 400).contains(&hours) {
        return Err(ApiError::BadRequest("hours must be 1..=9600".into()));
    }
    // Whole hours, so the first bucket is complete.
    Ok(telemetry::rollup_hour(Utc::now() - Duration::hours(hours)))
}

/// Buckets per page of the SLO and events APIs, by default and at most.
pub const PAGE_DEFAULT: i64 = 500;
pub const PAGE_MAX: i64 = 1000;
/// Label totals the SLO API returns at most (largest first).
pub const SLO_TOTALS_MAX: i64 = 1000;

/// A page's `limit` and the key after which it starts (from the opaque
/// `cursor` of the previous page's `next_cursor`).
fn page_limit(q: &HoursPageQuery) -> Result<i64, ApiError> {
    let limit = q.limit.unwrap_or(PAGE_DEFAULT);
    if !(1..=PAGE_MAX).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be 1..={PAGE_MAX}"
        )));
    }
    Ok(limit)
}

fn page_after<T: serde::de::DeserializeOwned>(q: &HoursPageQuery) -> Result<Option<T>, ApiError> {
    let Some(cursor) = q.cursor.as_deref().filter(|c| !c.is_empty()) else {
        return Ok(None);
    };
    let bad = || ApiError::BadRequest("cursor is not one this API returned".into());
    let bytes = BASE64URL_NOPAD
        .decode(cursor.as_bytes())
        .map_err(|_| bad())?;
    serde_json::from_slice(&bytes).map(Some).map_err(|_| bad())
}

fn cursor_of<T: serde::Serialize>(key: &T) -> String {
    BASE64URL_NOPAD.encode(&serde_json::to_vec(key).unwrap_or_default())
}

/// `GET /api/nodes/{id}/slo-summary`: hourly SLO counts (paged) and the
/// totals per label over the whole window.
pub async fn node_slo(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    PathParams(id): PathParams<String>,
    QueryParams(q): QueryParams<HoursPageQuery>,
) -> Result<Json<NodeSloSummary>, ApiError> {
    let node = node_authorized(&state, &p, Action::ReadFleet, &id).await?;
    let from = since_hours(q.hours)?;
    let limit = page_limit(&q)?;
    let after: Option<telemetry::SloKey> = page_after(&q)?;
    let buckets =
        telemetry::slo_buckets(&state.pool, &node.id, from, after.as_ref(), limit).await?;
    let next_cursor = (buckets.len() as i64 == limit)
        .then(|| buckets.last())
        .flatten()
        .map(|b| cursor_of(&(b.hour, &b.component, &b.operation, &b.outcome)));
    let totals = telemetry::slo_totals(&state.pool, &node.id, from, SLO_TOTALS_MAX + 1).await?;
    let totals_truncated = totals.len() as i64 > SLO_TOTALS_MAX;
    let totals = totals
        .into_iter()
        .take(SLO_TOTALS_MAX as usize)
        .map(|(component, operation, outcome, count)| SloTotal {
            component,
            operation,
            outcome,
            count,
        })
        .collect();
    let buckets = buckets
        .into_iter()
        .map(|b| SloBucket {
            hour: b.hour,
            component: b.component,
            operation: b.operation,
            outcome: b.outcome,
            count: b.count,
        })
        .collect();
    Ok(Json(NodeSloSummary {
        node_id: node.id,
        from,
        to: Utc::now(),
        totals,
        totals_truncated,
        buckets,
        next_cursor,
    }))
}

/// `GET /api/orgs/{org}/nodes/{id}/events`: enforcement decisions per hour
/// (paged) and their totals over the whole window.
pub async fn node_events(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    PathParams((org, id)): PathParams<(String, String)>,
    QueryParams(q): QueryParams<HoursPageQuery>,
) -> Result<Json<NodeEventsSummary>, ApiError> {
    let org = org_authorized(&p, Action::ReadFleet, &org)?;
    let id: ritma_protocol::NodeId = path_id(&id, "node")?;
    let node = ritma_db::nodes::node_get(&state.pool, org.as_str(), id.as_str())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("node {id}")))?;
    let from = since_hours(q.hours)?;
    let limit = page_limit(&q)?;
    let after: Option<chrono::DateTime<Utc>> = page_after(&q)?;
    let buckets = telemetry::enforcement_buckets(&state.pool, &node.id, from, after, limit).await?;
    let next_cursor = (buckets.len() as i64 == limit)
        .then(|| buckets.last())
        .flatten()
        .map(|b| cursor_of(&b.hour));
    let totals = telemetry::enforcement_totals(&state.pool, &node.id, from).await?;
    Ok(Json(NodeEventsSummary {
        node_id: node.id,
        from,
        to: Utc::now(),
        totals: enforcement_counts(&totals),
        buckets: buckets
            .iter()
            .map(|b| EnforcementBucket {
                hour: b.hour,
                counts: enforcement_counts(&b.counts),
            })
            .collect(),
        next_cursor,
    }))
}

/// `GET /api/orgs/{org}/ingest-stats?hours=N`: what the ingest did with the
/// org's messages per hour (accepted; throttled by the node or org budget;
/// dead letters kept or dropped), the totals, and the budgets in force.
/// Counters reach the database every few seconds; `pending` is this
/// controller's share not yet written.
pub async fn ingest_stats(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    PathParams(org): PathParams<String>,
    QueryParams(q): QueryParams<HoursQuery>,
) -> Result<Json<IngestStats>, ApiError> {
    let org = org_authorized(&p, Action::ReadFleet, &org)?;
    let from = since(&q)?;
    let hours = ritma_db::ingest::org_counters(&state.pool, org.as_str(), from).await?;
    let pending = state.budgets.unflushed(org.as_str());
    let sum = |f: fn(&ritma_db::ingest::OrgIngestHour) -> i64, extra: u64| {
        hours
            .iter()
            .map(f)
            .fold(0i64, i64::saturating_add)
            .try_into()
            .unwrap_or(0u64)
            .saturating_add(extra)
    };
    let totals = IngestCounts {
        accepted: sum(|h| h.accepted, pending.accepted),
        throttled_node: sum(|h| h.throttled_node, pending.throttled_node),
        throttled_org: sum(|h| h.throttled_org, pending.throttled_org),
        dead_letters_kept: sum(|h| h.dead_letters_kept, pending.dead_letters_kept),
        dead_letters_dropped: sum(|h| h.dead_letters_dropped, pending.dead_letters_dropped),
    };
    let rate = |r: crate::tasks::budget::Rate| RateView {
        per_sec: r.per_sec,
        burst: r.burst,
    };
    let budgets = state.budgets.settings();
    Ok(Json(IngestStats {
        org_id: org.to_string(),
        from,
        to: Utc::now(),
        budgets: BudgetsView {
            node: rate(budgets.node),
            org: rate(budgets.org),
            dead_letters: rate(budgets.dead_letters),
        },
        totals,
        pending: IngestCounts {
            accepted: pending.accepted,
            throttled_node: pending.throttled_node,
            throttled_org: pending.throttled_org,
            dead_letters_kept: pending.dead_letters_kept,
            dead_letters_dropped: pending.dead_letters_dropped,
        },
        hours: hours
            .iter()
            .map(|h| IngestHour {
                hour: h.hour,
                accepted: h.accepted,
                throttled_node: h.throttled_node,
                throttled_org: h.throttled_org,
                dead_letters_kept: h.dead_letters_kept,
                dead_letters_dropped: h.dead_letters_dropped,
            })
            .collect(),
    }))
}

pub(super) fn period_of(q: &PeriodQuery) -> Result<Period, ApiError> {
    match q.period.as_deref().filter(|p| !p.is_empty()) {
        None => Ok(Period::current()),
        Some(p) => Period::parse(p)
            .ok_or_else(|| ApiError::BadRequest(format!("period must be YYYY-MM, not {p:?}"))),
    }
}

fn add(a: &UsageTotals, b: &UsageTotals) -> UsageTotals {
    UsageTotals {
        decisions: a.decisions + b.decisions,
        dig_files: a.dig_files + b.dig_files,
        storage_bytes: a.storage_bytes + b.storage_bytes,
        snapshot_exports: a.snapshot_exports + b.snapshot_exports,
    }
}

/// `GET /api/orgs/{org}/usage/summary?period=YYYY-MM`.
pub async fn usage_summary(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    PathParams(org): PathParams<String>,
    QueryParams(q): QueryParams<PeriodQuery>,
) -> Result<Json<UsageSummary>, ApiError> {
    let org = org_authorized(&p, Action::ReadFleet, &org)?;
    let period = period_of(&q)?;
    let (from, to) = (period.start(), period.end());
    let tenants = telemetry::usage_by_tenant(&state.pool, org.as_str(), from, to).await?;
    let daily = telemetry::usage_daily(&state.pool, org.as_str(), from, to).await?;
    let totals = tenants
        .iter()
        .fold(UsageTotals::default(), |t, x| add(&t, &x.usage));
    Ok(Json(UsageSummary {
        org_id: org.to_string(),
        period: period.label(),
        period_idx: period.index(),
        from,
        to,
        totals: usage_totals(&totals),
        tenants: tenants
            .iter()
            .map(|t| TenantUsage {
                tenant_id: t.tenant_id.clone(),
                nodes: t.nodes,
                usage: usage_totals(&t.usage),
            })
            .collect(),
        daily: daily
            .iter()
            .map(|d| DailyUsage {
                day: d.day,
                usage: usage_totals(&d.usage),
            })
            .collect(),
    }))
}

fn estimate_lines(prices: &PriceTable, u: &UsageTotals) -> (Vec<BillingLine>, f64) {
    let quantities = [
        u.decisions,
        u.dig_files,
        u.storage_bytes,
        u.snapshot_exports,
    ];
    let mut total = 0.0;
    let lines = prices
        .lines()
        .into_iter()
        .zip(quantities)
        .map(|((metric, price), quantity)| {
            let amount = money(quantity as f64 / price.per * price.price);
            total += amount;
            // `priced_quantity` is the quantity in the unit it is priced in
            // (bytes as GiB, decisions as millions), as an invoice shows it.
            let priced = (quantity as f64 / price.per * 10_000.0).round() / 10_000.0;
            BillingLine {
                metric: metric.to_owned(),
                quantity: quantity.into(),
                priced_quantity: Some(priced),
                per: Some(price.per),
                unit: price.unit.to_owned(),
                unit_price: price.price,
                amount,
            }
        })
        .collect();
    (lines, money(total))
}

const PRICE_TABLE_LABEL: &str =
    "Estimate from the configured price table and the usage nodes reported; not an invoice.";
const BILLING_LABEL: &str = "Invoice drafts from the billing service; final amounts may differ.";

/// `GET /api/orgs/{org}/billing/estimate?period=YYYY-MM`: the billing
/// daemon's drafts when configured (cached), otherwise (or for a tenant it
/// cannot answer) a labelled estimate from the price table.
pub async fn billing_estimate(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    PathParams(org): PathParams<String>,
    QueryParams(q): QueryParams<PeriodQuery>,
) -> Result<Json<BillingEstimate>, ApiError> {
    let org = org_authorized(&p, Action::ReadFleet, &org)?;
    let period = period_of(&q)?;
    let tenants =
        telemetry::usage_by_tenant(&state.pool, org.as_str(), period.start(), period.end()).await?;
    let prices = &state.fleet.prices;
    let mut out = Vec::new();
    let mut total = 0.0;
    let mut sources = std::collections::BTreeSet::new();
    for t in &tenants {
        let draft = match &state.fleet.billing {
            Some(b) => Some(
                b.invoice_draft(org.as_str(), &t.tenant_id, period.index())
                    .await,
            ),
            None => None,
        };
        let entry = match draft {
            Some(Ok(d)) => {
                sources.insert("billing_daemon");
                total += d.total;
                TenantBill {
                    tenant_id: t.tenant_id.clone(),
                    source: "billing_daemon".into(),
                    currency: d
                        .currency
                        .clone()
                        .unwrap_or_else(|| prices.currency.clone()),
                    lines: d.lines.iter().map(draft_line).collect(),
                    total: money(d.total),
                    note: None,
                }
            }
            other => {
                sources.insert("price_table");
                let (lines, sum) = estimate_lines(prices, &t.usage);
                total += sum;
                let note = other.and_then(Result::err).map(|e| {
                    format!("billing service unavailable ({e}); estimated from the price table")
                });
                TenantBill {
                    tenant_id: t.tenant_id.clone(),
                    source: "price_table".into(),
                    currency: prices.currency.clone(),
                    lines,
                    total: sum,
                    note,
                }
            }
        };
        out.push(entry);
    }
    let source = match (
        sources.contains("billing_daemon"),
        sources.contains("price_table"),
    ) {
        (true, false) => "billing_daemon",
        (true, true) => "mixed",
        _ => "price_table",
    };
    let label = match source {
        "billing_daemon" => BILLING_LABEL.to_owned(),
        "mixed" => format!("{BILLING_LABEL} Tenants marked price_table: {PRICE_TABLE_LABEL}"),
        _ => PRICE_TABLE_LABEL.to_owned(),
    };
    Ok(Json(BillingEstimate {
        org_id: org.to_string(),
        period: period.label(),
        period_idx: period.index(),
        currency: prices.currency.clone(),
        source: source.to_owned(),
        label,
        tenants: out,
        total: money(total),
    }))
}

/// A billing service's line as the contract states it (its quantity is
/// already in the priced unit).
fn draft_line(d: &crate::upstream::billing::DraftLine) -> BillingLine {
    BillingLine {
        metric: d.metric.clone(),
        quantity: serde_json::Number::from_f64(d.quantity).unwrap_or_else(|| 0.into()),
        priced_quantity: None,
        per: None,
        unit: d.unit.clone(),
        unit_price: d.unit_price,
        amount: d.amount,
    }
}

/// `GET /api/orgs/{org}/nodes/config-template`: what a new node needs.
pub async fn config_template(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    PathParams(org): PathParams<String>,
    QueryParams(q): QueryParams<ConfigTemplateQuery>,
) -> Result<Json<ConfigTemplate>, ApiError> {
    let org = org_authorized(&p, Action::ReadFleet, &org)?;
    if ritma_db::orgs::org_get(&state.pool, org.as_str())
        .await?
        .is_none()
    {
        return Err(ApiError::NotFound(format!("org {org}")));
    }
    let tenant = q
        .tenant_id
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "default".into());
    let tenant = ritma_protocol::TenantId::new(tenant.clone())
        .map_err(|_| ApiError::BadRequest(format!("tenant_id {tenant:?} is not a valid id")))?;
    Ok(Json(crate::template::node_template(
        &state.fleet.template,
        &org,
        &tenant,
    )))
}

fn enforcement_counts(c: &telemetry::EnforcementCounts) -> EnforcementCounts {
    EnforcementCounts {
        allow: c.allow,
        deny: c.deny,
        throttle: c.throttle,
        isolate: c.isolate,
    }
}

fn usage_totals(u: &UsageTotals) -> ritma_api::usage::UsageTotals {
    ritma_api::usage::UsageTotals {
        decisions: u.decisions,
        dig_files: u.dig_files,
        storage_bytes: u.storage_bytes,
        snapshot_exports: u.snapshot_exports,
    }
}
