//! Billing drafts are asked for and cached per org.

use std::time::Duration;

use ritma_tests::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn billing_drafts_are_asked_for_and_cached_per_org() {
    let billing = standins::StandIn::start().await;
    billing.set(|s| {
        s.drafts.insert(
            "acme/prod".into(),
            json!({ "currency": "USD", "total": 10.0, "lines": [] }),
        );
        s.drafts.insert(
            "globex/prod".into(),
            json!({ "currency": "USD", "total": 20.0, "lines": [] }),
        );
    });
    let url = billing.url.clone();
    let stack = TestStack::start_with(move |c| c.billing_daemon_url = Some(url.clone()))
        .await
        .unwrap();
    for org in ["acme", "globex"] {
        stack.create_org(org).await;
        let node = format!("{org}-1");
        let (bus, _, _) = stack.enroll_connected(org, "prod", &node).await;
        async_nats::jetstream::new(bus.client.clone())
            .publish(
                format!("ritma.{org}.prod.node.{node}.usage"),
                usage_body(&node, 1, 100).into(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let mut totals = Vec::new();
    for org in ["acme", "globex", "acme", "globex"] {
        let estimate = stack
            .eventually("usage rolled up", Duration::from_secs(20), || async {
                let (_, e) = stack
                    .api(
                        reqwest::Method::GET,
                        &format!("/api/orgs/{org}/billing/estimate"),
                        None,
                    )
                    .await;
                (e["tenants"].as_array().is_some_and(|t| !t.is_empty())).then_some(e)
            })
            .await;
        let prod = estimate["tenants"][0].clone();
        assert_eq!(prod["tenant_id"], "prod");
        assert_eq!(prod["source"], "billing_daemon", "{estimate}");
        totals.push(prod["total"].as_f64().unwrap());
    }
    assert_eq!(totals, [10.0, 20.0, 10.0, 20.0]);
    let requests = billing.state.lock().unwrap().seen.requests.clone();
    for org in ["acme", "globex"] {
        let asked: Vec<&String> = requests
            .iter()
            .filter(|r| r.contains(&format!("org_id={org}&tenant_id=prod")))
            .collect();
        assert_eq!(
            asked.len(),
            1,
            "one request per org, then cached: {requests:?}"
        );
    }
}
