//! `GET /api/orgs/{org}/activity`: the dashboard charts' series (decisions,
//! DIG files, enforcement decisions by type) over a fixed range, org-wide or
//! for one tenant. Read from per-tenant hourly rollups only, in a bounded
//! number of buckets: the work does not grow with the number of nodes.

use axum::extract::State;
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use ritma_api::activity::{Activity, ActivityQuery};
use ritma_api::usage::EnforcementCounts;
use ritma_db::activity::{self, ActivityBucket, Range};
use ritma_protocol::TenantId;

use super::fleet_common::org_authorized;
use super::{AppState, PathParams, QueryParams};
use crate::auth::{Action, Principal};
use crate::error::ApiError;

fn range_of(q: &ActivityQuery) -> Result<Range, ApiError> {
    match q.range.as_deref().filter(|r| !r.is_empty()) {
        None => Ok(Range::Day),
        Some(r) => Range::parse(r).ok_or_else(|| {
            ApiError::BadRequest(format!("range must be one of 24h, 7d, 30d, not {r:?}"))
        }),
    }
}

fn tenant_of(q: &ActivityQuery) -> Result<Option<TenantId>, ApiError> {
    q.tenant_id
        .as_deref()
        .filter(|t| !t.is_empty())
        .map(|t| {
            TenantId::new(t.to_owned())
                .map_err(|_| ApiError::BadRequest(format!("tenant_id {t:?} is not a valid id")))
        })
        .transpose()
}

/// Every bucket of `starts`, zero where nothing was rolled up (charts need
/// the gaps); rows outside the buckets are dropped.
fn zero_filled(starts: &[DateTime<Utc>], rows: Vec<ActivityBucket>) -> Vec<ActivityBucket> {
    let mut rows = rows.into_iter().peekable();
    starts
        .iter()
        .map(|&at| {
            while rows.peek().is_some_and(|r| r.at < at) {
                rows.next();
            }
            match rows.next_if(|r| r.at == at) {
                Some(r) => r,
                None => ActivityBucket {
                    at,
                    ..ActivityBucket::default()
                },
            }
        })
        .collect()
}

/// `GET /api/orgs/{org}/activity?range=24h|7d|30d&tenant_id=T`.
pub async fn activity(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    PathParams(org): PathParams<String>,
    QueryParams(q): QueryParams<ActivityQuery>,
) -> Result<Json<Activity>, ApiError> {
    let org = org_authorized(&p, Action::ReadFleet, &org)?;
    let range = range_of(&q)?;
    let tenant = tenant_of(&q)?;
    let now = Utc::now();
    let starts = range.starts(now);
    let (from, to) = match (starts.first(), starts.last()) {
        (Some(&first), Some(&last)) => (first, last + range.step()),
        _ => return Err(ApiError::Internal("a range without buckets".into())),
    };
    let rows = activity::activity_series(
        &state.pool,
        org.as_str(),
        tenant.as_ref().map(TenantId::as_str),
        from,
        to,
        range.step().num_seconds(),
    )
    .await?;
    Ok(Json(Activity {
        org_id: org.to_string(),
        tenant_id: tenant.map(|t| t.as_str().to_owned()),
        range: range.as_str().to_owned(),
        step_secs: range.step().num_seconds(),
        from,
        to,
        now,
        buckets: zero_filled(&starts, rows)
            .into_iter()
            .map(|b| ritma_api::activity::ActivityBucket {
                at: b.at,
                decisions: b.decisions,
                dig_files: b.dig_files,
                enforcement: EnforcementCounts {
                    allow: b.allow,
                    deny: b.deny,
                    throttle: b.throttle,
                    isolate: b.isolate,
                },
            })
            .collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().expect("a timestamp")
    }

    #[test]
    fn gaps_are_zero_and_strays_dropped() {
        let starts = [at("2026-12-08T00:00:00Z"), at("2026-12-08T01:00:00Z")];
        let row = |s: &str, decisions| ActivityBucket {
            at: at(s),
            decisions,
            ..ActivityBucket::default()
        };
        let filled = zero_filled(
            &starts,
            vec![
                row("2026-12-07T23:00:00Z", 9),
                row("2026-12-08T01:00:00Z", 5),
            ],
        );
        assert_eq!(
            filled,
            vec![
                row("2026-12-08T00:00:00Z", 0),
                row("2026-12-08T01:00:00Z", 5)
            ]
        );
    }

    #[test]
    fn bad_tenants_and_ranges_are_requests_errors() {
        let q = |range: &str, tenant: &str| ActivityQuery {
            range: Some(range.into()),
            tenant_id: Some(tenant.into()),
        };
        assert!(matches!(
            range_of(&q("1y", "")),
            Err(ApiError::BadRequest(_))
        ));
        assert!(matches!(
            tenant_of(&q("7d", "a b/../c")),
            Err(ApiError::BadRequest(_))
        ));
        assert_eq!(tenant_of(&q("7d", "")).ok().flatten(), None);
    }
}
