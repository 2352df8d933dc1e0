//! Server functions of bulk jobs: preview, start, and read one job. The
//! form's fields are turned into the controller's request here.

use crate::model::AppError;
use crate::model::bulk::{BulkPreview, LiveJob};
use leptos::prelude::*;

#[cfg(feature = "ssr")]
mod request {
    use crate::model::AppError;
    use serde_json::{Map, Value, json};

    fn bad(msg: impl Into<String>) -> AppError {
        AppError::BadRequest(msg.into())
    }

    /// `key=value, key=value` as a label map.
    fn labels(raw: &str) -> Result<Map<String, Value>, AppError> {
        let mut out = Map::new();
        for pair in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| bad(format!("label {pair:?} must be key=value")))?;
            out.insert(k.trim().to_string(), Value::String(v.trim().to_string()));
        }
        if out.is_empty() {
            return Err(bad("labels are required (key=value, comma separated)"));
        }
        Ok(out)
    }

    fn params(
        action: &str,
        labels_raw: &str,
        keys: &str,
        rulepack: &str,
        revision: &str,
        mode: &str,
    ) -> Result<Value, AppError> {
        Ok(match action {
            "add_labels" => json!({ "labels": labels(labels_raw)? }),
            "remove_labels" => {
                let keys: Vec<&str> = keys
                    .split(',')
                    .map(str::trim)
                    .filter(|k| !k.is_empty())
                    .collect();
                if keys.is_empty() {
                    return Err(bad("label keys are required (comma separated)"));
                }
                json!({ "keys": keys })
            }
            "assign_rulepack" => {
                let rulepack = rulepack.trim();
                if rulepack.is_empty() {
                    return Err(bad("rulepack is required"));
                }
                let mut p = json!({ "rulepack": rulepack, "mode": mode.trim() });
                if !revision.trim().is_empty() {
                    let r: i32 = revision
                        .trim()
                        .parse()
                        .map_err(|_| bad("revision must be a number"))?;
                    p["revision"] = json!(r);
                }
                p
            }
            // The controller names anything else in its answer.
            _ => json!({}),
        })
    }

    fn selection(scope: &str, ids: &str, filter: &str) -> Result<Value, AppError> {
        match scope {
            "selected" => {
                let ids: Vec<&str> = ids
                    .split(',')
                    .map(str::trim)
                    .filter(|i| !i.is_empty())
                    .collect();
                if ids.is_empty() {
                    return Err(bad(
                        "no nodes are selected: tick some rows, or choose all matching",
                    ));
                }
                Ok(json!({ "ids": ids }))
            }
            "filter" => {
                let given: std::collections::BTreeMap<String, String> = if filter.trim().is_empty()
                {
                    Default::default()
                } else {
                    serde_json::from_str(filter).map_err(|_| bad("unreadable filter"))?
                };
                let mut out = Map::new();
                for (k, v) in given {
                    match k.as_str() {
                        "tenant" | "status" | "label" | "version" | "q" if !v.trim().is_empty() => {
                            out.insert(k, Value::String(v));
                        }
                        "drifted" | "key_warning" if v == "true" => {
                            out.insert(k, Value::Bool(true));
                        }
                        _ => {}
                    }
                }
                Ok(json!({ "filter": out }))
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
    ) -> Result<Value, AppError> {
        Ok(json!({
            "action": action,
            "params": params(action, labels, keys, rulepack, revision, mode)?,
            "selection": selection(scope, ids, filter)?,
        }))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

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
            assert_eq!(b["params"]["labels"]["env"], "prod");
            assert_eq!(
                b["selection"]["filter"],
                json!({ "status": "online", "drifted": true })
            );
            let b = body("selected", "a, b", "", "decommission", "", "", "", "", "").unwrap();
            assert_eq!(b["selection"]["ids"], json!(["a", "b"]));
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
    let path = format!(
        "/api/orgs/{}/bulk-jobs/preview",
        crate::server::api::seg(&s.org)
    );
    let mut preview: BulkPreview = st
        .api
        .call_json(reqwest::Method::POST, &s.token, &path, Some(&body))
        .await?;
    preview.idempotency_key = format!("console-{}", hex::encode(rand::random::<[u8; 16]>()));
    Ok(preview)
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
    if !idempotency_key.trim().is_empty() {
        body["idempotency_key"] = serde_json::json!(idempotency_key.trim());
    }
    let path = format!("/api/orgs/{}/bulk-jobs", crate::server::api::seg(&s.org));
    st.api
        .call_json(reqwest::Method::POST, &s.token, &path, Some(&body))
        .await
}

/// One job's counts (after a re-sync of the live stream).
#[server]
pub async fn get_bulk_job(id: String) -> Result<LiveJob, AppError> {
    let (st, s) = super::ctx::current().await?;
    let path = format!(
        "/api/orgs/{}/bulk-jobs/{}",
        crate::server::api::seg(&s.org),
        crate::server::api::seg(&id)
    );
    st.api.get_json(&s.token, &path, &[]).await
}
