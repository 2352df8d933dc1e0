//! The console's `/metrics`: live clients counted while their stream lives,
//! live events and pages counted by route template, and nobody reads them
//! without the metrics token.
#![allow(clippy::unwrap_used)] // test code: a panic is a failed assertion

use std::time::Duration;

use ritma_console::server::config::Config as ConsoleConfig;
use ritma_tests::prom::scrape;
use ritma_tests::*;
use serde_json::json;
use tokio_util::sync::CancellationToken;

const CONSOLE_TOKEN: &str = "test-console-service-token-0123456789";
const METRICS_TOKEN: &str = "test-console-metrics-token-0123456789";

struct Console {
    url: String,
    metrics_url: String,
    stop: CancellationToken,
    _site: tempfile::TempDir,
}

impl Drop for Console {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn start_console(stack: &TestStack, token: Option<&str>) -> Console {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let metrics_port = ritma_devstack::ports::free_port().unwrap();
    let site = tempfile::tempdir().unwrap();
    let mut config = ConsoleConfig::empty();
    config.api_url = Some(stack.api_url());
    config.org = Some("acme".into());
    config.public_url = Some(url.clone());
    config.service_token = Some(CONSOLE_TOKEN.into());
    config.site_root = Some(site.path().to_path_buf());
    config.database_url = Some(stack.database_url.clone());
    config.metrics_token = token.map(str::to_owned);
    config.metrics_listen = Some(([127, 0, 0, 1], metrics_port).into());
    let app = ritma_console::server::build(config.resolve().unwrap())
        .await
        .unwrap();
    let stop = CancellationToken::new();
    let shutdown = stop.clone();
    tokio::spawn(async move {
        app.run(listener, async move { shutdown.cancelled().await })
            .await
            .unwrap();
    });
    Console {
        url,
        metrics_url: format!("http://127.0.0.1:{metrics_port}/metrics"),
        stop,
        _site: site,
    }
}

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn value(text: &str, series: &str) -> f64 {
    prom::series_value(text, series).unwrap_or(f64::NAN)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_clients_events_and_pages_are_counted() {
    let stack = TestStack::start_with(|c| {
        c.console_service_token = Some(CONSOLE_TOKEN.into());
    })
    .await
    .unwrap();
    stack.create_org("acme").await;
    let console = start_console(&stack, Some(METRICS_TOKEN)).await;
    let main_port = format!("{}/metrics", console.url);
    stack
        .eventually(
            "the console's bus feed",
            Duration::from_secs(20),
            || async {
                let (_, text) = scrape(&main_port, Some(METRICS_TOKEN)).await;
                (value(&text, "ritma_console_bus_connected") == 1.0).then_some(())
            },
        )
        .await;

    let operator = browser();
    let resp = operator
        .post(format!("{}/auth/login", console.url))
        .header("origin", &console.url)
        .form(&[("token", ADMIN_TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    for _ in 0..3 {
        let resp = browser()
            .get(format!("{}/login", console.url))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
    }
    let mut live = operator
        .get(format!("{}/live", console.url))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status().as_u16(), 200);
    let _first = live.chunk().await.unwrap();
    // An anonymous flood of made-up paths stays one series.
    let anonymous = browser();
    for i in 0..100 {
        let _ = anonymous
            .get(format!("{}/no/such/{i}", console.url))
            .send()
            .await
            .unwrap();
    }
    let (_, text) = scrape(&console.metrics_url, Some(METRICS_TOKEN)).await;
    assert!(
        !text.contains("/no/such/"),
        "a raw path became a label: {text}"
    );
    assert!(text.lines().filter(|l| !l.starts_with('#')).count() < 150);
    assert_eq!(value(&text, "ritma_console_sse_clients"), 1.0, "{text}");
    assert_eq!(
        value(
            &text,
            r#"ritma_console_http_requests_total{method="GET",route="/login",status="200"}"#
        ),
        3.0,
        "{text}"
    );

    // A state change reaches the stream and is counted.
    let mut tx = stack.pool.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO state_outbox (org_id, tenant_id, node_id, payload) VALUES ('acme', 'prod', 'n-1', $1)",
    )
    .bind(json!({ "kind": "status", "from": "online", "to": "offline", "reason": "test" }))
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query("SELECT pg_notify('ritma_outbox', '')")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut seen = String::new();
    while !seen.contains("event: state") {
        match tokio::time::timeout_at(deadline, live.chunk()).await {
            Ok(Ok(Some(chunk))) => seen.push_str(&String::from_utf8_lossy(&chunk)),
            other => panic!("no state event on the stream ({other:?}): {seen}"),
        }
    }
    let (_, text) = scrape(&main_port, Some(METRICS_TOKEN)).await;
    assert_eq!(
        value(&text, "ritma_console_live_events_total"),
        1.0,
        "{text}"
    );

    // The browser goes away: the gauge comes back down.
    drop(live);
    stack
        .eventually("stream closed", Duration::from_secs(20), || async {
            let (_, text) = scrape(&main_port, Some(METRICS_TOKEN)).await;
            (value(&text, "ritma_console_sse_clients") == 0.0).then_some(())
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_metrics_refuse_anyone_without_the_token() {
    let stack = TestStack::start().await.unwrap();
    let console = start_console(&stack, Some(METRICS_TOKEN)).await;
    for url in [
        format!("{}/metrics", console.url),
        console.metrics_url.clone(),
    ] {
        for token in [None, Some("wrong-token-0123456789"), Some(ADMIN_TOKEN)] {
            let (status, body) = scrape(&url, token).await;
            assert_eq!(status, 401, "{url} {token:?}: {body}");
            assert!(!body.contains("ritma_"), "{url} leaked metrics");
        }
        let (status, body) = scrape(&url, Some(METRICS_TOKEN)).await;
        assert_eq!(status, 200, "{url}");
        assert!(body.contains("# TYPE ritma_console_sse_clients gauge"));
    }
    // Without a token configured, the console's own port serves none.
    let open = start_console(&stack, None).await;
    let (status, body) = scrape(&format!("{}/metrics", open.url), None).await;
    assert_eq!(status, 404, "{body}");
    assert!(!body.contains("ritma_"));
}
