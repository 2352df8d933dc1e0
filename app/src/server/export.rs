//! `GET /export/{nodes,audit,usage}`: the controller's streamed exports for
//! the org the session shows, fetched with the person's own token and passed
//! through as they come (never buffered here: a 100,000-node export holds
//! one chunk at a time).

use super::AppState;
use super::guard::{ClientIp, store_down};
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ritma_api::client::ClientError;
use ritma_api::exports::{AuditExportQuery, NodeExportQuery, UsageExportQuery};
use ritma_api::params::OrgPath;
use ritma_api::routes;

/// The query parameters each export takes; anything else is dropped.
fn allowed(kind: &str) -> Option<&'static [&'static str]> {
    match kind {
        "nodes" => Some(&[
            "format",
            "tenant",
            "status",
            "label",
            "version",
            "q",
            "drifted",
            "key_warning",
        ]),
        "audit" => Some(&["format", "actor", "action", "target"]),
        "usage" => Some(&["format", "period"]),
        _ => None,
    }
}

/// The browser's query, reduced to what `kind` takes (empty values dropped).
pub fn export_query(kind: &str, pairs: Vec<(String, String)>) -> Option<Vec<(String, String)>> {
    let keys = allowed(kind)?;
    Some(
        pairs
            .into_iter()
            .filter(|(k, v)| keys.contains(&k.as_str()) && !v.trim().is_empty())
            .collect(),
    )
}

/// One export's typed query.
enum Export {
    Nodes(NodeExportQuery),
    Audit(AuditExportQuery),
    Usage(UsageExportQuery),
}

/// The filtered browser query as the export's own type (a value it cannot
/// take, such as `format=xml`, is the browser's error: 400 with the reason).
fn typed(kind: &str, pairs: &[(String, String)]) -> Result<Export, serde_urlencoded::de::Error> {
    // Pairs of strings always encode.
    let encoded = serde_urlencoded::to_string(pairs).unwrap_or_default();
    Ok(match kind {
        "nodes" => Export::Nodes(serde_urlencoded::from_str(&encoded)?),
        "audit" => Export::Audit(serde_urlencoded::from_str(&encoded)?),
        _ => Export::Usage(serde_urlencoded::from_str(&encoded)?),
    })
}

pub(super) async fn download(
    State(st): State<AppState>,
    axum::Extension(ClientIp(ip)): axum::Extension<ClientIp>,
    Path(kind): Path<String>,
    Query(pairs): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Response {
    let Some(query) = export_query(&kind, pairs) else {
        return (StatusCode::NOT_FOUND, "no such export").into_response();
    };
    let session = match st.sessions.from_headers(&headers).await {
        Ok(Some((_, s))) => s,
        Ok(None) => return (StatusCode::UNAUTHORIZED, "sign in first").into_response(),
        Err(e) => return store_down(&e),
    };
    let api = st.api.for_client(ip);
    let (token, org) = (&session.token, OrgPath::new(&session.org));
    let answer = match typed(&kind, &query) {
        Ok(Export::Nodes(q)) => api.stream::<routes::ExportNodes>(token, &org, &q).await,
        Ok(Export::Audit(q)) => api.stream::<routes::ExportAudit>(token, &org, &q).await,
        Ok(Export::Usage(q)) => api.stream::<routes::ExportUsage>(token, &org, &q).await,
        Err(e) => {
            return (StatusCode::BAD_REQUEST, format!("export query: {e}")).into_response();
        }
    };
    let resp = match answer {
        Ok(r) => r,
        Err(e @ ClientError::Status { .. }) => {
            let code = e
                .status()
                .and_then(|s| StatusCode::from_u16(s).ok())
                .unwrap_or(StatusCode::BAD_GATEWAY);
            return (code, e.message()).into_response();
        }
        Err(e) => {
            tracing::warn!(error = %e, "export: controller unreachable");
            return (StatusCode::BAD_GATEWAY, "the controller is unavailable").into_response();
        }
    };
    let pass = |name: header::HeaderName| {
        resp.headers()
            .get(name.as_str())
            .and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok())
    };
    let content_type = pass(header::CONTENT_TYPE);
    let disposition = pass(header::CONTENT_DISPOSITION);
    let mut out = Response::new(Body::from_stream(chunks(resp)));
    let h = out.headers_mut();
    if let Some(v) = content_type {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Some(v) = disposition {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    out
}

/// The response body chunk by chunk, as the controller sends it; a broken
/// download ends with the error (the browser sees a failed download, not a
/// short file that looks complete). Fused: the compression layer polls the
/// body once more after its end, which an unfused `unfold` answers with a
/// panic (the browser then saw every download cancelled).
fn chunks(
    resp: reqwest::Response,
) -> impl futures::Stream<Item = Result<axum::body::Bytes, reqwest::Error>> {
    use futures::StreamExt as _;
    futures::stream::unfold(Some(resp), |resp| async move {
        let mut resp = resp?;
        match resp.chunk().await {
            Ok(Some(chunk)) => Some((Ok(chunk), Some(resp))),
            Ok(None) => None,
            Err(e) => Some((Err(e), None)),
        }
    })
    .fuse()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn only_the_exports_parameters_pass() {
        let q = export_query(
            "nodes",
            pairs(&[
                ("format", "json"),
                ("status", "online"),
                ("token", "x"),
                ("q", ""),
                ("label", "rack=r1"),
            ]),
        )
        .unwrap();
        assert_eq!(
            q,
            vec![
                ("format".to_string(), "json".to_string()),
                ("status".to_string(), "online".to_string()),
                ("label".to_string(), "rack=r1".to_string()),
            ]
        );
        assert_eq!(
            export_query("audit", pairs(&[("status", "x")])).unwrap(),
            vec![]
        );
        assert!(export_query("secrets", vec![]).is_none());
    }

    #[test]
    fn the_query_is_read_as_the_exports_type_and_a_bad_value_refused() {
        let nodes = typed(
            "nodes",
            &pairs(&[("format", "json"), ("drifted", "true"), ("q", "web")]),
        );
        let Ok(Export::Nodes(q)) = nodes else {
            panic!("a node export");
        };
        assert_eq!(q.format, Some(ritma_api::exports::ExportFormat::Json));
        assert_eq!((q.drifted, q.q.as_deref()), (Some(true), Some("web")));
        assert!(typed("nodes", &pairs(&[("format", "xml")])).is_err());
        assert!(typed("nodes", &pairs(&[("drifted", "maybe")])).is_err());
        assert!(matches!(
            typed("usage", &pairs(&[("period", "2026-12")])),
            Ok(Export::Usage(q)) if q.period.as_deref() == Some("2026-12")
        ));
    }
}
