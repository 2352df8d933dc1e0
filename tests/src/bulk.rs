//! Shared by the bulk job tests: nodes inserted in bulk, requests, waiting
//! for a job to end.

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use crate::TestStack;

/// `n` nodes of `org` inserted with SQL (bulk jobs and exports), ids `<org>-000001`..., half `prod` and half `dev`,
/// label `rack=r<i % 10>`, every tenth offline.
pub async fn insert_nodes(stack: &TestStack, org: &str, n: i32) {
    sqlx::query(
        "INSERT INTO nodes (id, org_id, tenant_id, public_key, hostname, labels, status, interval_secs)
         SELECT $1 || '-' || lpad(i::text, 6, '0'), $1, CASE WHEN i % 2 = 0 THEN 'prod' ELSE 'dev' END,
                'UBULK' || $1 || i, 'host-' || i, jsonb_build_object('rack', 'r' || (i % 10)),
                CASE WHEN i % 10 = 0 THEN 'offline' ELSE 'online' END, 10
         FROM generate_series(1, $2) i",
    )
    .bind(org)
    .bind(n)
    .execute(&stack.pool)
    .await
    .unwrap();
}

pub async fn post(stack: &TestStack, path: &str, body: Value) -> (u16, Value) {
    stack.api(Method::POST, path, Some(body)).await
}

/// Wait until the job is done (or failed) and return it.
pub async fn finished(stack: &TestStack, org: &str, id: &str, timeout: Duration) -> Value {
    let path = format!("/api/orgs/{org}/bulk-jobs/{id}");
    stack
        .eventually("the bulk job to end", timeout, || async {
            let (status, job) = stack.api(Method::GET, &path, None).await;
            assert_eq!(status, 200, "{job}");
            matches!(job["state"].as_str(), Some("done" | "failed")).then_some(job)
        })
        .await
}
