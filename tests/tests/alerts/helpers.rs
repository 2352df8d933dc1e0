//! Shared by the alert tests: the webhook secret, loopback targets, and
//! channel, rule and delivery calls.

use hmac::{Hmac, Mac};
use reqwest::Method;
use ritma_tests::*;
use serde_json::{Value, json};
use sha2::Sha256;

pub(crate) const SECRET: &str = "whsec-test-0123456789abcdef";

pub(crate) const METRICS_TOKEN: &str = "alerts-metrics-token-0123456789";

pub(crate) fn allow_loopback(c: &mut ritma_controller::config::Config) {
    c.alerts.allowed_networks = vec!["127.0.0.0/8".parse().unwrap(), "::1".parse().unwrap()];
    c.alerts.retry_base_ms = 200;
    c.alerts.eval_ms = 200;
    c.metrics_token = Some(METRICS_TOKEN.into());
}

pub(crate) async fn webhook_channel(stack: &TestStack, org: &str, url: &str) -> String {
    let (status, body) = stack
        .api(
            Method::POST,
            &format!("/api/orgs/{org}/notification-channels"),
            Some(json!({ "name": "ops hook", "kind": "webhook", "url": url, "secret": SECRET })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

pub(crate) async fn rule(stack: &TestStack, org: &str, body: Value) -> Value {
    let (status, rule) = stack
        .api(
            Method::POST,
            &format!("/api/orgs/{org}/alert-rules"),
            Some(body),
        )
        .await;
    assert_eq!(status, 201, "{rule}");
    rule
}

pub(crate) fn signed_by(r: &alert_sinks::Received, secret: &str) -> bool {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(&r.body);
    r.header("x-ritma-signature") == format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

pub(crate) async fn deliveries(stack: &TestStack, org: &str, channel: &str) -> Vec<Value> {
    let (status, body) = stack
        .api(
            Method::GET,
            &format!("/api/orgs/{org}/notification-channels/{channel}/deliveries"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["items"].as_array().cloned().unwrap_or_default()
}
