//! Server functions of fleet operations: policies, connectors, keys, telemetry, usage
//! and the node configuration template.

use crate::model::AppError;
use crate::model::fleet::{
    Assignment, ConfigTemplate, Connector, DryRunReport, Key, KeysView, NodePolicy, NodeTelemetry,
    Rulepack, RulepackRevision, UsageView,
};
use leptos::prelude::*;

#[cfg(feature = "ssr")]
use ritma_api::params::{KeyPath, NoParams, NodeConnectorPath, NodePath, OrgNodePath, OrgPath};
#[cfg(feature = "ssr")]
use ritma_api::routes;

#[cfg(feature = "ssr")]
fn bad(msg: String) -> AppError {
    AppError::BadRequest(msg)
}

/// A trimmed, non-empty form value.
#[cfg(feature = "ssr")]
fn required(field: &str, value: &str) -> Result<String, AppError> {
    let v = value.trim();
    if v.is_empty() {
        Err(bad(format!("{field} is required")))
    } else {
        Ok(v.to_string())
    }
}

#[cfg(feature = "ssr")]
fn mode(value: &str) -> Result<String, AppError> {
    crate::model::fleet::one_of("mode", value, &["observe", "enforce"]).map_err(bad)
}

/// `YYYY-MM-DD` (a date input) as midnight UTC; RFC 3339 passes as is; empty: None.
#[cfg(feature = "ssr")]
fn date_time(field: &str, value: &str) -> Result<Option<chrono::DateTime<chrono::Utc>>, AppError> {
    let v = value.trim();
    if v.is_empty() {
        return Ok(None);
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d") {
        return Ok(Some(d.and_time(chrono::NaiveTime::MIN).and_utc()));
    }
    chrono::DateTime::parse_from_rfc3339(v)
        .map(|t| Some(t.with_timezone(&chrono::Utc)))
        .map_err(|_| bad(format!("{field} is not a date (YYYY-MM-DD)")))
}

// ---------------------------------------------------------------- policies

#[server]
pub async fn list_rulepacks() -> Result<Vec<Rulepack>, AppError> {
    use crate::model::fleet::Items;
    let (st, s) = super::ctx::current().await?;
    let list: Items<Rulepack> = st
        .api
        .call_as::<routes::ListRulepacks, _>(&s.token, &OrgPath::new(&s.org), &NoParams {}, &())
        .await?;
    Ok(list.items)
}

/// A new revision of rulepack `name` (`rules` is JSON text; `frameworks` comma separated).
#[server]
pub async fn create_rulepack(
    name: String,
    description: String,
    frameworks: String,
    rules: String,
) -> Result<RulepackRevision, AppError> {
    use crate::model::fleet::{parse_json_field, parse_list};
    let (st, s) = super::ctx::current().await?;
    let name = required("name", &name)?;
    let rules = parse_json_field("rules", &rules).map_err(bad)?;
    let body = ritma_api::policies::RulepackCreate {
        name,
        description: description.trim().to_owned(),
        frameworks: parse_list(&frameworks),
        rules,
    };
    st.api
        .call_as::<routes::CreateRulepack, _>(&s.token, &OrgPath::new(&s.org), &NoParams {}, &body)
        .await
}

#[server]
pub async fn list_assignments() -> Result<Vec<Assignment>, AppError> {
    use crate::model::fleet::Items;
    let (st, s) = super::ctx::current().await?;
    let list: Items<Assignment> = st
        .api
        .call_as::<routes::ListAssignments, _>(&s.token, &OrgPath::new(&s.org), &NoParams {}, &())
        .await?;
    Ok(list.items)
}

/// `{rulepack, revision?, mode}` from form values.
#[cfg(feature = "ssr")]
fn assignment_body(
    rulepack: &str,
    revision: &str,
    mode_value: &str,
) -> Result<ritma_api::policies::NodeAssign, AppError> {
    let revision = crate::model::fleet::parse_revision(revision).map_err(bad)?;
    let revision = revision
        .map(i32::try_from)
        .transpose()
        .map_err(|_| bad("revision is out of range".into()))?;
    Ok(ritma_api::policies::NodeAssign {
        rulepack: required("rulepack", rulepack)?,
        revision,
        mode: mode(mode_value)?,
    })
}

#[server]
pub async fn create_assignment(
    scope_kind: String,
    scope_value: String,
    rulepack: String,
    revision: String,
    mode: String,
) -> Result<Assignment, AppError> {
    use crate::model::fleet::one_of;
    let (st, s) = super::ctx::current().await?;
    let kind = one_of("scope", &scope_kind, &["org", "tenant", "label", "node"]).map_err(bad)?;
    let value = if kind == "org" {
        String::new()
    } else {
        required("scope value", &scope_value)?
    };
    if kind == "label" && !value.contains('=') {
        return Err(bad("a label scope is key=value".into()));
    }
    let target = assignment_body(&rulepack, &revision, &mode)?;
    let body = ritma_api::policies::AssignmentCreate {
        scope_kind: kind,
        scope_value: value,
        rulepack: target.rulepack,
        revision: target.revision,
        mode: target.mode,
    };
    st.api
        .call_as::<routes::CreateAssignment, _>(
            &s.token,
            &OrgPath::new(&s.org),
            &NoParams {},
            &body,
        )
        .await
}

