//! Signing key ids are per org; path tricks are refused.

use std::time::Duration;

use ritma_tests::*;
use serde_json::json;

/// A request with the path exactly as given (no client-side normalisation
/// of `..` or `%2e`): the status code.
async fn raw_status(api_url: &str, method: &str, path: &str, body: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = api_url.trim_start_matches("http://");
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {ADMIN_TOKEN}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).await.unwrap();
    let text = String::from_utf8_lossy(&answer);
    text.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_key_ids_are_per_org_and_path_tricks_are_refused() {
    let cloud = standins::StandIn::start().await;
    cloud.set(|s| {
        for org in ["acme", "globex"] {
            s.keys.insert(
                format!("{org}/shared"),
                json!({ "key_id": "shared", "org": org, "label": org, "status": "active" }),
            );
        }
        s.keys.insert(
            "acme/evil".into(),
            json!({ "key_id": "../evil", "org": "acme", "status": "active" }),
        );
    });
    let url = cloud.url.clone();
    let stack = TestStack::start_with(move |c| {
        c.ritma_cloud_url = Some(url.clone());
        c.ritma_cloud_sync_secs = 1;
        c.fleet_reconcile_ms = 200;
    })
    .await
    .unwrap();
    stack.create_org("acme").await;
    stack.create_org("globex").await;
    for org in ["acme", "globex"] {
        stack
            .eventually("registry synced", Duration::from_secs(20), || async {
                let (_, keys) = stack
                    .api(reqwest::Method::GET, &format!("/api/orgs/{org}/keys"), None)
                    .await;
                let items = keys["items"].as_array().cloned().unwrap_or_default();
                (items.len() == 1 && items[0]["key_id"] == "shared").then_some(())
            })
            .await;
    }
    // The same id in two orgs: each org governs its own.
    let (status, key) = stack
        .api(
            reqwest::Method::PATCH,
            "/api/orgs/acme/keys/shared/governance",
            Some(json!({ "status": "revoked" })),
        )
        .await;
    assert_eq!(status, 200, "{key}");
    assert_eq!(key["status"], "revoked");
    assert_eq!(key["org_id"], "acme");
    assert_eq!(cloud.count("PATCH /orgs/acme/keys/shared/governance"), 1);
    let (_, globex) = stack
        .api(reqwest::Method::GET, "/api/orgs/globex/keys", None)
        .await;
    assert_eq!(globex["items"][0]["status"], "active", "{globex}");
    // Registering the same id in two orgs is fine too.
    for org in ["acme", "globex"] {
        let (status, body) = stack
            .api(
                reqwest::Method::POST,
                &format!("/api/orgs/{org}/keys"),
                Some(json!({ "key_id": "local-1" })),
            )
            .await;
        assert_eq!(status, 201, "{org}: {body}");
    }

    // Path tricks never reach the registry: 400.
    let before = cloud.state.lock().unwrap().seen.patches.len();
    for trick in [
        "..",
        "%2e%2e",
        ".%2e",
        "..%2fevil",
        "a%2fb",
        "a%2Fb",
        "%2fetc%2fpasswd",
        "a%5cb",
        "a%252fb",
        ".hidden",
        "a%20b",
    ] {
        let status = raw_status(
            &stack.api_url(),
            "PATCH",
            &format!("/api/orgs/acme/keys/{trick}/governance"),
            r#"{"status":"revoked"}"#,
        )
        .await;
        assert_eq!(status, 400, "{trick}");
    }
    for bad in ["..", "../x", "a/b", "%2e%2e", ".x"] {
        let (status, body) = stack
            .api(
                reqwest::Method::POST,
                "/api/orgs/acme/keys",
                Some(json!({ "key_id": bad })),
            )
            .await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    assert_eq!(cloud.state.lock().unwrap().seen.patches.len(), before);
    // An id from the registry with a path trick is not taken in.
    let (_, keys) = stack
        .api(reqwest::Method::GET, "/api/orgs/acme/keys", None)
        .await;
    assert!(
        keys["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["key_id"] != "../evil"),
        "{keys}"
    );
}
