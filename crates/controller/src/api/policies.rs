//! Rulepacks, assignments and each node's policy (issue: fleet operations).

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use ritma_api::policies::{
    AssignedPolicy, AssignmentCreate, AssignmentList, AssignmentView, NodeAssign, NodePolicies,
    RulepackCreate, RulepackList, RulepackRevisions, RulepackView,
};
use ritma_db::policies::{self, AssignmentRecord, NewAssignment, NewRulepack, RulepackRecord};
use ritma_protocol::policy::{content_sha256, policy_version};
use ritma_protocol::{EnforcementMode, NodeId};
use serde_json::json;

use super::fleet_common::{node_authorized, org_authorized};
use super::{AppState, JsonBody, PathParams, path_id};
use crate::audit::{self, WithStates};
use crate::auth::{Action, Principal};
use crate::commands;
use crate::error::ApiError;
use crate::trust::ControlKeys;

const MAX_RULES_BYTES: usize = 48 * 1024;

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::BadRequest(msg.into())
}

fn rulepack_view(r: RulepackRecord, with_content: bool) -> RulepackView {
    RulepackView {
        version: policy_version(&r.name, r.revision),
        latest_revision: r.revision,
        name: r.name,
        revision: r.revision,
        description: r.description,
        frameworks: r.frameworks.0,
        sha256: r.sha256,
        content: with_content.then_some(r.content),
        created_by: r.created_by,
        created_at: r.created_at,
        signed_by: r.signed_by,
    }
}

fn assignment_view(a: AssignmentRecord) -> AssignmentView {
    AssignmentView {
        id: a.id,
        scope_kind: a.scope_kind,
        scope_value: a.scope_value,
        rulepack: a.rulepack,
        revision: a.revision,
        mode: a.mode,
        created_by: a.created_by,
        created_at: a.created_at,
        nodes: a.nodes,
    }
}

pub async fn rulepack_list(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    PathParams(org): PathParams<String>,
) -> Result<Json<RulepackList>, ApiError> {
    let org = org_authorized(&p, Action::ReadFleet, &org)?;
    let items = policies::rulepack_list(&state.pool, org.as_str())
        .await?
        .into_iter()
        .map(|r| rulepack_view(r, false))
        .collect();
    Ok(Json(RulepackList { items }))
}

pub async fn rulepack_get(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    PathParams((org, name)): PathParams<(String, String)>,
) -> Result<Json<RulepackRevisions>, ApiError> {
    let org = org_authorized(&p, Action::ReadFleet, &org)?;
    let revisions: Vec<RulepackView> =
        policies::rulepack_revisions(&state.pool, org.as_str(), &name)
            .await?
            .into_iter()
            .map(|r| rulepack_view(r, true))
            .collect();
    if revisions.is_empty() {
        return Err(ApiError::NotFound(format!("rulepack {name}")));
    }
    Ok(Json(RulepackRevisions { name, revisions }))
}

fn rulepack_name_check(name: &str) -> Result<(), ApiError> {
    // Ids double as the policy version's prefix (`name@rev`): keep them plain.
    NodeId::new(name)
        .map(|_| ())
        .map_err(|_| bad("name must be 1-63 lowercase letters, digits or '-'"))
}

