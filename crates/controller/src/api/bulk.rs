//! Bulk jobs: preview a selection and an action, start the job (audited,
//! bounded per org, idempotent by key), follow it and read its result per
//! node. The work itself is the bulk worker's (`crate::bulk::worker`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use ritma_api::bulk::{
    BulkJobItemPage, BulkJobItemQuery, BulkJobItemState, BulkJobItemView, BulkJobList,
    BulkJobListQuery, BulkJobPreview, BulkJobRequest, BulkJobView, SampleNode,
};
use ritma_db::bulk_jobs::{self as store, BulkJobItem, BulkJobRecord, NewBulkJob};
use ritma_db::nodes::{self, NodeRecord};
use ritma_protocol::jobs::{BulkAction, BulkJobState};
use serde_json::json;

use super::fleet_common::org_authorized;
use super::nodes::stored_status;
use super::{AppState, JsonBody, PathParams, QueryParams, path_id};
use crate::audit::{self, WithStates};
use crate::auth::{Action, Principal};
use crate::bulk::actions::JobAction;
use crate::bulk::selection::Selection;
use crate::error::ApiError;

/// Nodes shown in a preview.
const SAMPLE: i64 = 10;
/// Bodies of job requests may list up to 10,000 ids.
pub const MAX_JOB_BODY_BYTES: usize = 1024 * 1024;

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::BadRequest(msg.into())
}

struct Checked {
    action: JobAction,
    selection: Selection,
    key: Option<String>,
}

async fn check(state: &AppState, org: &str, body: BulkJobRequest) -> Result<Checked, ApiError> {
    let action = JobAction::parse(&body.action, body.params)?;
    let selection = Selection::parse(body.selection)?;
    let key = body.idempotency_key.map(|k| k.trim().to_owned());
    if let Some(k) = &key
        && (k.is_empty() || k.len() > 128 || k.chars().any(char::is_control))
    {
        return Err(bad("idempotency_key: 1-128 printable characters"));
    }
    action.check(&state.pool, org).await?;
    Ok(Checked {
        action,
        selection,
        key,
    })
}

fn sample_node(n: NodeRecord) -> Result<SampleNode, ApiError> {
    Ok(SampleNode {
        status: stored_status(&n.status)?,
        id: n.id,
        tenant_id: n.tenant_id,
        hostname: n.hostname,
        labels: n.labels.0,
    })
}

/// The API's view of a job record.
pub(crate) fn job_view(j: BulkJobRecord) -> Result<BulkJobView, ApiError> {
    let action = BulkAction::parse(&j.action)
        .ok_or_else(|| ApiError::Internal(format!("stored bulk action {:?}", j.action)))?;
    let state = BulkJobState::parse(&j.state)
        .ok_or_else(|| ApiError::Internal(format!("stored bulk job state {:?}", j.state)))?;
    Ok(BulkJobView {
        id: j.id,
        org_id: j.org_id,
        action,
        params: j.params,
        selection: j.selection,
        idempotency_key: j.idempotency_key,
        state,
        expanded: j.expanded,
        total: j.total,
        succeeded: j.succeeded,
        failed: j.failed,
        skipped: j.skipped,
        error: j.error,
        created_by: j.created_by,
        created_at: j.created_at,
        started_at: j.started_at,
        finished_at: j.finished_at,
    })
}

fn item_view(i: BulkJobItem) -> Result<BulkJobItemView, ApiError> {
    let state = BulkJobItemState::parse(&i.state)
        .ok_or_else(|| ApiError::Internal(format!("stored bulk item state {:?}", i.state)))?;
    Ok(BulkJobItemView {
        node_id: i.node_id,
        state,
        detail: i.detail,
        done_at: i.done_at,
    })
}

async fn preview_of(state: &AppState, org: &str, c: &Checked) -> Result<BulkJobPreview, ApiError> {
    let (count, unknown_ids, sample) = match &c.selection {
        Selection::Ids(ids) => {
            let (count, sample) = nodes::nodes_among(&state.pool, org, ids, SAMPLE).await?;
            (count, ids.len() as i64 - count, sample)
        }
        Selection::Filter(_, f) => {
            let mut page_filter = f.clone();
            page_filter.limit = SAMPLE;
            page_filter.skip_count = true;
            let (count, page) = futures::try_join!(
                nodes::node_count_matching(&state.pool, org, f),
                nodes::node_list(&state.pool, org, &page_filter)
            )?;
            (count, 0, page.items)
        }
    };
    Ok(BulkJobPreview {
        action: c.action.kind(),
        params: c.action.params(),
        count,
        unknown_ids,
        sample: sample
            .into_iter()
            .map(sample_node)
            .collect::<Result<_, _>>()?,
    })
}

/// `POST /api/orgs/{org}/bulk-jobs/preview`: what a job would do, changing nothing.
pub async fn preview(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    PathParams(org): PathParams<String>,
    JsonBody(body): JsonBody<BulkJobRequest>,
) -> Result<Json<BulkJobPreview>, ApiError> {
    let org = org_authorized(&p, Action::ManageNodes, &org)?;
    let checked = check(&state, org.as_str(), body).await?;
    Ok(Json(preview_of(&state, org.as_str(), &checked).await?))
}

