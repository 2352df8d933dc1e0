//! Exports as CSV or JSON, streamed: the filtered inventory, the audit trail
//! and usage by day. Rows are read in keyset pages and written as they come,
//! so an export of 100,000 nodes holds one page in memory, not the lot.

use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use futures::stream::{self, Stream, StreamExt};
use ritma_db::audit::{AuditFilter, AuditRecord, audit_list};
use ritma_db::nodes::{self, NodeFilter, NodeRecord};
use serde_json::{Value, json};

use super::fleet_common::org_authorized;
use super::nodes::filter_from;
use super::{AppState, PathParams, QueryParams};
use crate::auth::{Action, Principal};
use crate::error::ApiError;
use ritma_api::exports::{
    AuditExportQuery, ExportFormat as Format, NodeExportQuery, UsageExportQuery,
};
use ritma_api::nodes::NodeListQuery;

const PAGE: i64 = 1_000;

/// One CSV field: quoted when needed, and a leading `=`, `+`, `-`, `@`, tab
/// or carriage return defused with `'` (a spreadsheet would run it as a
/// formula: node-supplied values such as host names end up here).
pub fn csv_field(raw: &str) -> String {
    let defused = match raw.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{raw}"),
        _ => raw.to_owned(),
    };
    if defused.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", defused.replace('"', "\"\""))
    } else {
        defused
    }
}

fn csv_line(fields: &[String]) -> String {
    let mut line = fields
        .iter()
        .map(|f| csv_field(f))
        .collect::<Vec<_>>()
        .join(",");
    line.push('\n');
    line
}

/// A streamed file: CSV with a header row, or one JSON array.
fn streamed<S>(format: Format, name: &str, header_row: &[&str], rows: S) -> Response
where
    S: Stream<Item = Result<Vec<(String, Value)>, ApiError>> + Send + 'static,
{
    let head = match format {
        Format::Csv => csv_line(
            &header_row
                .iter()
                .map(|h| (*h).to_owned())
                .collect::<Vec<_>>(),
        ),
        Format::Json => "[".to_owned(),
    };
    let mut first = true;
    let body = stream::once(async move { Ok::<_, std::io::Error>(Bytes::from(head)) })
        .chain(rows.map(move |page| {
            let page = page.map_err(|e| std::io::Error::other(e.to_string()))?;
            let mut out = String::new();
            for fields in page {
                match format {
                    Format::Csv => {
                        out.push_str(&fields.0);
                        out.push('\n');
                    }
                    Format::Json => {
                        if !first {
                            out.push(',');
                        }
                        first = false;
                        out.push_str(&fields.1.to_string());
                    }
                }
            }
            Ok(Bytes::from(out))
        }))
        .chain(stream::once(async move {
            Ok(Bytes::from(if format == Format::Json { "]\n" } else { "" }))
        }));
    let (mime, ext) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "csv"),
        Format::Json => ("application/json", "json"),
    };
    let mut response = Response::new(Body::from_stream(body));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}.{ext}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    response
}

const NODE_COLUMNS: [&str; 14] = [
    "id",
    "tenant_id",
    "hostname",
    "status",
    "status_changed_at",
    "last_seen_at",
    "agent_version",
    "policy_assigned",
    "policy_version",
    "drifted",
    "key_warning",
    "labels",
    "os",
    "enrolled_at",
];

fn node_row(n: &NodeRecord) -> (String, Value) {
    let labels: Vec<String> = n.labels.0.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    let time =
        |t: Option<chrono::DateTime<chrono::Utc>>| t.map(|t| t.to_rfc3339()).unwrap_or_default();
    let csv = [
        n.id.clone(),
        n.tenant_id.clone(),
        n.hostname.clone(),
        n.status.clone(),
        n.status_changed_at.to_rfc3339(),
        time(n.last_seen_at),
        opt(&n.agent_version),
        opt(&n.policy_assigned),
        opt(&n.policy_version),
        n.drifted.to_string(),
        opt(&n.key_warning),
        labels.join(";"),
        opt(&n.host_os),
        n.enrolled_at.to_rfc3339(),
    ];
    let json = json!({
        "id": n.id, "tenant_id": n.tenant_id, "hostname": n.hostname, "status": n.status,
        "status_changed_at": n.status_changed_at, "last_seen_at": n.last_seen_at,
        "agent_version": n.agent_version, "policy_assigned": n.policy_assigned,
        "policy_version": n.policy_version, "drifted": n.drifted, "key_warning": n.key_warning,
        "labels": n.labels.0, "os": n.host_os, "enrolled_at": n.enrolled_at,
    });
    (csv_line(&csv).trim_end_matches('\n').to_owned(), json)
}