/// A new revision of a rulepack; nodes following its latest revision get it.
pub async fn rulepack_create(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    PathParams(org): PathParams<String>,
    JsonBody(body): JsonBody<RulepackCreate>,
) -> Result<(StatusCode, Json<RulepackView>), ApiError> {
    let org = org_authorized(&p, Action::ManageNodes, &org)?;
    rulepack_name_check(&body.name)?;
    if body.description.len() > 1024 {
        return Err(bad("description is longer than 1024 bytes"));
    }
    if body.frameworks.len() > 32
        || body
            .frameworks
            .iter()
            .any(|f| f.is_empty() || f.len() > 64 || f.chars().any(char::is_control))
    {
        return Err(bad("frameworks: at most 32 names of 1-64 characters"));
    }
    if !(body.rules.is_object() || body.rules.is_array()) {
        return Err(bad("rules must be a JSON object or array"));
    }
    let content = serde_json::to_string(&body.rules).map_err(|e| bad(e.to_string()))?;
    if content.len() > MAX_RULES_BYTES {
        return Err(bad(format!(
            "rules are {} bytes, at most {MAX_RULES_BYTES} allowed",
            content.len()
        )));
    }
    let sha256 = content_sha256(&content);
    let actor = p.actor();
    let mut tx = state.pool.begin().await.map_err(ritma_db::DbError::from)?;
    let key = state.control.key(org.as_str()).await?;
    let (record, created) = policies::rulepack_revision_insert(
        &mut tx,
        &NewRulepack {
            org_id: org.as_str(),
            name: &body.name,
            description: &body.description,
            frameworks: &body.frameworks,
            content: &content,
            sha256: &sha256,
            created_by: &actor,
        },
        // Signed here, at creation: what is in the row later is checked
        // against this by every node.
        |revision| {
            ControlKeys::rulepack_sign(
                &key,
                org.as_str(),
                &body.name,
                revision,
                &sha256,
                &body.frameworks,
            )
        },
    )
    .await?;
    let mut reassigned = vec![];
    if created {
        reassigned = policies::policies_recompute(&mut tx, org.as_str()).await?;
        audit::record(
            &mut tx,
            audit::entry(&p, Some(org.as_str()), "rulepack.create", &body.name).states(
                None,
                Some(json!({
                    "version": policy_version(&record.name, record.revision),
                    "sha256": record.sha256, "frameworks": record.frameworks.0,
                })),
            ),
        )
        .await?;
    }
    tx.commit().await.map_err(ritma_db::DbError::from)?;
    commands::policy_changed_send(&state.accounts, &state.control, org.as_str(), &reassigned).await;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(rulepack_view(record, false))))
}

/// Check an assignment against what exists; returns the label selector.
async fn assignment_check(
    state: &AppState,
    org: &str,
    a: &mut AssignmentCreate,
) -> Result<Option<std::collections::BTreeMap<String, String>>, ApiError> {
    EnforcementMode::parse(&a.mode).ok_or_else(|| bad("mode must be observe or enforce"))?;
    if policies::rulepack_get(&state.pool, org, &a.rulepack, a.revision)
        .await?
        .is_none()
    {
        return Err(bad(match a.revision {
            Some(r) => format!("rulepack {} has no revision {r}", a.rulepack),
            None => format!("rulepack {} does not exist", a.rulepack),
        }));
    }
    a.scope_value = a.scope_value.trim().to_owned();
    match a.scope_kind.as_str() {
        "org" => {
            a.scope_value.clear();
            Ok(None)
        }
        "tenant" | "node" => {
            ritma_protocol::TenantId::new(a.scope_value.clone())
                .map_err(|_| bad(format!("scope_value {:?} is not a valid id", a.scope_value)))?;
            if a.scope_kind == "node"
                && ritma_db::nodes::node_get(&state.pool, org, &a.scope_value)
                    .await?
                    .is_none()
            {
                return Err(bad(format!("node {} does not exist", a.scope_value)));
            }
            Ok(None)
        }
        "label" => {
            let (k, v) = a
                .scope_value
                .split_once('=')
                .filter(|(k, v)| !k.trim().is_empty() && !v.trim().is_empty())
                .ok_or_else(|| bad("a label scope is key=value"))?;
            Ok(Some([(k.trim().to_owned(), v.trim().to_owned())].into()))
        }
        other => Err(bad(format!(
            "scope_kind must be org, tenant, label or node, not {other:?}"
        ))),
    }
}

async fn assignment_add(
    state: &AppState,
    p: &Principal,
    org: &str,
    mut body: AssignmentCreate,
) -> Result<AssignmentRecord, ApiError> {
    let selector = assignment_check(state, org, &mut body).await?;
    let actor = p.actor();
    let mut tx = state.pool.begin().await.map_err(ritma_db::DbError::from)?;
    let id = policies::assignment_insert(
        &mut tx,
        &NewAssignment {
            org_id: org,
            scope_kind: &body.scope_kind,
            scope_value: &body.scope_value,
            selector,
            rulepack: &body.rulepack,
            revision: body.revision,
            mode: &body.mode,
            created_by: &actor,
        },
    )
    .await?;
    let reassigned = policies::policies_recompute(&mut tx, org).await?;
    audit::record(
        &mut tx,
        audit::entry(p, Some(org), "policy.assign", id.to_string()).states(
            None,
            Some(json!({
                "scope_kind": body.scope_kind, "scope_value": body.scope_value,
                "rulepack": body.rulepack, "revision": body.revision, "mode": body.mode,
                "nodes_reassigned": reassigned.len(),
            })),
        ),
    )
    .await?;
    tx.commit().await.map_err(ritma_db::DbError::from)?;
    commands::policy_changed_send(&state.accounts, &state.control, org, &reassigned).await;
    policies::assignment_get(&state.pool, org, id)
        .await?
        .ok_or_else(|| ApiError::Internal("assignment vanished".into()))
}

