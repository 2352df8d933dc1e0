//! Server functions of bulk jobs: preview, start, and read one job. The
//! form's fields are turned into the controller's request here.

use crate::model::AppError;
#[cfg(feature = "ssr")]
use crate::model::bulk::SampleNode;
use crate::model::bulk::{BulkPreview, LiveJob};
use leptos::prelude::*;

#[cfg(feature = "ssr")]
mod request {
    use crate::model::AppError;
    use ritma_api::bulk::{
        AddLabelsParams, AssignRulepackParams, BulkJobParams, BulkJobRequest, RemoveLabelsParams,
        SelectionBody, SelectionFilter,
    };
    use std::collections::BTreeMap;

    fn bad(msg: impl Into<String>) -> AppError {
        AppError::BadRequest(msg.into())
    }

    /// `key=value, key=value` as a label map.
    fn labels(raw: &str) -> Result<BTreeMap<String, String>, AppError> {
        let mut out = BTreeMap::new();
        for pair in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| bad(format!("label {pair:?} must be key=value")))?;
            out.insert(k.trim().to_string(), v.trim().to_string());
        }
        if out.is_empty() {
            return Err(bad("labels are required (key=value, comma separated)"));
        }
        Ok(out)
    }

    /// The action's parameters; None for an action this console does not
    /// know (the controller names it in its refusal).
    fn params(
        action: &str,
        labels_raw: &str,
        keys: &str,
        rulepack: &str,
        revision: &str,
        mode: &str,
    ) -> Result<Option<BulkJobParams>, AppError> {
        Ok(Some(match action {
            "add_labels" => BulkJobParams::AddLabels(AddLabelsParams {
                labels: labels(labels_raw)?,
            }),
            "remove_labels" => {
                let keys: Vec<String> = keys
                    .split(',')
                    .map(str::trim)
                    .filter(|k| !k.is_empty())
                    .map(str::to_owned)
                    .collect();
                if keys.is_empty() {
                    return Err(bad("label keys are required (comma separated)"));
                }
                BulkJobParams::RemoveLabels(RemoveLabelsParams { keys })
            }
            "assign_rulepack" => {
                let rulepack = rulepack.trim();
                if rulepack.is_empty() {
                    return Err(bad("rulepack is required"));
                }
                let revision = match revision.trim() {
                    "" => None,
                    r => Some(r.parse().map_err(|_| bad("revision must be a number"))?),
                };
                BulkJobParams::AssignRulepack(AssignRulepackParams {
                    rulepack: rulepack.to_owned(),
                    revision,
                    mode: mode.trim().to_owned(),
                })
            }
            "decommission" => BulkJobParams::Decommission,
            _ => return Ok(None),
        }))
    }

    fn selection(scope: &str, ids: &str, filter: &str) -> Result<SelectionBody, AppError> {
        match scope {
            "selected" => {
                let ids: Vec<String> = ids
                    .split(',')
                    .map(str::trim)
                    .filter(|i| !i.is_empty())
                    .map(str::to_owned)
                    .collect();
                if ids.is_empty() {
                    return Err(bad(
                        "no nodes are selected: tick some rows, or choose all matching",
                    ));
                }
                Ok(SelectionBody {
                    ids: Some(ids),
                    filter: None,
                })
            }
            "filter" => {
                let given: BTreeMap<String, String> = if filter.trim().is_empty() {
                    Default::default()
                } else {
                    serde_json::from_str(filter).map_err(|_| bad("unreadable filter"))?
                };
                let text = |key: &str| {
                    given
                        .get(key)
                        .filter(|v| !v.trim().is_empty())
                        .map(String::to_owned)
                };
                let flag = |key: &str| {
                    (given.get(key).map(String::as_str) == Some("true")).then_some(true)
                };
                Ok(SelectionBody {
                    ids: None,
                    filter: Some(SelectionFilter {
                        tenant: text("tenant"),
                        status: text("status"),
                        label: text("label"),
                        version: text("version"),
                        q: text("q"),
                        drifted: flag("drifted"),
                        key_warning: flag("key_warning"),
                    }),
                })
            }
            _ => Err(bad("choose the selected nodes or all matching")),
        }
    }

    /// The controller's job request from the form's fields.
    #[allow(clippy::too_many_arguments)]
    pub fn body(
        scope: &str,
        ids: &str,
        filter: &str,
        action: &str,
        labels: &str,
        keys: &str,
        rulepack: &str,
        revision: &str,
        mode: &str,
    ) -> Result<BulkJobRequest, AppError> {
        let selection = selection(scope, ids, filter)?;
        Ok(
            match params(action, labels, keys, rulepack, revision, mode)? {
                Some(params) => BulkJobRequest::new(params, selection),
                None => BulkJobRequest {
                    action: action.to_owned(),
                    params: serde_json::Value::Object(Default::default()),
                    selection,
                    idempotency_key: None,
                },
            },
        )
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use serde_json::json;

        #[test]
        fn form_fields_become_the_controllers_request() {
            let b = body(
                "filter",
                "",
                r#"{"status":"online","drifted":"true","sort":"name"}"#,
                "add_labels",
                "site=fra1, env = prod",
                "",
                "",
                "",
                "",
            )
            .unwrap();
            let b = serde_json::to_value(&b).unwrap();
            assert_eq!(b["params"]["labels"]["env"], "prod");
            assert_eq!(
                b["selection"]["filter"],
                json!({ "status": "online", "drifted": true })
            );
            let b = body("selected", "a, b", "", "decommission", "", "", "", "", "").unwrap();
            let b = serde_json::to_value(&b).unwrap();
            assert_eq!(b["selection"]["ids"], json!(["a", "b"]));
            assert_eq!(b["params"], json!({}));
            let b = body("selected", "a", "", "reboot", "", "", "", "", "").unwrap();
            assert_eq!(
                b.action, "reboot",
                "an unknown action goes to the controller to refuse"
            );
            assert!(body("selected", " ", "", "decommission", "", "", "", "", "").is_err());
            assert!(body("filter", "", "", "add_labels", "nope", "", "", "", "").is_err());
        }
    }
}

