//! `/metrics` of the controller, scraped for real after real traffic: the
//! counters move with what was committed and served, labels stay bounded
//! under a flood of made-up paths, and nobody reads it without the token.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed assertion

use std::time::Duration;

use async_nats::jetstream;
use ritma_tests::*;

const METRICS_TOKEN: &str = "test-metrics-token-0123456789";

fn value(text: &str, series: &str) -> f64 {
    ritma_tests::prom::series_value(text, series).unwrap_or(0.0)
}

async fn scrape(_http: &reqwest::Client, url: &str, token: Option<&str>) -> (u16, String) {
    ritma_tests::prom::scrape(url, token).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_move_with_real_traffic_and_labels_stay_bounded() {
    let metrics_port = ritma_devstack::ports::free_port().unwrap();
    let stack = TestStack::start_with(|c| {
        c.metrics_token = Some(METRICS_TOKEN.into());
        c.metrics_listen = Some(([127, 0, 0, 1], metrics_port).into());
    })
    .await
    .unwrap();
    let main_port = format!("{}/metrics", stack.api_url());
    let separate = format!("http://127.0.0.1:{metrics_port}/metrics");
    let (status, before) = scrape(&stack.http, &main_port, Some(METRICS_TOKEN)).await;
    assert_eq!(status, 200, "{before}");

    stack.create_org("acme").await;
    let (node, _, _) = stack.enroll_connected("acme", "prod", "m-node-1").await;
    let js = jetstream::new(node.client.clone());
    let hb = "ritma.acme.prod.node.m-node-1.heartbeat";
    let usage = "ritma.acme.prod.node.m-node-1.usage";
    for seq in 1..=5 {
        js.publish(hb, heartbeat_body("m-node-1", seq, 10).into())
            .await
            .unwrap()
            .await
            .unwrap();
        js.publish(usage, usage_body("m-node-1", seq, 3).into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    js.publish(hb, b"{not json".to_vec().into())
        .await
        .unwrap()
        .await
        .unwrap();
    stack
        .eventually("11 messages ingested", Duration::from_secs(15), || async {
            let (_, text) = scrape(&stack.http, &main_port, Some(METRICS_TOKEN)).await;
            (value(&text, "ritma_ingest_messages_total") >= 11.0).then_some(())
        })
        .await;

    // API traffic: 3 listings that answer 200, 2 lookups of a node that does not exist (404).
    for _ in 0..3 {
        let (s, _) = stack
            .api(reqwest::Method::GET, "/api/orgs/acme/nodes", None)
            .await;
        assert_eq!(s, 200);
    }
    for _ in 0..2 {
        let (s, _) = stack
            .api(
                reqwest::Method::GET,
                "/api/orgs/acme/nodes/no-such-node",
                None,
            )
            .await;
        assert_eq!(s, 404);
    }
    // An anonymous flood of made-up paths: one series, not one per path.
    for i in 0..200 {
        let _ = stack
            .http
            .get(format!("{}/no/such/{i}/path", stack.api_url()))
            .send()
            .await
            .unwrap();
    }

    let (status, text) = scrape(&stack.http, &separate, Some(METRICS_TOKEN)).await;
    assert_eq!(status, 200);
    assert_eq!(value(&text, "ritma_ingest_messages_total"), 11.0, "{text}");
    assert_eq!(
        value(&text, r#"ritma_ingest_rows_total{kind="summary"}"#),
        5.0
    );
    assert!(value(&text, r#"ritma_ingest_rows_total{kind="heartbeat"}"#) >= 1.0);
    assert_eq!(
        value(&text, r#"ritma_dead_letters_total{reason="malformed"}"#),
        1.0
    );
    assert_eq!(
        value(&text, r#"ritma_state_transitions_total{kind="online"}"#),
        1.0
    );
    assert!(value(&text, "ritma_ingest_commit_duration_seconds_count") >= 1.0);
    assert!(value(&text, "ritma_ingest_batch_messages_sum") >= 11.0);
    assert_eq!(value(&text, "ritma_ingest_database_ok"), 1.0);
    let listed = r#"ritma_api_requests_total{method="GET",route="/api/orgs/{org}/nodes",status="#;
    assert_eq!(value(&text, &format!(r#"{listed}"200"}}"#)), 3.0, "{text}");
    assert_eq!(
        value(
            &text,
            r#"ritma_api_requests_total{method="GET",route="/api/orgs/{org}/nodes/{id}",status="404"}"#
        ),
        2.0,
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            r#"ritma_api_requests_total{method="GET",route="unmatched",status="404"}"#
        ),
        200.0
    );
    assert!(
        !text.contains("/no/such/"),
        "a raw path became a label value"
    );
    assert_eq!(
        value(
            &text,
            r#"ritma_api_request_duration_seconds_count{method="GET",route="/api/orgs/{org}/nodes"}"#
        ),
        3.0
    );
    let series = text.lines().filter(|l| !l.starts_with('#')).count();
    assert!(series < 400, "{series} series after a 200-path flood");
    // The consumer's state is sampled (every 5 s).
    stack
        .eventually(
            "consumer gauges sampled",
            Duration::from_secs(15),
            || async {
                let (_, text) = scrape(&stack.http, &separate, Some(METRICS_TOKEN)).await;
                text.lines()
                    .any(|l| l.starts_with("ritma_jetstream_consumer_ack_pending_messages "))
                    .then_some(())
            },
        )
        .await;
    // Nothing here names a node or an org.
    assert!(!text.contains("m-node-1") && !text.contains("acme"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_refuse_anyone_without_the_token() {
    let metrics_port = ritma_devstack::ports::free_port().unwrap();
    let stack = TestStack::start_with(|c| {
        c.metrics_token = Some(METRICS_TOKEN.into());
        c.metrics_listen = Some(([127, 0, 0, 1], metrics_port).into());
    })
    .await
    .unwrap();
    let separate = format!("http://127.0.0.1:{metrics_port}/metrics");
    for url in [format!("{}/metrics", stack.api_url()), separate] {
        let (status, body) = scrape(&stack.http, &url, None).await;
        assert_eq!(status, 401, "{url}: {body}");
        assert!(!body.contains("ritma_"), "{url} leaked metrics");
        let (status, _) = scrape(&stack.http, &url, Some("wrong-token-0123456789")).await;
        assert_eq!(status, 401, "{url}");
        // The admin token is not the metrics token.
        let (status, _) = scrape(&stack.http, &url, Some(ADMIN_TOKEN)).await;
        assert_eq!(status, 401, "{url}");
        let (status, body) = scrape(&stack.http, &url, Some(METRICS_TOKEN)).await;
        assert_eq!(status, 200, "{url}");
        assert!(body.contains("# TYPE ritma_ingest_messages_total counter"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_the_api_port_serves_no_metrics_and_guessing_is_rate_limited() {
    let stack = TestStack::start_with(|c| {
        c.api_rate_per_address = 1;
        c.api_burst_per_address = 5;
    })
    .await
    .unwrap();
    let url = format!("{}/metrics", stack.api_url());
    let (status, body) = scrape(&stack.http, &url, None).await;
    assert_eq!(status, 404, "{body}");
    assert!(!body.contains("ritma_"));
    // Guessing spends the address's request budget like any API call.
    let mut limited = false;
    for _ in 0..20 {
        let (status, _) = scrape(&stack.http, &url, Some("guess-0123456789abcdef")).await;
        if status == 429 {
            limited = true;
            break;
        }
    }
    assert!(limited, "20 guesses in a row were never rate-limited");
}
