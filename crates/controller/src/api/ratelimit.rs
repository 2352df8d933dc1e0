//! In-memory token buckets that answer `429` with `Retry-After`.
//!
//! - [`FailureLimiter`]: against enrollment-token and credential brute force.
//!   A refused attempt costs one token from a bucket of `burst`, refilled at
//!   `per_minute`. Requests that succeed cost nothing, so a fleet enrolling at
//!   once is never slowed. Whose bucket pays depends on what was refused: an
//!   attempt naming a node or an enrollment token that exists pays from the
//!   bucket of that node or token (at that address), so one misbehaving node
//!   behind a proxy or NAT cannot lock out the nodes sharing its address; an
//!   attempt naming nothing that exists (a guessed token, an unknown node)
//!   pays from its address's bucket, which is what bounds guessing.
//! - [`RequestLimiter`]: every authenticated API request costs one token from
//!   the bucket of its bearer credential and one from its source address's
//!   bucket, so neither one leaked token nor one busy host can starve the
//!   controller.
//!
//! The source is the TCP peer, or the address a trusted proxy (the console, a
//! reverse proxy; `RITMA_API_TRUSTED_PROXIES`, addresses or CIDR ranges) put
//! last in `X-Forwarded-For`.
//! A client's own `X-Forwarded-For` is ignored: it would let anyone pick a
//! fresh address per request.
//!
//! Replicas: the documented rates are for the whole deployment. Each of
//! `RITMA_API_REPLICAS` controllers enforces its share (rate and burst
//! divided by the replica count, see `shared_by`), so N replicas behind a
//! load balancer allow the documented rate in total, not N times it. This was
//! chosen over a shared store because it costs nothing per request (no
//! database round trip on every API call, no limiter outage when the store
//! is slow) and fails safe: with a replica down the total allowed is lower,
//! never higher. The price: a client whose requests all land on one replica
//! (sticky balancing) gets only that replica's share.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;
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

    /// One replica's share of a budget `replicas` replicas enforce together
    /// (a burst of at least one, so a tiny budget still lets a request through).
    fn shared_by(mut self, replicas: u32) -> Self {
        let n = f64::from(replicas.max(1));
        self.burst = (self.burst / n).max(1.0);
        self.per_sec /= n;
        self
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

/// A budget per key (a node's dry runs): `burst` at once, `per_minute` after.
pub struct KeyedLimiter {
    buckets: Buckets<String>,
}

impl KeyedLimiter {
    pub fn new(burst: u32, per_minute: u32) -> Self {
        Self {
            buckets: Buckets::new(burst, f64::from(per_minute.max(1)) / 60.0),
        }
    }

    /// This replica's share when `replicas` controllers serve the API.
    pub fn shared_by(self, replicas: u32) -> Self {
        Self {
            buckets: self.buckets.shared_by(replicas),
        }
    }

    /// Take one from `key`'s budget; `Err(wait)` when it is spent.
    pub fn take(&self, key: &str) -> Result<(), Duration> {
        self.buckets.take(&key.to_owned())
    }
}

/// What a node-facing request names: the node of a signed call, or the
/// enrollment token of a registration (kept as a digest, never the secret).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKey {
    Node([u8; 16]),
    Token([u8; 16]),
}

fn digest16(parts: &[&[u8]]) -> [u8; 16] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    let digest = h.finalize();
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest[..16]);
    key
}

impl FailureKey {
    pub fn node(id: &str) -> Self {
        Self::Node(digest16(&[b"node:", id.as_bytes()]))
    }

    pub fn token(secret: &str) -> Self {
        Self::Token(digest16(&[b"token:", secret.trim().as_bytes()]))
    }
}

pub struct FailureLimiter {
    per_address: Buckets<IpAddr>,
    per_key: Buckets<(FailureKey, IpAddr)>,
}

impl FailureLimiter {
    pub fn new(burst: u32, per_minute: u32) -> Self {
        let per_sec = f64::from(per_minute.max(1)) / 60.0;
        Self {
            per_address: Buckets::new(burst, per_sec),
            per_key: Buckets::new(burst, per_sec),
        }
    }

    /// This replica's share when `replicas` controllers serve the API.
    pub fn shared_by(self, replicas: u32) -> Self {
        Self {
            per_address: self.per_address.shared_by(replicas),
            per_key: self.per_key.shared_by(replicas),
        }
    }

    /// `Err(wait)` when `ip`, or `key` at `ip`, has no attempt left.
    pub fn check(&self, ip: IpAddr, key: Option<FailureKey>) -> Result<(), Duration> {
        self.per_address.check(&ip)?;
        match key {
            Some(k) => self.per_key.check(&(k, ip)),
            None => Ok(()),
        }
    }

    /// Count one refused attempt from `ip`: against `known` (a node or token
    /// that exists) when there is one, else against the address.
    pub fn record_failure(&self, ip: IpAddr, known: Option<FailureKey>) {
        let _ = match known {
            Some(k) => self.per_key.take(&(k, ip)),
            None => self.per_address.take(&ip),
        };
    }
}