pub async fn assignment_list(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    PathParams(org): PathParams<String>,
) -> Result<Json<AssignmentList>, ApiError> {
    let org = org_authorized(&p, Action::ReadFleet, &org)?;
    let items = policies::assignment_list(&state.pool, org.as_str()).await?;
    Ok(Json(AssignmentList {
        items: items.into_iter().map(assignment_view).collect(),
    }))
}

pub async fn assignment_create(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    PathParams(org): PathParams<String>,
    JsonBody(body): JsonBody<AssignmentCreate>,
) -> Result<(StatusCode, Json<AssignmentView>), ApiError> {
    let org = org_authorized(&p, Action::ManageNodes, &org)?;
    let record = assignment_add(&state, &p, org.as_str(), body).await?;
    Ok((StatusCode::CREATED, Json(assignment_view(record))))
}

pub async fn assignment_delete(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    PathParams((org, id)): PathParams<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let org = org_authorized(&p, Action::ManageNodes, &org)?;
    let id: uuid::Uuid = path_id(&id, "assignment")?;
    let before = policies::assignment_get(&state.pool, org.as_str(), id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("assignment {id}")))?;
    let mut tx = state.pool.begin().await.map_err(ritma_db::DbError::from)?;
    if !policies::assignment_delete(&mut tx, org.as_str(), id).await? {
        return Err(ApiError::NotFound(format!("assignment {id}")));
    }
    let reassigned = policies::policies_recompute(&mut tx, org.as_str()).await?;
    audit::record(
        &mut tx,
        audit::entry(&p, Some(org.as_str()), "policy.unassign", id.to_string())
            .states(serde_json::to_value(&before).ok(), None),
    )
    .await?;
    tx.commit().await.map_err(ritma_db::DbError::from)?;
    commands::policy_changed_send(&state.accounts, &state.control, org.as_str(), &reassigned).await;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/nodes/{id}/policies`: assigned vs applied, and why.
pub async fn node_policies(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    PathParams(id): PathParams<String>,
) -> Result<Json<NodePolicies>, ApiError> {
    let node = node_authorized(&state, &p, Action::ReadFleet, &id).await?;
    let assignments = policies::assignments_for_node(&state.pool, &node.id).await?;
    let assigned =
        policies::policy_for_node(&state.pool, &node.id)
            .await?
            .map(|(pack, mode, _)| {
                let winner = assignments.first();
                AssignedPolicy {
                    version: policy_version(&pack.name, pack.revision),
                    rulepack: pack.name,
                    revision: pack.revision,
                    mode,
                    sha256: pack.sha256,
                    assignment_id: winner.map(|a| a.id),
                    scope_kind: winner.map(|a| a.scope_kind.clone()),
                    scope_value: winner.map(|a| a.scope_value.clone()),
                }
            });
    Ok(Json(NodePolicies {
        node_id: node.id,
        assigned,
        applied: node.policy_version,
        last_policy_sync_at: node.last_policy_sync_at,
        drifted: node.drifted,
        drift_since: node.drift_since,
        assignments: assignments.into_iter().map(assignment_view).collect(),
    }))
}

/// `POST /api/nodes/{id}/policies`: a node-scoped assignment (replacing the
/// node's previous one).
pub async fn node_assign(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    PathParams(id): PathParams<String>,
    JsonBody(body): JsonBody<NodeAssign>,
) -> Result<(StatusCode, Json<AssignmentView>), ApiError> {
    let node = node_authorized(&state, &p, Action::ManageNodes, &id).await?;
    let record = assignment_add(
        &state,
        &p,
        &node.org_id,
        AssignmentCreate {
            scope_kind: "node".into(),
            scope_value: node.id.clone(),
            rulepack: body.rulepack,
            revision: body.revision,
            mode: body.mode,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(assignment_view(record))))
}
