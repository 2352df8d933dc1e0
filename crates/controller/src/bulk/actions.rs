//! What a bulk job does, checked when it is asked for, and applied to one
//! page of nodes inside the worker's transaction.

use std::collections::HashMap;

use ritma_api::bulk::{AddLabelsParams, AssignRulepackParams, RemoveLabelsParams};
use ritma_db::bulk_jobs::{BulkJobRecord, ItemOutcome};
use ritma_db::nodes::{self, NodeRecord};
use ritma_db::outbox::{StatusTransition, transitions_record};
use ritma_db::policies::{self, NewAssignment, PolicyReassigned};
use ritma_protocol::enrollment::MAX_LABELS;
use ritma_protocol::jobs::BulkAction;
use ritma_protocol::{EnforcementMode, NodeStatus};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::{PgPool, Postgres, Transaction};

use crate::error::ApiError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

#[derive(Debug, Clone, PartialEq)]
pub enum JobAction {
    AssignRulepack(AssignRulepackParams),
    AddLabels(AddLabelsParams),
    RemoveLabels(RemoveLabelsParams),
    Decommission,
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::BadRequest(msg.into())
}

fn params_of<T: serde::de::DeserializeOwned>(action: &str, params: Value) -> Result<T, ApiError> {
    let params = if params.is_null() {
        Value::Object(Default::default())
    } else {
        params
    };
    serde_json::from_value(params).map_err(|e| bad(format!("params of {action}: {e}")))
}

impl JobAction {
    /// The action and its parameters as the API takes them, checked for
    /// shape (what exists in the org is [`JobAction::check`]).
    pub fn parse(action: &str, params: Value) -> Result<Self, ApiError> {
        let kind = BulkAction::parse(action).ok_or_else(|| {
            bad(format!(
                "action must be assign_rulepack, add_labels, remove_labels or decommission, not {:?}",
                action.chars().take(40).collect::<String>()
            ))
        })?;
        let parsed = match kind {
            BulkAction::AssignRulepack => {
                let p: AssignRulepackParams = params_of(action, params)?;
                EnforcementMode::parse(&p.mode)
                    .ok_or_else(|| bad("params.mode must be observe or enforce"))?;
                if p.revision.is_some_and(|r| r < 1) {
                    return Err(bad("params.revision must be at least 1"));
                }
                Self::AssignRulepack(p)
            }
            BulkAction::AddLabels => {
                let p: AddLabelsParams = params_of(action, params)?;
                if p.labels.is_empty() {
                    return Err(bad("params.labels is empty"));
                }
                ritma_protocol::enrollment::labels(&p.labels)
                    .map_err(|e| bad(format!("params: {e}")))?;
                Self::AddLabels(p)
            }
            BulkAction::RemoveLabels => {
                let p: RemoveLabelsParams = params_of(action, params)?;
                if p.keys.is_empty() || p.keys.len() > MAX_LABELS {
                    return Err(bad(format!("params.keys: 1 to {MAX_LABELS} label keys")));
                }
                if p.keys.iter().any(|k| k.is_empty() || k.len() > 63) {
                    return Err(bad("params.keys: each key is 1-63 characters"));
                }
                Self::RemoveLabels(p)
            }
            BulkAction::Decommission => {
                let _: NoParams = params_of(action, params)?;
                Self::Decommission
            }
        };
        Ok(parsed)
    }

    /// What must exist in the org (the rulepack to assign).
    pub async fn check(&self, pool: &PgPool, org: &str) -> Result<(), ApiError> {
        if let Self::AssignRulepack(p) = self
            && policies::rulepack_get(pool, org, &p.rulepack, p.revision)
                .await?
                .is_none()
        {
            return Err(bad(match p.revision {
                Some(r) => format!("rulepack {} has no revision {r}", p.rulepack),
                None => format!("rulepack {} does not exist", p.rulepack),
            }));
        }
        Ok(())
    }

    pub fn kind(&self) -> BulkAction {
        match self {
            Self::AssignRulepack(_) => BulkAction::AssignRulepack,
            Self::AddLabels(_) => BulkAction::AddLabels,
            Self::RemoveLabels(_) => BulkAction::RemoveLabels,
            Self::Decommission => BulkAction::Decommission,
        }
    }

    /// The parameters as stored with the job.
    pub fn params(&self) -> Value {
        let v = match self {
            Self::AssignRulepack(p) => serde_json::to_value(p),
            Self::AddLabels(p) => serde_json::to_value(p),
            Self::RemoveLabels(p) => serde_json::to_value(p),
            Self::Decommission => Ok(Value::Object(Default::default())),
        };
        v.unwrap_or(Value::Null)
    }

    /// A stored job's action (checked again: the worker trusts no row).
    pub fn from_stored(job: &BulkJobRecord) -> Result<Self, ApiError> {
        Self::parse(&job.action, job.params.clone())
    }
}

/// What a committed page leaves to do outside the transaction.
#[derive(Debug, Default)]
pub struct PageEffects {
    /// Nodes whose assigned policy changed: they get `policy_changed`.
    pub reassigned: Vec<PolicyReassigned>,
    /// Keys were revoked: the org's account JWT is pushed to the broker.
    pub revoked: bool,
}

fn outcome(node_id: &str, state: &'static str, detail: Option<String>) -> ItemOutcome {
    ItemOutcome {
        node_id: node_id.to_owned(),
        state,
        detail,
    }
}