/// An address or a CIDR range (`10.0.0.0/8`, `fd00::/8`) of trusted proxies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    base: IpAddr,
    prefix: u8,
}

impl IpRange {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.base, ip) {
            (IpAddr::V4(b), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(b) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(b), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(b) & mask == u128::from(a) & mask
            }
            // An IPv4 client seen through an IPv6 socket.
            (IpAddr::V4(_), IpAddr::V6(a)) => a
                .to_ipv4_mapped()
                .is_some_and(|a| self.contains(IpAddr::V4(a))),
            (IpAddr::V6(_), IpAddr::V4(_)) => false,
        }
    }
}

impl From<IpAddr> for IpRange {
    fn from(base: IpAddr) -> Self {
        let prefix = if base.is_ipv4() { 32 } else { 128 };
        Self { base, prefix }
    }
}

impl FromStr for IpRange {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let base: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or CIDR range"))?;
        let max = if base.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?}: the prefix length must be 0 to {max}"))?,
        };
        Ok(Self { base, prefix })
    }
}

/// Request budgets per credential and per source address (`None`: unlimited).
pub struct RequestLimiter {
    per_credential: Option<Buckets<[u8; 16]>>,
    per_address: Option<Buckets<IpAddr>>,
    trusted_proxies: Vec<IpRange>,
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
    pub fn new(per_credential: Budget, per_address: Budget, trusted_proxies: Vec<IpRange>) -> Self {
        Self {
            per_credential: per_credential.buckets(),
            per_address: per_address.buckets(),
            trusted_proxies,
        }
    }

