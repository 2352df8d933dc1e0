//! The REST API: authentication, and the inventory's filters and pages.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed assertion

use reqwest::Method;
use ritma_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_admin_route_requires_the_token() {
    let stack = TestStack::start().await.unwrap();
    stack.create_org("acme").await;
    for (method, path) in [
        (Method::GET, "/api/orgs"),
        (Method::POST, "/api/orgs"),
        (Method::GET, "/api/orgs/acme/nodes"),
        (Method::GET, "/api/orgs/acme/nodes/x"),
        (Method::POST, "/api/orgs/acme/nodes/x/decommission"),
        (Method::GET, "/api/orgs/acme/enrollment-tokens"),
        (Method::POST, "/api/orgs/acme/enrollment-tokens"),
        (Method::POST, "/api/orgs/acme/integrator-credentials"),
        (Method::GET, "/api/orgs/acme/integrator-credentials"),
        (Method::DELETE, "/api/orgs/acme/integrator-credentials/UABC"),
        (Method::GET, "/api/orgs/acme/audit"),
        (Method::GET, "/api/orgs/acme/roles"),
        (Method::POST, "/api/orgs/acme/roles"),
        (Method::DELETE, "/api/orgs/acme/roles/x/viewer"),
        (Method::GET, "/api/orgs/acme/nodes/summary"),
        (Method::GET, "/api/me"),
    ] {
        for auth in [None, Some("wrong-token-wrong-token")] {
            let mut req = stack
                .http
                .request(method.clone(), format!("{}{path}", stack.api_url()));
            if let Some(t) = auth {
                req = req.bearer_auth(t);
            }
            let r = req.send().await.unwrap();
            assert_eq!(r.status().as_u16(), 401, "{method} {path} with {auth:?}");
        }
    }
    let r = stack
        .http
        .get(format!("{}/healthz", stack.api_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = stack
        .http
        .get(format!("{}/readyz", stack.api_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inventory_filters_sorts_and_pages() {
    let stack = TestStack::start().await.unwrap();
    stack.create_org("acme").await;
    for (tenant, n) in [("prod", 7), ("dev", 5)] {
        let token = stack.create_token("acme", tenant, 100).await;
        for i in 0..n {
            let (status, body, _) = stack.enroll_raw(&token, &format!("{tenant}-{i:02}")).await;
            assert_eq!(status, 200, "{body}");
        }
    }
    let (_, page) = stack
        .api(Method::GET, "/api/orgs/acme/nodes?tenant=prod", None)
        .await;
    assert_eq!(page["total"], 7);
    let (_, page) = stack
        .api(Method::GET, "/api/orgs/acme/nodes?q=dev-0", None)
        .await;
    assert_eq!(page["total"], 5);
    let (_, page) = stack
        .api(Method::GET, "/api/orgs/acme/nodes?status=online", None)
        .await;
    assert_eq!(page["total"], 0);
    let (_, page) = stack
        .api(Method::GET, "/api/orgs/acme/nodes?status=unseen", None)
        .await;
    assert_eq!(page["total"], 12);
    let (status, err) = stack
        .api(Method::GET, "/api/orgs/acme/nodes?status=bogus", None)
        .await;
    assert_eq!(
        (status, err["error"].as_str()),
        (400, Some("invalid_request"))
    );
    let (status, _) = stack
        .api(Method::GET, "/api/orgs/acme/nodes?cursor=%%%", None)
        .await;
    assert_eq!(status, 400);

    // Walk all pages of 5, descending by name: every node once, in order.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/orgs/acme/nodes?limit=5&order=desc&cursor={c}"),
            None => "/api/orgs/acme/nodes?limit=5&order=desc".into(),
        };
        let (status, page) = stack.api(Method::GET, &path, None).await;
        assert_eq!(status, 200, "{page}");
        for item in page["items"].as_array().unwrap() {
            seen.push(item["id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let mut expected = seen.clone();
    expected.sort();
    expected.reverse();
    expected.dedup();
    assert_eq!(seen, expected);
    assert_eq!(seen.len(), 12);

    // Labels from the token are filterable; another org's node is a 404.
    let (status, _) = stack
        .api(Method::GET, "/api/orgs/acme/nodes/prod-00", None)
        .await;
    assert_eq!(status, 200);
    stack.create_org("globex").await;
    let (status, _) = stack
        .api(Method::GET, "/api/orgs/globex/nodes/prod-00", None)
        .await;
    assert_eq!(status, 404);
}