/// What a job would act on: how many nodes, and a sample.
#[server]
pub async fn preview_bulk_job(
    scope: String,
    ids: String,
    filter: String,
    action: String,
    labels: String,
    keys: String,
    rulepack: String,
    revision: String,
    mode: String,
) -> Result<BulkPreview, AppError> {
    let (st, s) = super::ctx::current().await?;
    let body = request::body(
        &scope, &ids, &filter, &action, &labels, &keys, &rulepack, &revision, &mode,
    )?;
    let org = ritma_api::params::OrgPath::new(&s.org);
    let none = ritma_api::params::NoParams {};
    let preview = st
        .api
        .call::<ritma_api::routes::PreviewBulkJob>(&s.token, &org, &none, &body)
        .await?;
    Ok(BulkPreview {
        count: preview.count,
        unknown_ids: preview.unknown_ids,
        sample: preview
            .sample
            .into_iter()
            .map(|n| SampleNode {
                id: n.id,
                hostname: n.hostname,
                tenant_id: n.tenant_id,
                status: n.status.as_str().to_owned(),
            })
            .collect(),
        idempotency_key: format!("console-{}", hex::encode(rand::random::<[u8; 16]>())),
    })
}

/// Start the job; `idempotency_key` (from the form) makes a repeated
/// submit return the same job.
#[server]
pub async fn start_bulk_job(
    scope: String,
    ids: String,
    filter: String,
    action: String,
    labels: String,
    keys: String,
    rulepack: String,
    revision: String,
    mode: String,
    idempotency_key: String,
) -> Result<LiveJob, AppError> {
    let (st, s) = super::ctx::current().await?;
    let mut body = request::body(
        &scope, &ids, &filter, &action, &labels, &keys, &rulepack, &revision, &mode,
    )?;
    let key = idempotency_key.trim();
    body.idempotency_key = (!key.is_empty()).then(|| key.to_owned());
    let org = ritma_api::params::OrgPath::new(&s.org);
    let none = ritma_api::params::NoParams {};
    let job = st
        .api
        .call::<ritma_api::routes::CreateBulkJob>(&s.token, &org, &none, &body)
        .await?;
    Ok(live_job(job))
}

#[cfg(feature = "ssr")]
fn live_job(j: ritma_api::bulk::BulkJobView) -> LiveJob {
    LiveJob {
        job_id: j.id.to_string(),
        action: j.action.as_str().to_owned(),
        state: j.state.as_str().to_owned(),
        total: i64::from(j.total),
        succeeded: i64::from(j.succeeded),
        failed: i64::from(j.failed),
        skipped: i64::from(j.skipped),
    }
}

/// One job's counts (after a re-sync of the live stream).
#[server]
pub async fn get_bulk_job(id: String) -> Result<LiveJob, AppError> {
    let (st, s) = super::ctx::current().await?;
    let path = crate::server::api::uuid_path(&s.org, &id)?;
    let none = ritma_api::params::NoParams {};
    let job = st
        .api
        .call::<ritma_api::routes::GetBulkJob>(&s.token, &path, &none, &())
        .await?;
    Ok(live_job(job))
}