/// Apply the action to the pending `ids` of `job` (a page), returning one
/// outcome per id. Ids that are not (or no longer) nodes of the job's org
/// are skipped and never touched: every statement is bound to the org.
pub async fn apply(
    tx: &mut Transaction<'_, Postgres>,
    action: &JobAction,
    job: &BulkJobRecord,
    ids: &[String],
) -> Result<(Vec<ItemOutcome>, PageEffects), ApiError> {
    let org = job.org_id.as_str();
    let locked = nodes::nodes_lock_among(tx, org, ids).await?;
    let by_id: HashMap<&str, &NodeRecord> = locked.iter().map(|n| (n.id.as_str(), n)).collect();
    let mut outcomes = Vec::with_capacity(ids.len());
    let mut live: Vec<&NodeRecord> = Vec::with_capacity(locked.len());
    for id in ids {
        match by_id.get(id.as_str()) {
            None => outcomes.push(outcome(
                id,
                "skipped",
                Some("no such node in this org".into()),
            )),
            Some(n) if n.status == NodeStatus::Decommissioned.as_str() => {
                let why = match action {
                    JobAction::Decommission => "already decommissioned",
                    _ => "decommissioned",
                };
                outcomes.push(outcome(id, "skipped", Some(why.into())));
            }
            Some(n) => live.push(n),
        }
    }
    let mut effects = PageEffects::default();
    match action {
        JobAction::AddLabels(p) => {
            let mut changed = vec![];
            for n in live {
                let merged = n
                    .labels
                    .0
                    .keys()
                    .chain(p.labels.keys())
                    .collect::<std::collections::BTreeSet<_>>()
                    .len();
                if merged > MAX_LABELS {
                    let why = format!("would have {merged} labels, at most {MAX_LABELS} allowed");
                    outcomes.push(outcome(&n.id, "failed", Some(why)));
                } else if p.labels.iter().all(|(k, v)| n.labels.0.get(k) == Some(v)) {
                    outcomes.push(outcome(&n.id, "succeeded", Some("unchanged".into())));
                } else {
                    changed.push(n.id.clone());
                    outcomes.push(outcome(&n.id, "succeeded", None));
                }
            }
            if !changed.is_empty() {
                nodes::nodes_labels_merge(tx, org, &changed, &p.labels).await?;
                effects.reassigned = policies::policies_recompute_nodes(tx, org, &changed).await?;
            }
        }
        JobAction::RemoveLabels(p) => {
            let mut changed = vec![];
            for n in live {
                if p.keys.iter().any(|k| n.labels.0.contains_key(k)) {
                    changed.push(n.id.clone());
                    outcomes.push(outcome(&n.id, "succeeded", None));
                } else {
                    outcomes.push(outcome(&n.id, "succeeded", Some("unchanged".into())));
                }
            }
            if !changed.is_empty() {
                nodes::nodes_labels_remove(tx, org, &changed, &p.keys).await?;
                effects.reassigned = policies::policies_recompute_nodes(tx, org, &changed).await?;
            }
        }
        JobAction::AssignRulepack(p) => {
            let targets: Vec<String> = live.iter().map(|n| n.id.clone()).collect();
            if !targets.is_empty() {
                let assignment = NewAssignment {
                    org_id: org,
                    scope_kind: "node",
                    scope_value: "",
                    selector: None,
                    rulepack: &p.rulepack,
                    revision: p.revision,
                    mode: &p.mode,
                    created_by: &job.created_by,
                };
                policies::assignments_replace_for_nodes(tx, &assignment, &targets).await?;
                effects.reassigned = policies::policies_recompute_nodes(tx, org, &targets).await?;
            }
            outcomes.extend(targets.iter().map(|id| outcome(id, "succeeded", None)));
        }
        JobAction::Decommission => {
            let mut transitions = Vec::with_capacity(live.len());
            let mut keys = Vec::with_capacity(live.len());
            for n in live {
                nodes::node_decommission(tx, &n.id).await?;
                transitions.push(StatusTransition::of(
                    n,
                    &n.status,
                    NodeStatus::Decommissioned.as_str(),
                    format!("decommissioned by bulk job {}", job.id),
                ));
                keys.push(n.public_key.clone());
                outcomes.push(outcome(&n.id, "succeeded", Some("key revoked".into())));
            }
            if !keys.is_empty() {
                transitions_record(tx, &transitions).await?;
                ritma_db::orgs::org_revocations_insert(tx, org, &keys).await?;
                effects.revoked = true;
            }
        }
    }
    Ok((outcomes, effects))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn actions_and_their_params_are_checked() {
        assert!(JobAction::parse("decommission", Value::Null).is_ok());
        assert!(JobAction::parse("decommission", json!({"force": true})).is_err());
        assert!(JobAction::parse("reboot", json!({})).is_err());
        assert!(JobAction::parse("add_labels", json!({"labels": {}})).is_err());
        assert!(JobAction::parse("add_labels", json!({"labels": {"bad key": "x"}})).is_err());
        assert!(JobAction::parse("add_labels", json!({"labels": {"rack": "r1"}})).is_ok());
        assert!(JobAction::parse("remove_labels", json!({"keys": []})).is_err());
        assert!(
            JobAction::parse("assign_rulepack", json!({"rulepack": "base", "mode": "x"})).is_err()
        );
        let a = JobAction::parse(
            "assign_rulepack",
            json!({"rulepack": "base", "mode": "enforce"}),
        )
        .unwrap();
        assert_eq!(a.kind(), BulkAction::AssignRulepack);
        assert_eq!(
            JobAction::parse("assign_rulepack", a.params()).ok(),
            Some(a)
        );
    }
}
