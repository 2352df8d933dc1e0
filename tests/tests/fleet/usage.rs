//! Usage and estimates from what nodes reported (with the `billing_daemon`
//! stand-in).

use std::time::Duration;

use reqwest::Method;
use ritma_tests::standins::StandIn;
use ritma_tests::{TestStack, usage_body};
use serde_json::json;

use crate::helpers::WAIT;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_and_the_estimate_come_from_what_nodes_reported() {
    let billing = StandIn::start().await;
    billing.set(|s| {
        s.drafts.insert(
            "prod".into(),
            json!({ "currency": "USD", "total": 42.5,
                    "lines": [{ "metric": "decisions", "quantity": 3000, "unit_price": 0.01, "amount": 42.5 }] }),
        );
    });
    let url = billing.url.clone();
    let stack = TestStack::start_with(move |c| c.billing_daemon_url = Some(url.clone()))
        .await
        .unwrap();
    stack.create_org("acme").await;
    let mut published = 0;
    for (tenant, node, reports) in [
        ("prod", "p-1", vec![(1, 1000), (2, 2000)]),
        ("dev", "d-1", vec![(1, 500)]),
    ] {
        let token = stack.create_token("acme", tenant, 1).await;
        let (status, reply, key) = stack.enroll_raw(&token, node).await;
        assert_eq!(status, 200, "{reply}");
        let bus = stack.connect_node(&reply, key).await.unwrap();
        let js = async_nats::jetstream::new(bus.client.clone());
        let subject = format!("ritma.acme.{tenant}.node.{node}.usage");
        for (seq, decisions) in &reports {
            js.publish(subject.clone(), usage_body(node, *seq, *decisions).into())
                .await
                .unwrap()
                .await
                .unwrap();
            published += 1;
        }
        // A redelivered report (same node and seq) must not count twice.
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", "a-different-copy");
        js.publish_with_headers(subject, headers, usage_body(node, 1, 1000).into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    assert_eq!(published, 3);
    let usage = stack
        .eventually("usage rolled up", WAIT, || async {
            let (_, u) = stack
                .api(Method::GET, "/api/orgs/acme/usage/summary", None)
                .await;
            (u["totals"]["decisions"] == 3500).then_some(u)
        })
        .await;
    // Let the duplicate copies reach the database too, then check again.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, usage_again) = stack
        .api(Method::GET, "/api/orgs/acme/usage/summary", None)
        .await;
    assert_eq!(usage_again["totals"], usage["totals"]);
    assert_eq!(usage["totals"]["dig_files"], 3);
    assert_eq!(usage["totals"]["storage_bytes"], 30);
    let tenants = usage["tenants"].as_array().unwrap();
    assert_eq!(tenants[0]["tenant_id"], "dev");
    assert_eq!(tenants[0]["decisions"], 500);
    assert_eq!(tenants[1]["tenant_id"], "prod");
    assert_eq!(tenants[1]["decisions"], 3000);
    assert_eq!(usage["daily"][0]["decisions"], 3500);

    let estimate = || async {
        stack
            .api(Method::GET, "/api/orgs/acme/billing/estimate", None)
            .await
    };
    let (status, e) = estimate().await;
    assert_eq!(status, 200, "{e}");
    assert_eq!(e["source"], "mixed");
    assert!(
        e["label"].as_str().unwrap().contains("not an invoice"),
        "{e}"
    );
    let by_tenant = |t: &str| {
        e["tenants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["tenant_id"] == t)
            .cloned()
            .unwrap()
    };
    assert_eq!(by_tenant("prod")["source"], "billing_daemon");
    assert_eq!(by_tenant("prod")["total"], 42.5);
    let dev = by_tenant("dev");
    assert_eq!(dev["source"], "price_table");
    assert!(dev["note"].as_str().unwrap().contains("billing"), "{dev}");
    assert_eq!(dev["lines"][0]["metric"], "decisions");
    assert_eq!(dev["lines"][0]["quantity"], 500);
    let dev_total: f64 = dev["total"].as_f64().unwrap();
    assert!((e["total"].as_f64().unwrap() - (42.5 + dev_total)).abs() < 1e-9);
    // Drafts are cached: a second look does not reach the billing daemon again.
    let (_, again) = estimate().await;
    assert_eq!(again["total"], e["total"]);
    let period = usage["period_idx"].as_i64().unwrap();
    assert_eq!(
        billing.count(&format!(
            "GET /invoice-draft?org_id=acme&tenant_id=prod&period_idx={period}"
        )),
        1
    );
    let (status, err) = stack
        .api(
            Method::GET,
            "/api/orgs/acme/usage/summary?period=2026-13",
            None,
        )
        .await;
    assert_eq!(status, 400, "{err}");
    let (_, empty) = stack
        .api(
            Method::GET,
            "/api/orgs/acme/usage/summary?period=2001-01",
            None,
        )
        .await;
    assert_eq!(empty["totals"]["decisions"], 0);
}
