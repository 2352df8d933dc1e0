//! Signing in and out: the admin-token form, single sign-on (authorization
//! code + PKCE), token renewal, and the org switch. Sessions and pending
//! sign-ins are in the shared store (`session`, `oidc`), so each step may
//! run on any replica.

use super::guard::{ClientIp, store_down};
use super::{AppState, oidc, session};
use crate::model::OrgInfo;
use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use session::Credential;
use std::time::Duration;

#[derive(Deserialize)]
pub(super) struct LoginForm {
    token: String,
    next: Option<String>,
}

/// `%XX` sequences decoded (lossy; invalid ones kept as they are).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (
                (b[i + 1] as char).to_digit(16),
                (b[i + 2] as char).to_digit(16),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Where to go after signing in: a path of this site only. Anything a
/// browser could read as another host (`//x`, `/\x`, a tab or newline that
/// browsers drop, an encoded slash or backslash, a scheme) falls back to `/`.
pub(super) fn safe_next(next: Option<&str>) -> String {
    let Some(n) = next else {
        return "/".to_string();
    };
    let ok = n.len() <= 2048
        && n.starts_with('/')
        // Printable ASCII only: no whitespace or control characters (browsers
        // strip tab, CR and LF from URLs, turning `/\t/x` into `//x`).
        && n.bytes().all(|b| b.is_ascii_graphic())
        && !n.contains('\\')
        && {
            let path = n.split(['?', '#']).next().unwrap_or_default();
            let decoded = percent_decode(path);
            let lower = path.to_ascii_lowercase();
            !path.starts_with("//")
                && !decoded.starts_with("//")
                && !decoded.contains('\\')
                && !decoded.chars().any(|c| c.is_control() || c.is_whitespace())
                && !lower.contains("%2f")
                && !lower.contains("%5c")
                && !lower.contains("%25")
        };
    if ok { n.to_string() } else { "/".to_string() }
}

