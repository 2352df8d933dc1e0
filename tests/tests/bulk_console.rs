//! Bulk jobs and exports through the console: a browser's `/live` stream
//! carries the progress of the jobs of the org it shows (never another
//! org's), and `/export/{kind}` streams the controller's export for that org
//! with the person's own token.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed assertion

use std::time::Duration;

use ritma_tests::bulk::{finished, insert_nodes, post};
use ritma_tests::*;
use serde_json::{Value, json};

const CONSOLE_TOKEN: &str = "test-console-service-token-0123456789";

/// A browser with its own cookie jar that does not follow redirects.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The console in-process, on this stack, showing `org`; its URL.
async fn start_console(
    stack: &TestStack,
    org: &str,
) -> (String, tokio_util::sync::CancellationToken) {
    use ritma_console::server::config::Config as ConsoleConfig;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let console = format!("http://{}", listener.local_addr().unwrap());
    let site = tempfile::tempdir().unwrap().keep();
    let mut config = ConsoleConfig::empty();
    config.api_url = Some(stack.api_url());
    config.org = Some(org.into());
    config.public_url = Some(console.clone());
    config.service_token = Some(CONSOLE_TOKEN.into());
    config.site_root = Some(site);
    config.database_url = Some(stack.database_url.clone());
    let app = ritma_console::server::build(config.resolve().unwrap())
        .await
        .unwrap();
    let hub = app.state().hub.clone();
    let stop = tokio_util::sync::CancellationToken::new();
    let shutdown = stop.clone();
    tokio::spawn(async move {
        app.run(listener, async move { shutdown.cancelled().await })
            .await
            .unwrap();
    });
    stack
        .eventually("the console's bus feed", Duration::from_secs(20), || {
            let connected = hub.bus_state().connected;
            async move { connected.then_some(()) }
        })
        .await;
    (console, stop)
}

/// The `job` events of a browser's `/live` stream, as JSON, on a channel.
async fn live_jobs(
    browser: &reqwest::Client,
    console: &str,
) -> tokio::sync::mpsc::UnboundedReceiver<Value> {
    let resp = browser.get(format!("{console}/live")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut resp = resp;
        let mut buf = String::new();
        while let Ok(Some(chunk)) = resp.chunk().await {
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buf.find("\n\n") {
                let block: String = buf.drain(..end + 2).collect();
                if !block
                    .lines()
                    .any(|l| l.trim() == "event: job" || l.trim() == "event:job")
                {
                    continue;
                }
                let data = block
                    .lines()
                    .find_map(|l| l.strip_prefix("data:"))
                    .map(|d| serde_json::from_str(d.trim()).unwrap_or(Value::Null))
                    .unwrap_or(Value::Null);
                if tx.send(data).is_err() {
                    return;
                }
            }
        }
    });
    rx
}

async fn signed_in(console: &str) -> reqwest::Client {
    let b = browser();
    let resp = b
        .post(format!("{console}/auth/login"))
        .header("origin", console)
        .form(&[("token", ADMIN_TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_sees_the_progress_of_its_orgs_jobs_only_and_exports_stream_through_the_console()
{
    let stack = TestStack::start_with(|c| {
        c.console_service_token = Some(CONSOLE_TOKEN.into());
        c.bulk.page_size = 10;
        c.bulk.page_pause_ms = 200;
    })
    .await
    .unwrap();
    stack.create_org("acme").await;
    stack.create_org("globex").await;
    insert_nodes(&stack, "acme", 50).await;
    insert_nodes(&stack, "globex", 50).await;
    let (console, stop) = start_console(&stack, "acme").await;
    let b = signed_in(&console).await;
    let mut jobs = live_jobs(&b, &console).await;

    let request = json!({ "action": "add_labels", "params": { "labels": { "x": "y" } }, "selection": { "filter": {} } });
    let (_, theirs) = post(&stack, "/api/orgs/globex/bulk-jobs", request.clone()).await;
    let (_, ours) = post(&stack, "/api/orgs/acme/bulk-jobs", request).await;
    let mut seen = 0;
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(30), jobs.recv())
            .await
            .expect("job progress on /live")
            .unwrap();
        assert_eq!(ev["job_id"], ours["id"], "only the shown org's jobs: {ev}");
        assert_ne!(ev["job_id"], theirs["id"]);
        seen += 1;
        if ev["state"] == "done" {
            assert_eq!(ev["succeeded"], 50, "{ev}");
            break;
        }
    }
    assert!(seen >= 2, "progress while it ran, then done");
    finished(
        &stack,
        "globex",
        theirs["id"].as_str().unwrap(),
        Duration::from_secs(30),
    )
    .await;

    // Exports through the console: the controller's, for the shown org, with
    // only the export's own parameters passed on.
    let api_csv = stack
        .http
        .get(format!(
            "{}/api/orgs/acme/exports/nodes?format=csv&status=offline",
            stack.api_url()
        ))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let resp = b
        .get(format!(
            "{console}/export/nodes?format=csv&status=offline&cursor=zzz&org=globex"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(
        resp.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("acme-nodes.csv")
    );
    let csv = resp.text().await.unwrap();
    assert_eq!(csv, api_csv);
    // Compressed, as browsers ask: the stream ends cleanly (an unfused body
    // stream once panicked at its end here, and browsers cancelled downloads).
    let resp = b
        .get(format!("{console}/export/nodes?format=json"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["content-encoding"], "gzip");
    assert!(
        resp.bytes().await.is_ok(),
        "the compressed download completes"
    );
    assert_eq!(csv.lines().count(), 6, "a header and the 5 offline nodes");
    for kind in ["audit", "usage"] {
        let resp = b
            .get(format!("{console}/export/{kind}?format=json"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{kind}");
        let rows: Vec<Value> = resp.json().await.unwrap();
        if kind == "audit" {
            assert!(
                rows.iter().any(|r| r["action"] == "bulk_job.finish"),
                "{rows:?}"
            );
            assert!(rows.iter().all(|r| r["org_id"] == "acme"));
        }
    }
    let resp = b
        .get(format!("{console}/export/secrets"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    let stranger = browser();
    let resp = stranger
        .get(format!("{console}/export/nodes?format=csv"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status().as_u16(),
        303,
        "no session: to the sign-in page"
    );
    stop.cancel();
}
