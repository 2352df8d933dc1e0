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
    pub token: String,
    pub org: String,
    pub orgs: Vec<OrgInfo>,
    expires: Instant,
}

#[derive(Clone, Default)]
pub struct Sessions {
    inner: Arc<RwLock<HashMap<String, Session>>>,
}

impl Sessions {
    pub fn create(&self, token: String, org: String, orgs: Vec<OrgInfo>) -> String {
        let mut raw = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut raw);
        let id = hex::encode(raw);
        let session = Session {
            token,
            org,
            orgs,
            expires: Instant::now() + SESSION_TTL,
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
        let id = s.create("tok".into(), "demo".into(), orgs);
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
}