pub(super) async fn login(
    State(st): State<AppState>,
    axum::Extension(ClientIp(ip)): axum::Extension<ClientIp>,
    Form(f): Form<LoginForm>,
) -> Response {
    let token = f.token.trim().to_string();
    let next = safe_next(f.next.as_deref());
    let back = |code: &str| login_error(code, &next);
    if !st.config.token_login {
        return back("token-login-off");
    }
    if token.is_empty() {
        return back("missing");
    }
    let orgs: Vec<OrgInfo> = match st.api.for_client(ip).orgs(&token).await {
        Ok(o) => o,
        Err(crate::model::AppError::Unauthorized | crate::model::AppError::Forbidden(_)) => {
            return back("invalid");
        }
        Err(e) => {
            tracing::warn!(error = %e, "sign-in: controller API failed");
            return back("unavailable");
        }
    };
    let org = if orgs.iter().any(|o| o.id == st.config.org) {
        st.config.org.clone()
    } else if let Some(o) = orgs.first() {
        o.id.clone()
    } else {
        return back("no-org");
    };
    let credential = Credential {
        token,
        refresh_token: None,
        token_expires: None,
        user: "operator (admin token)".into(),
    };
    let id = match st.sessions.create(credential, org, orgs).await {
        Ok(id) => id,
        Err(e) => {
            tracing::warn!(error = %e, "sign-in: cannot store the session");
            return back("unavailable");
        }
    };
    let mut resp = Redirect::to(&next).into_response();
    if let Ok(v) = HeaderValue::from_str(&session::set_cookie(&id, st.config.secure_cookie)) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

/// Renew a session's access token shortly before it runs out. False when the
/// session is over (renewal refused): the person signs in again.
pub(super) async fn renew_if_due(st: &AppState, id: &str, s: &session::Session) -> bool {
    const MARGIN: Duration = Duration::from_secs(30);
    let Some(client) = &st.oidc else {
        return true;
    };
    if !s.needs_refresh(MARGIN) {
        return true;
    }
    let renewal = st
        .sessions
        .renew_once(id, MARGIN, |refresh| async move {
            match client.refresh(&refresh).await {
                Ok(t) => Ok(Some(session::RenewedToken {
                    token: t.access_token,
                    refresh_token: t.refresh_token,
                    token_expires: t.expires_at,
                })),
                Err(oidc::OidcError::Refused { status, .. }) => {
                    tracing::info!(status, "session renewal refused by the IdP; signing out");
                    Ok(None)
                }
                Err(e) => Err(e),
            }
        })
        .await;
    match renewal {
        Ok(session::Renewal::Current(_)) => true,
        Ok(session::Renewal::Ended) => false,
        Ok(session::Renewal::Failed(e)) => {
            // IdP briefly unreachable: keep the session while its token is valid.
            tracing::warn!(error = %e, "session renewal failed");
            s.token_expires
                .is_some_and(|at| at > std::time::Instant::now())
        }
        Err(e) => {
            tracing::warn!(error = %e, "session renewal: store unavailable");
            s.token_expires
                .is_some_and(|at| at > std::time::Instant::now())
        }
    }
}

fn login_error(code: &str, next: &str) -> Response {
    let q = if next == "/" {
        String::new()
    } else {
        format!("&next={}", crate::model::url_encode(next))
    };
    Redirect::to(&format!("/login?error={code}{q}")).into_response()
}

fn with_cookie(mut resp: Response, cookie: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

#[derive(Deserialize)]
pub(super) struct OidcStartQuery {
    next: Option<String>,
}

/// `GET /auth/oidc`: send the browser to the IdP (authorization code + PKCE).
pub(super) async fn oidc_start(
    State(st): State<AppState>,
    axum::Extension(ClientIp(ip)): axum::Extension<ClientIp>,
    axum::extract::Query(q): axum::extract::Query<OidcStartQuery>,
) -> Response {
    let next = safe_next(q.next.as_deref());
    let Some(client) = &st.oidc else {
        return login_error("sso-off", &next);
    };
    // Bounded per address and in total: a flood from one address fills only
    // its own share, and everyone else can still sign in.
    match client.start(next.clone(), ip).await {
        Ok((url, state)) => with_cookie(
            Redirect::to(&url).into_response(),
            &oidc::state_cookie(&state, st.config.secure_cookie),
        ),
        Err(oidc::OidcError::Busy) => {
            tracing::warn!(
                ?ip,
                "too many single sign-on starts pending from this address"
            );
            login_error("sso-busy", &next)
        }
        Err(e) => {
            tracing::warn!(error = %e, "single sign-on could not start");
            login_error("sso-unavailable", &next)
        }
    }
}

#[derive(Deserialize)]
pub(super) struct OidcCallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `GET /auth/callback`: the IdP sends the browser back with a code.
pub(super) async fn oidc_callback(
    State(st): State<AppState>,
    axum::Extension(ClientIp(ip)): axum::Extension<ClientIp>,
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<OidcCallbackQuery>,
) -> Response {
    let secure = st.config.secure_cookie;
    let fail = |code: &str, next: &str| {
        with_cookie(login_error(code, next), &oidc::clear_state_cookie(secure))
    };
    let Some(client) = &st.oidc else {
        return fail("sso-off", "/");
    };
    let Some(state) = q.state.filter(|s| !s.is_empty()) else {
        return fail("sso-state", "/");
    };
    // The state must be the one this browser started, and unused.
    let cookie_state = session::cookie_value(&headers, oidc::STATE_COOKIE);
    let pending = match client.take_pending(&state).await {
        Ok(Some(p)) => p,
        Ok(None) => return fail("sso-state", "/"),
        Err(e) => {
            tracing::warn!(error = %e, "sign-in callback: store unavailable");
            return fail("unavailable", "/");
        }
    };
    if cookie_state.as_deref() != Some(state.as_str()) {
        tracing::warn!("sign-in callback without the state cookie of the browser that started it");
        return fail("sso-state", &pending.next);
    }
    if let Some(e) = q.error {
        tracing::info!(error = %e, "the IdP refused the sign-in");
        return fail("sso-denied", &pending.next);
    }
    let Some(code) = q.code.filter(|c| !c.is_empty()) else {
        return fail("sso-failed", &pending.next);
    };
    let tokens = match client.exchange(&code, &pending.verifier).await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "authorization code exchange failed");
            return fail("sso-failed", &pending.next);
        }
    };
    let api = st.api.for_client(ip);
    let (user, orgs) =
        match tokio::try_join!(api.me(&tokens.access_token), api.orgs(&tokens.access_token)) {
            Ok(v) => v,
            Err(crate::model::AppError::Unauthorized | crate::model::AppError::Forbidden(_)) => {
                return fail("sso-rejected", &pending.next);
            }
            Err(e) => {
                tracing::warn!(error = %e, "sign-in: controller API failed");
                return fail("unavailable", &pending.next);
            }
        };
    let org = if orgs.iter().any(|o| o.id == st.config.org) {
        st.config.org.clone()
    } else if let Some(o) = orgs.first() {
        o.id.clone()
    } else {
        return fail("no-org", &pending.next);
    };
    tracing::info!(%user, %org, "signed in with single sign-on");
    let credential = Credential {
        token: tokens.access_token,
        refresh_token: tokens.refresh_token,
        token_expires: tokens.expires_at,
        user,
    };
    let id = match st.sessions.create(credential, org, orgs).await {
        Ok(id) => id,
        Err(e) => {
            tracing::warn!(error = %e, "sign-in: cannot store the session");
            return fail("unavailable", &pending.next);
        }
    };
    let resp = with_cookie(
        Redirect::to(&pending.next).into_response(),
        &session::set_cookie(&id, secure),
    );
    with_cookie(resp, &oidc::clear_state_cookie(secure))
}