/// `POST /api/orgs/{org}/bulk-jobs`: start a job (201), or answer the job
/// an earlier request with the same idempotency key started (200).
pub async fn create(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    PathParams(org): PathParams<String>,
    JsonBody(body): JsonBody<BulkJobRequest>,
) -> Result<(StatusCode, Json<BulkJobView>), ApiError> {
    let org = org_authorized(&p, Action::ManageNodes, &org)?;
    let c = check(&state, org.as_str(), body).await?;
    let expected = match &c.selection {
        Selection::Ids(_) => 0,
        Selection::Filter(_, f) => nodes::node_count_matching(&state.pool, org.as_str(), f).await?,
    };
    let actor = p.actor();
    let mut tx = state.pool.begin().await.map_err(ritma_db::DbError::from)?;
    store::bulk_job_org_lock(&mut tx, org.as_str()).await?;
    if let Some(key) = &c.key
        && let Some(existing) = store::bulk_job_by_key(&mut tx, org.as_str(), key).await?
    {
        if existing.action != c.action.kind().as_str() {
            return Err(ApiError::Conflict(format!(
                "idempotency_key {key:?} already started a {} job",
                existing.action
            )));
        }
        return Ok((StatusCode::OK, Json(job_view(existing)?)));
    }
    let active = store::bulk_jobs_active_count(&mut tx, org.as_str()).await?;
    let cap = state.bulk.active_per_org.max(1);
    if active >= cap {
        return Err(ApiError::RateLimited {
            code: "too_many_jobs",
            message: format!(
                "{org} has {active} bulk jobs pending or running, at most {cap}: retry when one ends"
            ),
            retry_after_secs: 5,
        });
    }
    let params = c.action.params();
    let selection = c.selection.stored();
    let mut job = store::bulk_job_create(
        &mut tx,
        &NewBulkJob {
            org_id: org.as_str(),
            action: c.action.kind().as_str(),
            params: &params,
            selection: &selection,
            idempotency_key: c.key.as_deref(),
            created_by: &actor,
            source: p.source.as_deref(),
            total: i32::try_from(expected).unwrap_or(i32::MAX),
        },
    )
    .await?;
    if let Selection::Ids(ids) = &c.selection {
        job = store::bulk_job_items_insert_ids(&mut tx, &job, ids).await?;
    }
    audit::record(
        &mut tx,
        audit::entry(
            &p,
            Some(org.as_str()),
            "bulk_job.create",
            job.id.to_string(),
        )
        .states(
            None,
            Some(json!({
                "action": job.action, "params": params,
                "selection": c.selection.summary(), "total": job.total,
                "skipped": job.skipped,
            })),
        ),
    )
    .await?;
    tx.commit().await.map_err(ritma_db::DbError::from)?;
    state.bulk_wake.notify_one();
    tracing::info!(job = %job.id, org = %org, action = %job.action, total = job.total, "bulk job created");
    Ok((StatusCode::CREATED, Json(job_view(job)?)))
}

/// `GET /api/orgs/{org}/bulk-jobs`: the org's recent jobs, newest first.
pub async fn list(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    PathParams(org): PathParams<String>,
    QueryParams(q): QueryParams<BulkJobListQuery>,
) -> Result<Json<BulkJobList>, ApiError> {
    let org = org_authorized(&p, Action::ReadFleet, &org)?;
    let limit = q.limit.unwrap_or(20).clamp(1, 100);
    let items = store::bulk_job_list(&state.pool, org.as_str(), limit).await?;
    Ok(Json(BulkJobList {
        items: items.into_iter().map(job_view).collect::<Result<_, _>>()?,
    }))
}

async fn job_of(
    state: &AppState,
    p: &Principal,
    org: &str,
    id: &str,
) -> Result<BulkJobRecord, ApiError> {
    let org = org_authorized(p, Action::ReadFleet, org)?;
    let id: uuid::Uuid = path_id(id, "bulk job")?;
    store::bulk_job_get(&state.pool, org.as_str(), id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("bulk job {id}")))
}

/// `GET /api/orgs/{org}/bulk-jobs/{id}`
pub async fn get(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    PathParams((org, id)): PathParams<(String, String)>,
) -> Result<Json<BulkJobView>, ApiError> {
    Ok(Json(job_view(job_of(&state, &p, &org, &id).await?)?))
}

/// `GET /api/orgs/{org}/bulk-jobs/{id}/items`: the result per node, in
/// keyset pages.
pub async fn items(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    PathParams((org, id)): PathParams<(String, String)>,
    QueryParams(q): QueryParams<BulkJobItemQuery>,
) -> Result<Json<BulkJobItemPage>, ApiError> {
    let job = job_of(&state, &p, &org, &id).await?;
    if let Some(s) = q.state.as_deref()
        && !matches!(s, "pending" | "succeeded" | "failed" | "skipped")
    {
        return Err(bad("state must be pending, succeeded, failed or skipped"));
    }
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let items = store::bulk_job_items_list(
        &state.pool,
        job.id,
        q.state.as_deref(),
        q.after.as_deref(),
        limit,
    )
    .await?;
    let next_after = (items.len() as i64 == limit)
        .then(|| items.last().map(|i| i.node_id.clone()))
        .flatten();
    Ok(Json(BulkJobItemPage {
        items: items.into_iter().map(item_view).collect::<Result<_, _>>()?,
        next_after,
    }))
}
