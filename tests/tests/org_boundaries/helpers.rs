//! Shared by the org boundary tests.

use ritma_tests::*;
use serde_json::{Value, json};

pub(crate) async fn integrator_with(stack: &TestStack, org: &str, body: Value) -> (u16, Value) {
    stack
        .api(
            reqwest::Method::POST,
            &format!("/api/orgs/{org}/integrator-credentials"),
            Some(body),
        )
        .await
}

/// Re-key `node` from `current` to a fresh key through the API.
pub(crate) async fn rekey(
    stack: &TestStack,
    node: &str,
    current: &nkeys::KeyPair,
) -> (u16, Value, nkeys::KeyPair, Option<String>) {
    let next = nkeys::KeyPair::new_user();
    let ts = chrono::Utc::now().timestamp();
    let node_id = ritma_protocol::NodeId::new(node).unwrap();
    let sig = current
        .sign(
            ritma_protocol::enrollment::rekey_challenge(&node_id, &next.public_key(), ts)
                .as_bytes(),
        )
        .unwrap();
    let resp = stack
        .http
        .post(format!("{}/api/nodes/{node}/rekey", stack.api_url()))
        .json(&json!({
            "new_public_key": next.public_key(), "timestamp": ts,
            "signature": data_encoding::BASE64URL_NOPAD.encode(&sig),
        }))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let retry = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (
        status,
        resp.json().await.unwrap_or(Value::Null),
        next,
        retry,
    )
}