#[server]
pub async fn delete_assignment(id: String) -> Result<(), AppError> {
    let (st, s) = super::ctx::current().await?;
    let path = crate::server::api::uuid_path(&s.org, &id)?;
    st.api
        .call::<routes::DeleteAssignment>(&s.token, &path, &NoParams {}, &())
        .await
}

#[server]
pub async fn get_node_policy(id: String) -> Result<NodePolicy, AppError> {
    let (st, s) = super::ctx::current().await?;
    st.api
        .call_as::<routes::GetNodePolicies, _>(&s.token, &NodePath::new(&id), &NoParams {}, &())
        .await
}

/// Assigns a rulepack to one node (replaces its previous node-scoped assignment).
#[server]
pub async fn assign_node_policy(
    node_id: String,
    rulepack: String,
    revision: String,
    mode: String,
) -> Result<Assignment, AppError> {
    let (st, s) = super::ctx::current().await?;
    let body = assignment_body(&rulepack, &revision, &mode)?;
    st.api
        .call_as::<routes::AssignNodePolicy, _>(
            &s.token,
            &NodePath::new(&node_id),
            &NoParams {},
            &body,
        )
        .await
}

// ---------------------------------------------------------------- connectors

#[server]
pub async fn list_node_connectors(node_id: String) -> Result<Vec<Connector>, AppError> {
    use crate::model::fleet::Items;
    let (st, s) = super::ctx::current().await?;
    let list: Items<Connector> = st
        .api
        .call_as::<routes::ListNodeConnectors, _>(
            &s.token,
            &NodePath::new(&node_id),
            &NoParams {},
            &(),
        )
        .await?;
    Ok(list.items)
}

/// Adds or replaces connector `connector_id` of a node; `config` is JSON text without
/// (or with a matching) `kind`.
#[server]
pub async fn put_connector(
    node_id: String,
    connector_id: String,
    kind: String,
    config: String,
) -> Result<Connector, AppError> {
    use crate::model::fleet::{CONNECTOR_KINDS, one_of, parse_json_field};
    let (st, s) = super::ctx::current().await?;
    let cid = required("connector id", &connector_id)?;
    let kind = one_of("kind", &kind, &CONNECTOR_KINDS).map_err(bad)?;
    let mut body = parse_json_field("config", &config).map_err(bad)?;
    let obj = body
        .as_object_mut()
        .ok_or_else(|| bad("config must be a JSON object".into()))?;
    obj.insert("kind".into(), kind.into());
    let config: ritma_api::connectors::ConnectorConfig =
        serde_json::from_value(body).map_err(|e| bad(format!("config: {e}")))?;
    st.api
        .call_as::<routes::PutNodeConnector, _>(
            &s.token,
            &NodeConnectorPath::new(&node_id, &cid),
            &NoParams {},
            &config,
        )
        .await
}

#[server]
pub async fn delete_connector(node_id: String, connector_id: String) -> Result<(), AppError> {
    let (st, s) = super::ctx::current().await?;
    let path = NodeConnectorPath::new(&node_id, &connector_id);
    st.api
        .call::<routes::DeleteNodeConnector>(&s.token, &path, &NoParams {}, &())
        .await
}

/// Runs a connector's checks on the node now (nothing changes on the node).
#[server]
pub async fn dry_run_connector(
    node_id: String,
    connector_id: String,
) -> Result<DryRunReport, AppError> {
    let (st, s) = super::ctx::current().await?;
    let path = NodeConnectorPath::new(&node_id, &connector_id);
    st.api
        .call_as::<routes::DryRunNodeConnector, _>(&s.token, &path, &NoParams {}, &())
        .await
}

/// Asks the node for its diagnostic bundle over the bus (pretty JSON).
#[server]
pub async fn diagnose_node(node_id: String) -> Result<String, AppError> {
    let (st, s) = super::ctx::current().await?;
    let path = OrgNodePath::new(&s.org, &node_id);
    let bundle = st
        .api
        .call::<routes::DiagnoseNode>(&s.token, &path, &NoParams {}, &())
        .await?;
    serde_json::to_string_pretty(&bundle).map_err(|e| AppError::Internal(e.to_string()))
}

/// The org's connectors across nodes, optionally by kind and last outcome.
#[server]
pub async fn list_connectors(
    kind: Option<String>,
    outcome: Option<String>,
) -> Result<Vec<Connector>, AppError> {
    use crate::model::fleet::Items;
    let (st, s) = super::ctx::current().await?;
    let query = ritma_api::connectors::ConnectorListQuery {
        kind: kind.filter(|v| !v.is_empty()),
        outcome: outcome.filter(|v| !v.is_empty()),
    };
    let list: Items<Connector> = st
        .api
        .call_as::<routes::ListConnectors, _>(&s.token, &OrgPath::new(&s.org), &query, &())
        .await?;
    Ok(list.items)
}

// ---------------------------------------------------------------- keys

