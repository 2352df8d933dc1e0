//! In-memory token buckets that answer `429` with `Retry-After`.
//!
//! - [`FailureLimiter`]: against enrollment-token and credential brute force.
//!   Each source address has a bucket of `burst` refused attempts, refilled at
//!   `per_minute`. Requests that succeed cost nothing, so a fleet enrolling at
//!   once is never slowed.
//! - [`RequestLimiter`]: every authenticated API request costs one token from
//!   the bucket of its bearer credential and one from its source address's
//!   bucket, so neither one leaked token nor one busy host can starve the
//!   controller.
//!
//! The source is the TCP peer, or the address a trusted proxy (the console, a
//! reverse proxy; `RITMA_API_TRUSTED_PROXIES`) put last in `X-Forwarded-For`.
//! A client's own `X-Forwarded-For` is ignored: it would let anyone pick a
//! fresh address per request.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use sha2::{Digest as _, Sha256};

use super::AppState;

/// Buckets kept before idle (full) ones are forgotten.
const MAX_TRACKED: usize = 10_000;

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets per key: `burst` at most, refilled at `per_sec`.
struct Buckets<K> {
    burst: f64,
    per_sec: f64,
    map: Mutex<HashMap<K, Bucket>>,
}

impl<K: Hash + Eq + Clone> Buckets<K> {
    fn new(burst: u32, per_sec: f64) -> Self {
        Self {
            burst: f64::from(burst.max(1)),
            per_sec: per_sec.max(1e-6),
            map: Mutex::new(HashMap::new()),
        }
    }

    fn refill(&self, b: &mut Bucket, now: Instant) {
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.per_sec).min(self.burst);
        b.at = now;
    }

    fn wait_for(&self, b: &Bucket) -> Duration {
        Duration::from_secs_f64((1.0 - b.tokens).max(0.0) / self.per_sec)
    }

    /// `Err(wait)` when `key`'s bucket is empty; takes nothing.
    fn check(&self, key: &K) -> Result<(), Duration> {
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let Some(b) = map.get_mut(key) else {
            return Ok(());
        };
        self.refill(b, now);
        if b.tokens >= 1.0 {
            Ok(())
        } else {
            Err(self.wait_for(b))
        }
    }

    /// Take one token from `key`'s bucket (down to empty, never below).
    /// `Err(wait)` when there was none to take.
    fn take(&self, key: &K) -> Result<(), Duration> {
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_TRACKED && !map.contains_key(key) {
            let (burst, per_sec) = (self.burst, self.per_sec);
            map.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * per_sec < burst
            });
            if map.len() >= MAX_TRACKED {
                return Ok(()); // under a flood of keys: stay bounded
            }
        }
        let b = map.entry(key.clone()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        self.refill(b, now);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(self.wait_for(b))
        }
    }
}

pub struct FailureLimiter {
    buckets: Buckets<IpAddr>,
}

impl FailureLimiter {
    pub fn new(burst: u32, per_minute: u32) -> Self {
        Self {
            buckets: Buckets::new(burst, f64::from(per_minute.max(1)) / 60.0),
        }
    }

    /// `Err(wait)` when `ip` has no attempt left.
    pub fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        self.buckets.check(&ip)
    }

    /// Count one refused attempt from `ip`.
    pub fn record_failure(&self, ip: IpAddr) {
        let _ = self.buckets.take(&ip);
    }
}

/// Request budgets per credential and per source address (`None`: unlimited).
pub struct RequestLimiter {
    per_credential: Option<Buckets<[u8; 16]>>,
    per_address: Option<Buckets<IpAddr>>,
    trusted_proxies: Vec<IpAddr>,
}

/// A budget: sustained requests per second, and the burst allowed on top.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub per_sec: u32,
    pub burst: u32,
}

impl Budget {
    fn buckets<K: Hash + Eq + Clone>(self) -> Option<Buckets<K>> {
        (self.per_sec > 0)
            .then(|| Buckets::new(self.burst.max(self.per_sec), f64::from(self.per_sec)))
    }
}

impl RequestLimiter {
    /// A budget of `per_sec == 0` turns that limit off.
    pub fn new(per_credential: Budget, per_address: Budget, trusted_proxies: Vec<IpAddr>) -> Self {
        Self {
            per_credential: per_credential.buckets(),
            per_address: per_address.buckets(),
            trusted_proxies,
        }
    }

    /// The client's address: the TCP peer, or what a trusted proxy forwarded.
    pub fn client_address(&self, req: &Request) -> IpAddr {
        client_address(req, &self.trusted_proxies)
    }

    /// Charge one request. `Err((what, wait))` names the exhausted budget.
    fn charge(&self, credential: Option<&str>, ip: IpAddr) -> Result<(), (&'static str, Duration)> {
        if let Some(b) = &self.per_address {
            b.take(&ip).map_err(|w| ("address", w))?;
        }
        if let (Some(b), Some(c)) = (&self.per_credential, credential) {
            // Keyed by a digest: the limiter never holds a usable secret.
            let digest = Sha256::digest(c.as_bytes());
            let mut key = [0u8; 16];
            key.copy_from_slice(&digest[..16]);
            b.take(&key).map_err(|w| ("credential", w))?;
        }
        Ok(())
    }
}

