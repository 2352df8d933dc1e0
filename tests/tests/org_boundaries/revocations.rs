//! Revocations that stay bounded, and rekeys rate limited per node.

use std::time::Duration;

use ritma_tests::*;
use serde_json::json;

use crate::helpers::{integrator_with, rekey};

/// The org's account JWT as the broker holds it (the full resolver's file).
fn account_jwt_on_disk(stack: &TestStack, account: &str) -> String {
    let dir = stack.dir.path().join("nats").join("resolver");
    let mut found = None;
    let mut stack_dirs = vec![dir];
    while let Some(d) = stack_dirs.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack_dirs.push(p);
            } else if p
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(account)
            {
                found = Some(std::fs::read_to_string(&p).unwrap());
            }
        }
    }
    found.unwrap_or_else(|| panic!("no resolver file for {account}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_thousand_revocations_keep_the_account_jwt_small_and_the_controller_starts() {
    let mut stack = TestStack::start().await.unwrap();
    stack.create_org("acme").await;
    let org = ritma_db::orgs::org_get(&stack.pool, "acme")
        .await
        .unwrap()
        .unwrap();
    // 20,000 revocations: 19,900 whose credentials have all expired, 100
    // still live. Fake keys of the real length (56 characters).
    sqlx::query(
        "INSERT INTO org_revocations (org_id, public_key, revoked_at, keep_until)
         SELECT 'acme', 'U' || upper(substr(md5(i::text) || md5((i + 7)::text), 1, 55)),
                now() - interval '2 days',
                CASE WHEN i <= 19900 THEN now() - interval '1 day' ELSE now() + interval '1 hour' END
         FROM generate_series(1, 20000) AS i",
    )
    .execute(&stack.pool)
    .await
    .unwrap();
    // Another org beyond the bound (12,000 live revocations): its account
    // cannot be pushed, but that keeps neither the controller nor acme down.
    stack.create_org("huge").await;
    sqlx::query(
        "INSERT INTO org_revocations (org_id, public_key, revoked_at, keep_until)
         SELECT 'huge', 'U' || upper(substr(md5(i::text) || md5((i + 3)::text), 1, 55)),
                now() - interval '1 minute', now() + interval '1 hour'
         FROM generate_series(1, 12000) AS i",
    )
    .execute(&stack.pool)
    .await
    .unwrap();

    // The controller restarts: it pushes every account at start.
    stack.controller.take().unwrap().stop().await;
    stack.controller = Some(
        stack
            .start_controller(&|_| {})
            .await
            .expect("the controller starts with 20,000 revocations on record"),
    );
    let jwt = account_jwt_on_disk(&stack, &org.nats_account_public_key);
    let claims = ritma_bus::jwt::decode_verified(&jwt).unwrap();
    let revoked = claims.nats["revocations"].as_object().unwrap();
    assert_eq!(revoked.len(), 100, "only the live ones are pushed");
    assert!(jwt.len() < 1024 * 1024, "{} bytes", jwt.len());
    // A revocation in the org beyond the bound is refused loudly.
    let pk = nkeys::KeyPair::new_user().public_key();
    let (status, body) = integrator_with(&stack, "huge", json!({ "public_key": pk })).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = stack
        .api(
            reqwest::Method::DELETE,
            &format!("/api/orgs/huge/integrator-credentials/{pk}"),
            None,
        )
        .await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("max_payload"),
        "{body}"
    );

    // A fresh revocation is still enforced by the broker, and kept as long
    // as the node's credential could be used.
    let (mut node, reply, key) = stack.enroll_connected("acme", "prod", "cut-1").await;
    let (status, body) = stack
        .api(
            reqwest::Method::POST,
            "/api/orgs/acme/nodes/cut-1/decommission",
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    node.expect_error("revoked", Duration::from_secs(5)).await;
    let keep_until: chrono::DateTime<chrono::Utc> = sqlx::query_scalar(
        "SELECT keep_until FROM org_revocations WHERE org_id = 'acme' AND public_key = $1",
    )
    .bind(key.public_key())
    .fetch_one(&stack.pool)
    .await
    .unwrap();
    let jwt_expiry: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(reply["jwt_expires_at"].clone()).unwrap();
    assert!(
        (keep_until - jwt_expiry).num_seconds().abs() <= 2,
        "{keep_until} vs {jwt_expiry}"
    );
    let jwt = account_jwt_on_disk(&stack, &org.nats_account_public_key);
    let claims = ritma_bus::jwt::decode_verified(&jwt).unwrap();
    assert!(
        claims.nats["revocations"]
            .as_object()
            .unwrap()
            .contains_key(&key.public_key())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rekeys_are_rate_limited_per_node() {
    let stack = TestStack::start().await.unwrap();
    stack.create_org("acme").await;
    let (_a, _, a1) = stack.enroll_connected("acme", "prod", "rk-a").await;
    let (_b, _, b1) = stack.enroll_connected("acme", "prod", "rk-b").await;
    let (status, body, a2, _) = rekey(&stack, "rk-a", &a1).await;
    assert_eq!(status, 200, "{body}");
    // Again at once, with the new key: refused, with a clear error.
    let (status, body, _, retry) = rekey(&stack, "rk-a", &a2).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"], "rekey_too_soon", "{body}");
    let retry: u64 = retry.expect("Retry-After").parse().unwrap();
    assert!(retry > 0 && retry <= 3600, "{retry}");
    let current: String = sqlx::query_scalar("SELECT public_key FROM nodes WHERE id = 'rk-a'")
        .fetch_one(&stack.pool)
        .await
        .unwrap();
    assert_eq!(current, a2.public_key(), "nothing changed");
    // Per node: another node re-keys freely.
    let (status, body, _, _) = rekey(&stack, "rk-b", &b1).await;
    assert_eq!(status, 200, "{body}");
}
