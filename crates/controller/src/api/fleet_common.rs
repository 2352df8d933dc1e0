//! Shared by the fleet-operations handlers: routes that name a node without
//! its org (`/api/nodes/{id}/...`) find the node first, then authorise.

use ritma_db::nodes::{self, NodeRecord};
use ritma_protocol::{NodeId, OrgId};

use super::{AppState, path_id};
use crate::auth::{Action, Principal};
use crate::error::ApiError;

/// The node `raw_id`, if the principal may do `action` in its org. A node of
/// an org the principal has no role in is "not found", like a missing one.
pub async fn node_authorized(
    state: &AppState,
    p: &Principal,
    action: Action,
    raw_id: &str,
) -> Result<NodeRecord, ApiError> {
    let id: NodeId = path_id(raw_id, "node")?;
    let node = nodes::node_get_any(&state.pool, id.as_str())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("node {id}")))?;
    let org: OrgId = path_id(&node.org_id, "org")?;
    p.authorize(&org, Action::ReadFleet)
        .map_err(|_| ApiError::NotFound(format!("node {id}")))?;
    p.authorize(&org, action)?;
    Ok(node)
}

/// The org `raw`, if the principal may do `action` there.
pub fn org_authorized(p: &Principal, action: Action, raw: &str) -> Result<OrgId, ApiError> {
    let org: OrgId = path_id(raw, "org")?;
    p.authorize(&org, action)?;
    Ok(org)
}

/// Take one unit of `key`'s budget of requests that make someone else work
/// (a node's dry runs and diagnostic bundles, a channel's test sends), so no
/// one (or no script) turns nodes into scanners or receivers into targets;
/// `what` names the requests in the refusal.
pub fn work_budget(state: &AppState, key: &str, what: &str) -> Result<(), ApiError> {
    state
        .dry_run_limiter
        .take(key)
        .map_err(|wait| ApiError::RateLimited {
            code: "rate_limited",
            message: format!("too many {what}; retry after the Retry-After delay"),
            retry_after_secs: wait.as_secs_f64().ceil() as u64,
        })
}
