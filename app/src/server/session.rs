//! Cookie sessions kept in memory: the browser holds a random id (HTTP-only cookie),
//! the admin token stays on the server.

use crate::model::OrgInfo;
use axum::http::HeaderMap;
use axum::http::header::COOKIE;
use rand::RngCore as _;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

pub const COOKIE_NAME: &str = "ritma_console_session";
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

#[derive(Clone, Debug)]
pub struct Session {
    /// The bearer token the console calls the API with on this person's behalf.
    pub token: String,
    /// For single sign-on: renews `token` before `token_expires`.
    pub refresh_token: Option<String>,
    pub token_expires: Option<Instant>,
    /// Who signed in, for display (`operator` for the admin token).
    pub user: String,
    pub org: String,
    pub orgs: Vec<OrgInfo>,
    expires: Instant,
}

impl Session {
    /// The access token runs out within `margin` and can be renewed.
    pub fn needs_refresh(&self, margin: Duration) -> bool {
        self.refresh_token.is_some()
            && self
                .token_expires
                .is_some_and(|at| at <= Instant::now() + margin)
    }
}

/// What a sign-in produced: the credential and, for single sign-on, how it renews.
#[derive(Clone, Debug)]
pub struct Credential {
    pub token: String,
    pub refresh_token: Option<String>,
    pub token_expires: Option<Instant>,
    pub user: String,
}

#[derive(Clone, Default)]
pub struct Sessions {
    inner: Arc<RwLock<HashMap<String, Session>>>,
}

impl Sessions {
    pub fn create(&self, credential: Credential, org: String, orgs: Vec<OrgInfo>) -> String {
        let mut raw = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut raw);
        let id = hex::encode(raw);
        let session_end = Instant::now() + SESSION_TTL;
        // A token that cannot be renewed ends the session when it expires.
        let expires = match (&credential.refresh_token, credential.token_expires) {
            (None, Some(at)) => at.min(session_end),
            _ => session_end,
        };
        let session = Session {
            token: credential.token,
            refresh_token: credential.refresh_token,
            token_expires: credential.token_expires,
            user: credential.user,
            org,
            orgs,
            expires,
        };
        let mut map = self.inner.write().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        map.retain(|_, s| s.expires > now);
        map.insert(id.clone(), session);
        id
    }

    pub fn get(&self, id: &str) -> Option<Session> {
        let map = self.inner.read().unwrap_or_else(|e| e.into_inner());
        map.get(id).filter(|s| s.expires > Instant::now()).cloned()
    }

    pub fn set_org(&self, id: &str, org: &str) -> bool {
        let mut map = self.inner.write().unwrap_or_else(|e| e.into_inner());
        match map.get_mut(id) {
            Some(s) if s.orgs.iter().any(|o| o.id == org) => {
                s.org = org.to_string();
                true
            }
            _ => false,
        }
    }

    /// The orgs the person may switch to, as the controller lists them now.
    pub fn set_orgs(&self, id: &str, orgs: Vec<OrgInfo>) {
        let mut map = self.inner.write().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = map.get_mut(id) {
            s.orgs = orgs;
        }
    }

    /// Store a renewed access token.
    pub fn renew(
        &self,
        id: &str,
        token: String,
        refresh_token: Option<String>,
        token_expires: Option<Instant>,
    ) {
        let mut map = self.inner.write().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = map.get_mut(id) {
            s.token = token;
            if refresh_token.is_some() {
                s.refresh_token = refresh_token;
            }
            s.token_expires = token_expires;
        }
    }

    pub fn remove(&self, id: &str) {
        let mut map = self.inner.write().unwrap_or_else(|e| e.into_inner());
        map.remove(id);
    }

    /// The session named by the request's cookie.
    pub fn from_headers(&self, headers: &HeaderMap) -> Option<(String, Session)> {
        let id = cookie_value(headers, COOKIE_NAME)?;
        self.get(&id).map(|s| (id, s))
    }
}

pub fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

pub fn set_cookie(id: &str, secure: bool) -> String {
    format!(
        "{COOKIE_NAME}={id}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{}",
        SESSION_TTL.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

pub fn clear_cookie(secure: bool) -> String {
    format!(
        "{COOKIE_NAME}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{}",
        if secure { "; Secure" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn sessions_round_trip_through_cookie() {
        let s = Sessions::default();
        let orgs = vec![OrgInfo {
            id: "demo".into(),
            name: "Demo".into(),
        }];
        let cred = Credential {
            token: "tok".into(),
            refresh_token: None,
            token_expires: None,
            user: "operator".into(),
        };
        let id = s.create(cred, "demo".into(), orgs);
        let mut h = HeaderMap::new();
        h.insert(
            COOKIE,
            HeaderValue::from_str(&format!("a=b; {COOKIE_NAME}={id}")).unwrap(),
        );
        let (_, got) = s.from_headers(&h).unwrap();
        assert_eq!(got.token, "tok");
        assert!(!s.set_org(&id, "other"));
        s.remove(&id);
        assert!(s.from_headers(&h).is_none());
        assert!(set_cookie(&id, false).contains("HttpOnly"));
    }

    #[test]
    fn a_token_that_cannot_be_renewed_ends_the_session() {
        let s = Sessions::default();
        let cred = Credential {
            token: "short".into(),
            refresh_token: None,
            token_expires: Some(Instant::now()),
            user: "alice".into(),
        };
        let id = s.create(cred, "demo".into(), vec![]);
        assert!(s.get(&id).is_none(), "expired with its token");
        let cred = Credential {
            token: "short".into(),
            refresh_token: Some("r".into()),
            token_expires: Some(Instant::now()),
            user: "alice".into(),
        };
        let id = s.create(cred, "demo".into(), vec![]);
        let got = s.get(&id).expect("renewable");
        assert!(got.needs_refresh(Duration::from_secs(30)));
        s.renew(
            &id,
            "fresh".into(),
            None,
            Some(Instant::now() + Duration::from_secs(600)),
        );
        let got = s.get(&id).unwrap();
        assert_eq!(got.token, "fresh");
        assert_eq!(
            got.refresh_token.as_deref(),
            Some("r"),
            "kept when not rotated"
        );
        assert!(!got.needs_refresh(Duration::from_secs(30)));
    }
}