/// Roles that may change key governance.
#[cfg(feature = "ssr")]
const KEY_ADMIN_ROLES: [&str; 2] = ["org_owner", "org_admin"];

#[server]
pub async fn get_keys() -> Result<KeysView, AppError> {
    use crate::model::fleet::{KeyList, KeySummary};
    let (st, s) = super::ctx::current().await?;
    let org = OrgPath::new(&s.org);
    let (list, summary, roles) = tokio::try_join!(
        st.api
            .call_as::<routes::ListKeys, KeyList>(&s.token, &org, &NoParams {}, &()),
        st.api
            .call_as::<routes::GetKeySummary, KeySummary>(&s.token, &org, &NoParams {}, &()),
        st.api.roles(&s.token, &s.org),
    )?;
    Ok(KeysView {
        list,
        summary,
        can_govern: roles.iter().any(|r| KEY_ADMIN_ROLES.contains(&r.as_str())),
        fetched_ms: chrono::Utc::now().timestamp_millis(),
    })
}

/// Registers a signing key (`rotate_by` and `expires_at`: dates, optional).
#[server]
pub async fn register_key(
    key_id: String,
    label: String,
    rotate_by: String,
    expires_at: String,
) -> Result<Key, AppError> {
    let (st, s) = super::ctx::current().await?;
    let body = ritma_api::keys::KeyCreate {
        key_id: required("key id", &key_id)?,
        label: label.trim().to_owned(),
        rotate_by: date_time("rotate_by", &rotate_by)?,
        expires_at: date_time("expires_at", &expires_at)?,
    };
    st.api
        .call_as::<routes::RegisterKey, _>(&s.token, &OrgPath::new(&s.org), &NoParams {}, &body)
        .await
}

/// Changes a key's governance status (admins only; audited).
#[server]
pub async fn govern_key(key_id: String, status: String, reason: String) -> Result<Key, AppError> {
    use crate::model::fleet::{KEY_STATUSES, one_of};
    let (st, s) = super::ctx::current().await?;
    let status = one_of("status", &status, &KEY_STATUSES).map_err(bad)?;
    let reason = reason.trim();
    let body = ritma_api::keys::GovernancePatch {
        status: Some(status),
        reason: (!reason.is_empty()).then(|| reason.to_owned()),
        ..Default::default()
    };
    // Key ids are per org: the org's path names it.
    let path = KeyPath {
        org: s.org.clone(),
        key_id: key_id.trim().to_owned(),
    };
    st.api
        .call_as::<routes::PatchKeyGovernance, _>(&s.token, &path, &NoParams {}, &body)
        .await
}

// ---------------------------------------------------------------- telemetry and usage

/// The node's last 24 hours: SLO outcomes and enforcement decisions (each may fail alone).
#[server]
pub async fn get_node_telemetry(id: String) -> Result<NodeTelemetry, AppError> {
    let (st, s) = super::ctx::current().await?;
    let hours = ritma_api::usage::HoursPageQuery {
        hours: Some(24),
        ..Default::default()
    };
    let (events_path, slo_path) = (OrgNodePath::new(&s.org, &id), NodePath::new(&id));
    let (slo, events) = tokio::join!(
        st.api
            .call_as::<routes::GetNodeSloSummary, _>(&s.token, &slo_path, &hours, &()),
        st.api
            .call_as::<routes::GetNodeEvents, _>(&s.token, &events_path, &hours, &()),
    );
    if let (Err(AppError::Unauthorized), _) | (_, Err(AppError::Unauthorized)) = (&slo, &events) {
        return Err(AppError::Unauthorized);
    }
    Ok(NodeTelemetry { slo, events })
}

/// Metering and the cost estimate of `period` (`YYYY-MM`; None: the current month).
#[server]
pub async fn get_usage(period: Option<String>) -> Result<UsageView, AppError> {
    let (st, s) = super::ctx::current().await?;
    let period = period.filter(|p| !p.is_empty());
    if let Some(p) = &period
        && !crate::model::fleet::is_period(p)
    {
        return Err(bad(format!("period {p:?} is not YYYY-MM")));
    }
    let query = ritma_api::usage::PeriodQuery { period };
    let org = OrgPath::new(&s.org);
    let (usage, billing) = tokio::join!(
        st.api
            .call_as::<routes::GetUsageSummary, _>(&s.token, &org, &query, &()),
        st.api
            .call_as::<routes::GetBillingEstimate, _>(&s.token, &org, &query, &()),
    );
    let usage = usage?;
    Ok(UsageView {
        charts: crate::server::charts::usage::usage_charts(&usage)
            .into_iter()
            .map(|c| c.finish())
            .collect(),
        usage,
        billing,
    })
}

#[server]
pub async fn get_config_template(tenant: String) -> Result<ConfigTemplate, AppError> {
    let (st, s) = super::ctx::current().await?;
    let tenant = required("tenant", &tenant)?;
    let query = ritma_api::nodes::ConfigTemplateQuery {
        tenant_id: Some(tenant),
    };
    st.api
        .call_as::<routes::GetConfigTemplate, _>(&s.token, &OrgPath::new(&s.org), &query, &())
        .await
}
