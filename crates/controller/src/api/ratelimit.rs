//! A small in-memory limiter against enrollment-token and credential brute
//! force: each source IP has a bucket of `burst` refused attempts, refilled
//! at `per_minute`. Requests that succeed cost nothing, so a fleet enrolling
//! at once is never slowed; a source whose bucket is empty gets 429 with
//! `Retry-After` before its request is even looked at.
//!
//! The source is the TCP peer. Behind a reverse proxy every request comes
//! from the proxy: limit there too (the deploy guide's proxy snippets do).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;

/// Buckets kept before idle (full) ones are forgotten.
const MAX_TRACKED: usize = 10_000;

struct Bucket {
    tokens: f64,
    at: Instant,
}

pub struct FailureLimiter {
    burst: f64,
    per_sec: f64,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl FailureLimiter {
    pub fn new(burst: u32, per_minute: u32) -> Self {
        Self {
            burst: f64::from(burst.max(1)),
            per_sec: f64::from(per_minute.max(1)) / 60.0,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn refill(&self, b: &mut Bucket, now: Instant) {
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.per_sec).min(self.burst);
        b.at = now;
    }

    /// `Err(wait)` when `ip` has no attempt left.
    pub fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let Some(b) = buckets.get_mut(&ip) else {
            return Ok(());
        };
        self.refill(b, now);
        if b.tokens >= 1.0 {
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / self.per_sec))
        }
    }

    /// Count one refused attempt from `ip`.
    pub fn record_failure(&self, ip: IpAddr) {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(&ip) {
            let (burst, per_sec) = (self.burst, self.per_sec);
            buckets.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * per_sec < burst
            });
            if buckets.len() >= MAX_TRACKED {
                return; // under a flood of sources: stay bounded
            }
        }
        let b = buckets.entry(ip).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        self.refill(b, now);
        b.tokens = (b.tokens - 1.0).max(0.0);
    }
}

fn source_ip(req: &Request) -> IpAddr {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip())
}

/// Middleware for the unauthenticated enrollment and credential routes.
pub async fn limit_failures(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let ip = source_ip(&req);
    if let Err(wait) = state.enroll_limiter.check(ip) {
        let secs = wait.as_secs().max(1);
        tracing::warn!(%ip, retry_after = secs, "enrollment attempts rate-limited");
        let mut resp = (
            StatusCode::TOO_MANY_REQUESTS,
            axum::Json(json!({
                "error": "rate_limited",
                "message": format!("too many refused attempts from this address; retry in {secs} s"),
            })),
        )
            .into_response();
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return resp;
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
}