    /// This replica's share when `replicas` controllers serve the API.
    pub fn shared_by(self, replicas: u32) -> Self {
        Self {
            per_credential: self.per_credential.map(|b| b.shared_by(replicas)),
            per_address: self.per_address.map(|b| b.shared_by(replicas)),
            trusted_proxies: self.trusted_proxies,
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
            b.take(&digest16(&[c.as_bytes()]))
                .map_err(|w| ("credential", w))?;
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
pub fn client_address(req: &Request, trusted_proxies: &[IpRange]) -> IpAddr {
    let peer = peer_ip(req);
    if !trusted_proxies.iter().any(|r| r.contains(peer)) {
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

/// What a node-facing request names: `/api/nodes/{id}/...` names a node,
/// `/api/nodes/register` the enrollment token in its body.
fn failure_key(path: &str, body: &[u8]) -> Option<FailureKey> {
    let rest = path.strip_prefix("/api/nodes/")?;
    match rest.split_once('/') {
        Some((id, _)) if !id.is_empty() => Some(FailureKey::node(id)),
        None if rest == "register" => {
            #[derive(serde::Deserialize)]
            struct TokenOnly<'a> {
                #[serde(borrow)]
                token: std::borrow::Cow<'a, str>,
            }
            let t: TokenOnly<'_> = serde_json::from_slice(body).ok()?;
            Some(FailureKey::token(&t.token))
        }
        _ => None,
    }
}

/// Whether the node or token a refused request named exists: then the
/// refusal is charged to it, not to the address it came from.
async fn failure_key_exists(state: &AppState, path: &str, body: &[u8]) -> bool {
    let Some(rest) = path.strip_prefix("/api/nodes/") else {
        return false;
    };
    let found = match rest.split_once('/') {
        Some((id, _)) => ritma_db::nodes::node_get_any(&state.pool, id)
            .await
            .map(|n| n.is_some()),
        None => {
            let Some(token) = serde_json::from_slice::<serde_json::Value>(body)
                .ok()
                .and_then(|v| v.get("token")?.as_str().map(str::to_owned))
            else {
                return false;
            };
            let hash = crate::crypto::sha256(token.trim().as_bytes());
            ritma_db::tokens::token_exists_by_hash(&state.pool, &hash).await
        }
    };
    found.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "rate limiter: lookup failed; charging the address");
        false
    })
}

/// Middleware for the node-facing routes (enrollment, signed credential,
/// re-key and policy calls).
pub async fn limit_failures(State(state): State<AppState>, req: Request, next: Next) -> Response {
    use axum::response::IntoResponse as _;
    let ip = state.request_limiter.client_address(&req);
    let path = req.uri().path().to_owned();
    // Bodies here are small JSON documents under the API's body limit; the
    // token a registration names is read from it, then it is handed on.
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, super::MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(_) => return crate::error::ApiError::TooLarge.into_response(),
    };
    let key = failure_key(&path, &body);
    if let Err(wait) = state.enroll_limiter.check(ip, key) {
        tracing::warn!(%ip, retry_after_ms = wait.as_millis() as u64, "enrollment or credential attempts rate-limited");
        return too_many(
            "too many refused attempts; retry after the Retry-After delay".into(),
            wait,
        );
    }
    let req = Request::from_parts(parts, axum::body::Body::from(body.clone()));
    let resp = next.run(req).await;
    if matches!(
        resp.status(),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::NOT_FOUND
    ) {
        let known = match key {
            Some(k) if failure_key_exists(&state, &path, &body).await => Some(k),
            _ => None,
        };
        state.enroll_limiter.record_failure(ip, known);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_together_allow_the_documented_budget_not_n_times_it() {
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        for replicas in [1u32, 2, 3, 4] {
            let budget = Budget {
                per_sec: 1,
                burst: 60,
            };
            let limiters: Vec<RequestLimiter> = (0..replicas)
                .map(|_| RequestLimiter::new(budget, budget, vec![]).shared_by(replicas))
                .collect();
            // A round-robin balancer: request i goes to replica i mod n.
            let allowed = (0..600)
                .filter(|i| limiters[i % limiters.len()].charge(Some("t"), ip).is_ok())
                .count();
            assert!(
                (60..=62).contains(&allowed),
                "{replicas} replicas allowed {allowed} of a burst of 60"
            );
            let failures: Vec<FailureLimiter> = (0..replicas)
                .map(|_| FailureLimiter::new(10, 1).shared_by(replicas))
                .collect();
            let mut refused_attempts = 0;
            for i in 0..100 {
                let l = &failures[i % failures.len()];
                if l.check(ip, None).is_ok() {
                    l.record_failure(ip, None);
                    refused_attempts += 1;
                }
            }
            // Each replica's share is rounded down: never more than the
            // budget in total, and at most one guess per replica less.
            assert!(
                (10 - replicas + 1..=10).contains(&refused_attempts),
                "{replicas} replicas: {refused_attempts} guesses in total"
            );
        }
    }

    #[test]
    fn refused_attempts_empty_the_bucket_and_it_refills() {
        let l = FailureLimiter::new(3, 600); // 10 per second
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let other = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
        for _ in 0..3 {
            assert!(l.check(ip, None).is_ok());
            l.record_failure(ip, None);
        }
        let wait = l.check(ip, None).expect_err("bucket empty");
        assert!(wait <= Duration::from_millis(100), "{wait:?}");
        assert!(
            l.check(other, None).is_ok(),
            "other sources are not affected"
        );
        std::thread::sleep(Duration::from_millis(120));
        assert!(l.check(ip, None).is_ok(), "refilled");
    }

    #[test]
    fn refusals_of_a_known_node_spend_that_node_s_bucket_not_its_address_s() {
        let l = FailureLimiter::new(3, 1); // no refill within the test
        let proxy = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let bad = FailureKey::node("bad-node");
        for _ in 0..10 {
            l.record_failure(proxy, Some(bad));
        }
        assert!(
            l.check(proxy, Some(bad)).is_err(),
            "the bad node is refused"
        );
        assert!(
            l.check(proxy, Some(FailureKey::node("good-node"))).is_ok(),
            "its neighbours behind the same address are not"
        );
        let elsewhere = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        assert!(
            l.check(elsewhere, Some(bad)).is_ok(),
            "nor is the same node id from another address (no lock-out of a victim by id)"
        );
        // Guesses (nothing known) spend the address's bucket, for everyone there.
        for _ in 0..3 {
            l.record_failure(proxy, None);
        }
        assert!(l.check(proxy, Some(FailureKey::node("good-node"))).is_err());
    }

    #[test]
    fn failure_keys_come_from_the_path_or_the_registration_token() {
        assert_eq!(
            failure_key("/api/nodes/web-1/credentials", b""),
            Some(FailureKey::node("web-1"))
        );
        assert_eq!(
            failure_key(
                "/api/nodes/register",
                br#"{"token":" ritma_et_x ","hostname":"h"}"#
            ),
            Some(FailureKey::token("ritma_et_x"))
        );
        assert_eq!(failure_key("/api/nodes/register", b"not json"), None);
        assert_eq!(failure_key("/api/orgs/demo/nodes", b""), None);
    }

    #[test]
    fn trusted_proxy_ranges_parse_and_match() {
        let r: IpRange = "10.0.0.0/8".parse().unwrap();
        assert!(r.contains("10.1.2.3".parse().unwrap()));
        assert!(!r.contains("11.0.0.1".parse().unwrap()));
        assert!(r.contains("::ffff:10.9.9.9".parse().unwrap()));
        let one: IpRange = "127.0.0.1".parse().unwrap();
        assert!(one.contains("127.0.0.1".parse().unwrap()));
        assert!(!one.contains("127.0.0.2".parse().unwrap()));
        let v6: IpRange = "fd00::/8".parse().unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!(
            "0.0.0.0/0"
                .parse::<IpRange>()
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        assert!("10.0.0.0/33".parse::<IpRange>().is_err());
        assert!("evil".parse::<IpRange>().is_err());
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
            client_address(&make(proxy, spoofed), &[proxy.into()]),
            "192.0.2.7".parse::<IpAddr>().unwrap(),
            "the proxy's own entry is the last one"
        );
        let stranger: IpAddr = "198.51.100.9".parse().unwrap();
        assert_eq!(
            client_address(&make(stranger, spoofed), &[proxy.into()]),
            stranger
        );
        let range: IpRange = "10.0.0.0/24".parse().unwrap();
        assert_eq!(
            client_address(&make(proxy, spoofed), &[range]),
            "192.0.2.7".parse::<IpAddr>().unwrap(),
            "a proxy inside a trusted range"
        );
    }
}