/// `GET /api/orgs/{org}/exports/nodes?format=csv|json&<node list filters>`
pub async fn nodes(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    PathParams(org): PathParams<String>,
    QueryParams(q): QueryParams<NodeExportQuery>,
) -> Result<Response, ApiError> {
    let org = org_authorized(&p, Action::ReadFleet, &org)?;
    let format = q.format.unwrap_or_default();
    let mut filter = filter_from(NodeListQuery {
        tenant: q.tenant,
        status: q.status,
        label: q.label,
        version: q.version,
        q: q.q,
        drifted: q.drifted,
        key_warning: q.key_warning,
        ..Default::default()
    })?;
    // Pages in id order, whatever the list's sort: a stable keyset.
    filter.sort = nodes::NodeSort::Name;
    filter.descending = false;
    filter.after = None;
    filter.limit = PAGE;
    filter.skip_count = true;
    let pool = state.pool.clone();
    let org_id = org.as_str().to_owned();
    let pages = stream::unfold(Some(filter), move |next: Option<NodeFilter>| {
        let (pool, org_id) = (pool.clone(), org_id.clone());
        async move {
            let mut filter = next?;
            match nodes::node_list(&pool, &org_id, &filter).await {
                Err(e) => Some((Err(ApiError::from(e)), None)),
                Ok(page) => {
                    let more = page.items.len() as i64 == filter.limit;
                    let rows: Vec<(String, Value)> = page.items.iter().map(node_row).collect();
                    let after = page.items.last().map(|n| (None, n.id.clone()));
                    let next = (more && after.is_some()).then(|| {
                        filter.after = after;
                        filter
                    });
                    Some((Ok(rows), next))
                }
            }
        }
    });
    Ok(streamed(
        format,
        &format!("{org}-nodes"),
        &NODE_COLUMNS,
        pages,
    ))
}

const AUDIT_COLUMNS: [&str; 9] = [
    "id", "at", "actor", "action", "target", "source", "before", "after", "hash",
];

fn audit_row(a: &AuditRecord) -> (String, Value) {
    let js = |v: &Option<Value>| v.as_ref().map(Value::to_string).unwrap_or_default();
    let hash = ritma_db::audit::hex(&a.hash);
    let csv = [
        a.id.to_string(),
        a.at.to_rfc3339(),
        a.actor.clone(),
        a.action.clone(),
        a.target.clone(),
        a.source.clone().unwrap_or_default(),
        js(&a.before),
        js(&a.after),
        hash,
    ];
    (
        csv_line(&csv).trim_end_matches('\n').to_owned(),
        serde_json::to_value(a).unwrap_or_default(),
    )
}

/// `GET /api/orgs/{org}/exports/audit?format=csv|json[&actor=&action=&target=]`,
/// newest first.
pub async fn audit(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    PathParams(org): PathParams<String>,
    QueryParams(q): QueryParams<AuditExportQuery>,
) -> Result<Response, ApiError> {
    let org = org_authorized(&p, Action::ReadAudit, &org)?;
    let format = q.format.unwrap_or_default();
    let filter = AuditFilter {
        actor: q.actor,
        action: q.action,
        target: q.target,
        before_id: None,
        limit: Some(PAGE),
    };
    let pool = state.pool.clone();
    let org_id = org.as_str().to_owned();
    let pages = stream::unfold(Some(filter), move |next: Option<AuditFilter>| {
        let (pool, org_id) = (pool.clone(), org_id.clone());
        async move {
            let mut filter = next?;
            match audit_list(&pool, &org_id, &filter).await {
                Err(e) => Some((Err(ApiError::from(e)), None)),
                Ok(page) => {
                    let more = page.len() as i64 == PAGE;
                    let rows = page.iter().map(audit_row).collect::<Vec<_>>();
                    filter.before_id = page.last().map(|a| a.id);
                    Some((Ok(rows), more.then_some(filter)))
                }
            }
        }
    });
    Ok(streamed(
        format,
        &format!("{org}-audit"),
        &AUDIT_COLUMNS,
        pages,
    ))
}

const USAGE_COLUMNS: [&str; 6] = [
    "day",
    "tenant_id",
    "decisions",
    "dig_files",
    "storage_bytes",
    "snapshot_exports",
];

/// `GET /api/orgs/{org}/exports/usage?format=csv|json&period=YYYY-MM`: each
/// tenant's metering per UTC day of the month.
pub async fn usage(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    PathParams(org): PathParams<String>,
    QueryParams(q): QueryParams<UsageExportQuery>,
) -> Result<Response, ApiError> {
    let org = org_authorized(&p, Action::ReadFleet, &org)?;
    let format = q.format.unwrap_or_default();
    let period = super::usage::period_of(&ritma_api::usage::PeriodQuery { period: q.period })?;
    let days = ritma_db::telemetry::usage_daily_by_tenant(
        &state.pool,
        org.as_str(),
        period.start(),
        period.end(),
    )
    .await?;
    let rows: Vec<(String, Value)> = days
        .iter()
        .map(|d| {
            let u = &d.usage;
            let csv = [
                d.day.date_naive().to_string(),
                d.tenant_id.clone(),
                u.decisions.to_string(),
                u.dig_files.to_string(),
                u.storage_bytes.to_string(),
                u.snapshot_exports.to_string(),
            ];
            let json = json!({
                "day": d.day.date_naive(), "tenant_id": d.tenant_id, "decisions": u.decisions,
                "dig_files": u.dig_files, "storage_bytes": u.storage_bytes,
                "snapshot_exports": u.snapshot_exports,
            });
            (csv_line(&csv).trim_end_matches('\n').to_owned(), json)
        })
        .collect();
    let name = format!("{org}-usage-{}", period.label());
    Ok(streamed(
        format,
        &name,
        &USAGE_COLUMNS,
        stream::once(async move { Ok(rows) }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        assert_eq!(csv_field("web-1"), "web-1");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_field("+1"), "'+1");
        assert_eq!(csv_field("@sum"), "'@sum");
        assert_eq!(csv_field("line\nbreak"), "\"line\nbreak\"");
    }
}