fn peer_ip(req: &Request) -> IpAddr {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip())
}

/// The TCP peer, unless it is a trusted proxy: then the last address in
/// `X-Forwarded-For` (the one that proxy appended; earlier ones are the
/// client's own claims).
pub fn client_address(req: &Request, trusted_proxies: &[IpAddr]) -> IpAddr {
    let peer = peer_ip(req);
    if !trusted_proxies.contains(&peer) {
        return peer;
    }
    req.headers()
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse::<IpAddr>().ok())
        .next_back()
        .unwrap_or(peer)
}

fn too_many(message: String, wait: Duration) -> Response {
    let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
    let mut resp = (
        StatusCode::TOO_MANY_REQUESTS,
        axum::Json(json!({ "error": "rate_limited", "message": message })),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

/// Middleware for every authenticated route: runs before authentication, so
/// a flood of bad tokens spends its address's budget too.
pub async fn limit_requests(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let ip = state.request_limiter.client_address(&req);
    let credential = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .or_else(|| req.headers().get("x-user-id").and_then(|v| v.to_str().ok()));
    if let Err((what, wait)) = state.request_limiter.charge(credential, ip) {
        tracing::warn!(%ip, budget = what, retry_after_ms = wait.as_millis() as u64, "API requests rate-limited");
        return too_many(
            format!("too many requests for this {what}; retry after the Retry-After delay"),
            wait,
        );
    }
    next.run(req).await
}

/// Middleware for the unauthenticated enrollment and credential routes.
pub async fn limit_failures(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let ip = state.request_limiter.client_address(&req);
    if let Err(wait) = state.enroll_limiter.check(ip) {
        tracing::warn!(%ip, retry_after_ms = wait.as_millis() as u64, "enrollment attempts rate-limited");
        return too_many(
            "too many refused attempts from this address; retry after the Retry-After delay".into(),
            wait,
        );
    }
    let resp = next.run(req).await;
    if matches!(
        resp.status(),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::NOT_FOUND
    ) {
        state.enroll_limiter.record_failure(ip);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_attempts_empty_the_bucket_and_it_refills() {
        let l = FailureLimiter::new(3, 600); // 10 per second
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let other = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
        for _ in 0..3 {
            assert!(l.check(ip).is_ok());
            l.record_failure(ip);
        }
        let wait = l.check(ip).expect_err("bucket empty");
        assert!(wait <= Duration::from_millis(100), "{wait:?}");
        assert!(l.check(other).is_ok(), "other sources are not affected");
        std::thread::sleep(Duration::from_millis(120));
        assert!(l.check(ip).is_ok(), "refilled");
    }

    #[test]
    fn request_budgets_are_per_credential_and_per_address() {
        let l = RequestLimiter::new(
            Budget {
                per_sec: 1,
                burst: 3,
            },
            Budget {
                per_sec: 1,
                burst: 5,
            },
            vec![],
        );
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        for _ in 0..3 {
            assert!(l.charge(Some("token-a"), ip).is_ok());
        }
        let (what, wait) = l.charge(Some("token-a"), ip).expect_err("token-a spent");
        assert_eq!(what, "credential");
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        // Another credential from the same address has its own budget, until
        // the address's runs out.
        assert!(l.charge(Some("token-b"), ip).is_ok());
        let (what, _) = l.charge(Some("token-c"), ip).expect_err("address spent");
        assert_eq!(what, "address");
        let other = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
        assert!(l.charge(Some("token-d"), other).is_ok());
    }

    #[test]
    fn zero_budget_is_unlimited() {
        let off = Budget {
            per_sec: 0,
            burst: 0,
        };
        let l = RequestLimiter::new(off, off, vec![]);
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        for _ in 0..10_000 {
            assert!(l.charge(Some("t"), ip).is_ok());
        }
    }

    #[test]
    fn forwarded_address_is_trusted_only_from_a_trusted_proxy() {
        let proxy: IpAddr = "10.0.0.5".parse().unwrap();
        let make = |peer: IpAddr, xff: &str| {
            let mut req = Request::new(axum::body::Body::empty());
            req.extensions_mut()
                .insert(ConnectInfo(SocketAddr::new(peer, 40000)));
            req.headers_mut()
                .insert("x-forwarded-for", HeaderValue::from_str(xff).unwrap());
            req
        };
        let spoofed = "6.6.6.6, 192.0.2.7";
        assert_eq!(
            client_address(&make(proxy, spoofed), &[proxy]),
            "192.0.2.7".parse::<IpAddr>().unwrap(),
            "the proxy's own entry is the last one"
        );
        let stranger: IpAddr = "198.51.100.9".parse().unwrap();
        assert_eq!(client_address(&make(stranger, spoofed), &[proxy]), stranger);
    }
}