pub(super) async fn logout(State(st): State<AppState>, headers: HeaderMap) -> Response {
    // The row goes: the session ends on every replica at once.
    match st.sessions.from_headers(&headers).await {
        Ok(Some((id, _))) => {
            if let Err(e) = st.sessions.remove(&id).await {
                return store_down(&e);
            }
        }
        Ok(None) => {}
        Err(e) => return store_down(&e),
    }
    let mut resp = Redirect::to("/login").into_response();
    if let Ok(v) = HeaderValue::from_str(&session::clear_cookie(st.config.secure_cookie)) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

#[derive(Deserialize)]
pub(super) struct OrgForm {
    org: String,
}

pub(super) async fn switch_org(
    State(st): State<AppState>,
    axum::Extension(ClientIp(ip)): axum::Extension<ClientIp>,
    headers: HeaderMap,
    Form(f): Form<OrgForm>,
) -> Response {
    let (id, session) = match st.sessions.from_headers(&headers).await {
        Ok(Some(found)) => found,
        Ok(None) => return Redirect::to("/login").into_response(),
        Err(e) => return store_down(&e),
    };
    match st.sessions.set_org(&id, &f.org).await {
        Ok(true) => return Redirect::to("/").into_response(),
        Ok(false) => {}
        Err(e) => return store_down(&e),
    }
    // An org created (or a role granted) since sign-in: ask the controller.
    if let Ok(orgs) = st.api.for_client(ip).orgs(&session.token).await {
        if let Err(e) = st.sessions.set_orgs(&id, orgs).await {
            return store_down(&e);
        }
        if let Ok(true) = st.sessions.set_org(&id, &f.org).await {
            return Redirect::to("/").into_response();
        }
    }
    StatusCode::FORBIDDEN.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_must_stay_on_site() {
        for ok in [
            "/",
            "/nodes?status=offline",
            "/nodes/web-1",
            "/nodes?label=team%3Dpay%2Fments",
            "/audit?actor=a%40b.c",
        ] {
            assert_eq!(safe_next(Some(ok)), ok, "{ok:?} is a path of this site");
        }
        for trick in [
            "//evil.example",
            "//evil.example/x",
            "https://evil.example",
            "http:/evil.example",
            "javascript:alert(1)",
            "evil.example",
            "/\\evil.example",
            "/\\/evil.example",
            "\\\\evil.example",
            "/\t/evil.example/x",
            "/\n/evil.example",
            "/\r/evil.example",
            "/\r\n/evil.example",
            "/ /evil.example",
            " //evil.example",
            "\t//evil.example",
            " /nodes",
            "/%2fevil.example",
            "/%2Fevil.example",
            "/%5cevil.example",
            "/%5Cevil.example",
            "/%252f%252fevil.example",
            "/nodes/%2f%2fevil.example",
            "/\u{0}/evil.example",
            "/\u{7f}/evil.example",
            "/\u{a0}/evil.example",
            "/\u{3000}/evil.example",
            "",
        ] {
            assert_eq!(safe_next(Some(trick)), "/", "{trick:?} must not pass");
        }
        assert_eq!(safe_next(None), "/");
    }
}
