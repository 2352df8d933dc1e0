//! Which nodes a bulk job acts on: explicit ids (bounded) or "all matching
//! this filter" (the node list's filters, evaluated by the worker in keyset
//! pages, so a selection of 100,000 nodes is never held whole).

use ritma_db::nodes::NodeFilter;
use ritma_protocol::NodeId;
use serde_json::Value;

use ritma_api::bulk::{SelectionBody, SelectionFilter};
use ritma_api::nodes::NodeListQuery;

use crate::api::nodes::filter_from;
use crate::error::ApiError;

/// At most this many explicit ids per job; larger sets are a filter.
pub const MAX_IDS: usize = 10_000;

/// The database filter of a selection's filter, checked like the node list's query.
pub fn node_filter(f: &SelectionFilter) -> Result<NodeFilter, ApiError> {
    filter_from(NodeListQuery {
        tenant: f.tenant.clone(),
        status: f.status.clone(),
        label: f.label.clone(),
        version: f.version.clone(),
        q: f.q.clone(),
        drifted: f.drifted,
        key_warning: f.key_warning,
        ..Default::default()
    })
}

#[derive(Debug, Clone)]
pub enum Selection {
    /// Valid, distinct ids (not yet checked against the org).
    Ids(Vec<String>),
    Filter(Box<SelectionFilter>, Box<NodeFilter>),
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::BadRequest(msg.into())
}

impl Selection {
    pub fn parse(body: SelectionBody) -> Result<Self, ApiError> {
        match (body.ids, body.filter) {
            (Some(ids), None) => {
                if ids.is_empty() {
                    return Err(bad("selection.ids is empty"));
                }
                if ids.len() > MAX_IDS {
                    return Err(bad(format!(
                        "selection.ids has {} ids, at most {MAX_IDS} allowed: select by filter instead",
                        ids.len()
                    )));
                }
                let mut out: Vec<String> = Vec::with_capacity(ids.len());
                for id in ids {
                    let id = NodeId::new(id.trim()).map_err(|_| {
                        bad(format!(
                            "selection.ids: {:?} is not a node id",
                            id.chars().take(80).collect::<String>()
                        ))
                    })?;
                    out.push(id.as_str().to_owned());
                }
                out.sort_unstable();
                out.dedup();
                Ok(Self::Ids(out))
            }
            (None, Some(filter)) => {
                let node_filter = node_filter(&filter)?;
                Ok(Self::Filter(Box::new(filter), Box::new(node_filter)))
            }
            _ => Err(bad("selection needs exactly one of ids or filter")),
        }
    }

    /// As stored with the job (`bulk_jobs.selection`).
    pub fn stored(&self) -> Value {
        match self {
            Self::Ids(ids) => serde_json::json!({ "ids": ids }),
            Self::Filter(f, _) => serde_json::json!({ "filter": f }),
        }
    }

    /// As the audit trail records it: the filter, or how many ids.
    pub fn summary(&self) -> Value {
        match self {
            Self::Ids(ids) => serde_json::json!({ "ids": ids.len() }),
            Self::Filter(f, _) => serde_json::json!({ "filter": f }),
        }
    }

    /// A stored filter selection, for the worker; None for explicit ids
    /// (their items exist from the start).
    pub fn stored_filter(stored: &Value) -> Result<Option<NodeFilter>, ApiError> {
        let Some(raw) = stored.get("filter") else {
            return Ok(None);
        };
        let f: SelectionFilter = serde_json::from_value(raw.clone())
            .map_err(|e| ApiError::Internal(format!("stored selection: {e}")))?;
        node_filter(&f).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: Vec<&str>) -> SelectionBody {
        SelectionBody {
            ids: Some(v.into_iter().map(String::from).collect()),
            filter: None,
        }
    }

    #[test]
    fn ids_are_checked_bounded_and_deduplicated() {
        assert!(matches!(
            Selection::parse(ids(vec!["b", "a", "b"])),
            Ok(Selection::Ids(v)) if v == ["a", "b"]
        ));
        assert!(Selection::parse(ids(vec![])).is_err());
        assert!(Selection::parse(ids(vec!["ok", "Not An Id"])).is_err());
        let many: Vec<String> = (0..=MAX_IDS).map(|i| format!("n{i}")).collect();
        let body = SelectionBody {
            ids: Some(many),
            filter: None,
        };
        assert!(Selection::parse(body).is_err());
    }

    #[test]
    fn exactly_one_kind_of_selection() {
        let both = SelectionBody {
            ids: Some(vec!["a".into()]),
            filter: Some(SelectionFilter::default()),
        };
        assert!(Selection::parse(both).is_err());
        let neither = SelectionBody {
            ids: None,
            filter: None,
        };
        assert!(Selection::parse(neither).is_err());
        let bad_status = SelectionBody {
            ids: None,
            filter: Some(SelectionFilter {
                status: Some("sleepy".into()),
                ..Default::default()
            }),
        };
        assert!(Selection::parse(bad_status).is_err());
    }
}
