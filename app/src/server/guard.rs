//! Middleware on every request: the session guard, the same-origin check of
//! state-changing requests, the client's address and the security headers (CSP).

use super::{AppState, auth, session};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use std::net::{IpAddr, SocketAddr};

/// Pages need a session: without one, a page request goes to the sign-in form.
pub(super) async fn guard(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let open = path == "/login"
        || path == "/healthz"
        || path == "/readyz"
        || path == "/live"
        || path == "/metrics"
        || path.starts_with("/auth/")
        || path.starts_with("/pkg/")
        || path.starts_with("/assets/")
        || path.starts_with("/api/");
    // Assets and health checks need no session (no database read for them);
    // everything else renews a token that is about to run out.
    let static_or_health = path.starts_with("/pkg/")
        || path.starts_with("/assets/")
        || path == "/healthz"
        || path == "/readyz";
    let signed_in = if static_or_health {
        false
    } else {
        match st.sessions.from_headers(req.headers()).await {
            Ok(Some((id, session))) => auth::renew_if_due(&st, &id, &session).await,
            Ok(None) => false,
            Err(e) => return store_down(&e),
        }
    };
    if path == "/login" && signed_in && req.method() == axum::http::Method::GET {
        return Redirect::to("/").into_response();
    }
    if open || signed_in || req.method() != axum::http::Method::GET {
        return next.run(req).await;
    }
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let location = if target == "/" {
        "/login".to_string()
    } else {
        format!("/login?next={}", crate::model::url_encode(&target))
    };
    Redirect::to(&location).into_response()
}

/// The session store could not be read: nobody is sent to sign in again
/// for it, the browser retries.
pub(super) fn store_down(e: &session::SessionError) -> Response {
    tracing::warn!(error = %e, "session store unavailable");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "2")],
        "sessions are unavailable; try again shortly",
    )
        .into_response()
}

/// The browser's address: the TCP peer, or, when the peer is a trusted proxy
/// (`RITMA_CONSOLE_TRUSTED_PROXIES`), the last address it put in
/// `X-Forwarded-For`. None without connection info (in-process calls).
pub fn client_ip(headers: &HeaderMap, peer: Option<IpAddr>, trusted: &[IpAddr]) -> Option<IpAddr> {
    let peer = peer?;
    if !trusted.contains(&peer) {
        return Some(peer);
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse::<IpAddr>().ok())
        .next_back()
        .or(Some(peer))
}

fn peer_of(ext: &axum::http::Extensions) -> Option<IpAddr> {
    ext.get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

/// The browser's address, put on every request by [`check_origin`].
#[derive(Clone, Copy, Debug)]
pub struct ClientIp(pub Option<IpAddr>);

/// The browser's address for a request seen by a server function.
pub fn client_ip_of_parts(_st: &AppState, parts: &axum::http::request::Parts) -> Option<IpAddr> {
    parts.extensions.get::<ClientIp>().and_then(|c| c.0)
}

/// Whether a state-changing request comes from the console's own pages:
/// its `Origin` is the console's (public URL, or the Host it was sent to);
/// without an `Origin`, only a browser's `Sec-Fetch-Site: same-origin` will do.
fn same_origin(headers: &HeaderMap, public_origin: &str) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return headers
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("same-origin"));
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let origin = origin.trim_end_matches('/').to_ascii_lowercase();
    if origin == public_origin {
        return true;
    }
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    match origin.split_once("://") {
        Some((scheme, rest)) => {
            (scheme == "http" || scheme == "https") && rest == host.to_ascii_lowercase()
        }
        None => false,
    }
}

/// Every request that may change state (anything but GET, HEAD, OPTIONS),
/// Leptos server functions included, must come from the console's own pages.
pub(super) async fn check_origin(
    State(st): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    use axum::http::Method;
    let ip = client_ip(
        req.headers(),
        peer_of(req.extensions()),
        &st.config.trusted_proxies,
    );
    req.extensions_mut().insert(ClientIp(ip));
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe && !same_origin(req.headers(), &st.config.public_origin) {
        tracing::warn!(
            method = %req.method(),
            path = %req.uri().path(),
            origin = ?req.headers().get(header::ORIGIN),
            "cross-site request refused"
        );
        return (StatusCode::FORBIDDEN, "cross-site request refused").into_response();
    }
    next.run(req).await
}

/// The Content-Security-Policy of every response. Pages get a per-response
/// nonce for the hydration script (Leptos puts it on its inline scripts);
/// the WASM module needs `'wasm-unsafe-eval'`.
pub fn csp(nonce: Option<&str>) -> String {
    let script = match nonce {
        Some(n) => format!("'self' 'nonce-{n}' 'wasm-unsafe-eval'"),
        None => "'self' 'wasm-unsafe-eval'".to_string(),
    };
    format!(
        "default-src 'self'; script-src {script}; style-src 'self' 'unsafe-inline'; \
         img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
         form-action 'self'; frame-ancestors 'none'"
    )
}

/// CSP (unless the page set its own, with its nonce), no MIME sniffing, no
/// referrer to other sites, no framing.
pub(super) async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    if !h.contains_key(header::CONTENT_SECURITY_POLICY)
        && let Ok(v) = HeaderValue::from_str(&csp(None))
    {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_check() {
        let public = "http://console.example";
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:3000"));
        assert!(!same_origin(&h, public), "no Origin, no Sec-Fetch-Site");
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(!same_origin(&h, public));
        h.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert!(same_origin(&h, public), "a browser's same-origin request");
        for (origin, ok) in [
            ("http://127.0.0.1:3000", true),
            ("http://console.example", true),
            ("https://console.example", false),
            ("http://evil.example", false),
            ("null", false),
            ("http://127.0.0.1:3000.evil.example", false),
            ("http://127.0.0.1:30000", false),
        ] {
            h.insert(header::ORIGIN, HeaderValue::from_static(origin));
            assert_eq!(same_origin(&h, public), ok, "{origin}");
        }
    }

    #[test]
    fn client_address_comes_from_trusted_proxies_only() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("1.1.1.1, 10.0.0.7"),
        );
        let proxy: IpAddr = "127.0.0.1".parse().unwrap();
        let other: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(
            client_ip(&h, Some(proxy), &[proxy]),
            Some("10.0.0.7".parse().unwrap()),
            "the address the proxy appended"
        );
        assert_eq!(
            client_ip(&h, Some(other), &[proxy]),
            Some(other),
            "a client's own X-Forwarded-For is ignored"
        );
        assert_eq!(client_ip(&h, None, &[proxy]), None);
    }

    #[test]
    fn the_policy_forbids_framing_and_foreign_scripts() {
        let p = csp(Some("abc"));
        assert!(p.contains("frame-ancestors 'none'"));
        assert!(p.contains("script-src 'self' 'nonce-abc' 'wasm-unsafe-eval'"));
        let script = p
            .split(';')
            .find(|d| d.trim_start().starts_with("script-src"))
            .unwrap();
        assert!(!script.contains("unsafe-inline"), "{script}");
        assert!(csp(None).contains("object-src 'none'"));
    }
}
