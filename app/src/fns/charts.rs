//! Server functions of the charts: the controller's rollups, drawn on the console
//! server (`server::charts`) so the browser receives finished HTML.

use crate::model::AppError;
use crate::model::chart::ChartSet;
use leptos::prelude::*;

/// `range` as the controller names it (`24h`, `7d`, `30d`); anything else is refused.
#[cfg(feature = "ssr")]
fn range_of(range: &str) -> Result<ritma_db::activity::Range, AppError> {
    match range.trim() {
        "" => Ok(ritma_db::activity::Range::Day),
        r => ritma_db::activity::Range::parse(r).ok_or_else(|| {
            AppError::BadRequest(format!("range must be one of 24h, 7d, 30d, not {r:?}"))
        }),
    }
}

/// The dashboard's charts of the session's org over `range`, for one tenant or
/// (empty) all of them. The tenant id is checked by the controller (a 400 here).
#[server]
pub async fn get_activity_charts(range: String, tenant: String) -> Result<ChartSet, AppError> {
    use crate::server::charts::activity::activity_charts;
    let (st, s) = super::ctx::current().await?;
    let range = range_of(&range)?;
    let tenant = Some(tenant.trim().to_owned()).filter(|t| !t.is_empty());
    let query = ritma_api::activity::ActivityQuery {
        range: Some(range.as_str().to_owned()),
        tenant_id: tenant.clone(),
    };
    let org = ritma_api::params::OrgPath::new(&s.org);
    let activity = st
        .api
        .call::<ritma_api::routes::GetActivity>(&s.token, &org, &query, &())
        .await?;
    let charts = activity_charts(range, tenant.as_deref(), &activity.buckets);
    Ok(ChartSet {
        range: range.as_str().to_owned(),
        tenant,
        charts: charts.into_iter().map(|c| c.finish()).collect(),
    })
}

/// Node `id`'s enforcement events over `range`.
#[server]
pub async fn get_node_events_chart(id: String, range: String) -> Result<ChartSet, AppError> {
    use crate::server::charts::activity::node_events_chart;
    let (st, s) = super::ctx::current().await?;
    let range = range_of(&range)?;
    let path = ritma_api::params::OrgNodePath::new(&s.org, &id);
    // One page holds the whole range: 720 hours at most, 1,000 per page.
    let query = ritma_api::usage::HoursPageQuery {
        hours: Some(range.hours()),
        limit: Some(1000),
        cursor: None,
    };
    let events = st
        .api
        .call::<ritma_api::routes::GetNodeEvents>(&s.token, &path, &query, &())
        .await?;
    let chart = node_events_chart(range, chrono::Utc::now(), &events.buckets);
    Ok(ChartSet {
        range: range.as_str().to_owned(),
        tenant: None,
        charts: vec![chart.finish()],
    })
}
