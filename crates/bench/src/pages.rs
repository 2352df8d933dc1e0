//! The console's pages at 100,000 nodes in one org: each page's server
//! response (server-side rendered, with its data from the controller), timed
//! from this process over loopback HTTP as a signed-in browser would ask for
//! it: first byte to last byte of the HTML. The console runs in-process, the
//! controller as a separate process (as in the other benchmarks).

use std::time::Instant;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::stack::{ADMIN_TOKEN, Stack};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value_t = 100_000)]
    nodes: usize,
    /// Timed requests per page.
    #[arg(long, default_value_t = 100)]
    requests: usize,
}

/// The pages an operator opens, with the query strings the console's own
/// links and filters make.
fn pages() -> Vec<(&'static str, String)> {
    vec![
        ("dashboard", "/".into()),
        ("inventory", "/nodes".into()),
        ("inventory, offline", "/nodes?status=offline".into()),
        ("inventory, search", "/nodes?q=host-4242".into()),
        ("node page", "/nodes/node-0042424".into()),
        ("usage", "/usage".into()),
        ("audit", "/audit".into()),
        ("policies", "/policies".into()),
        ("connectors", "/connectors".into()),
        ("keys", "/keys".into()),
        ("alerts", "/alerts".into()),
        ("enroll", "/enroll".into()),
    ]
}

struct Console {
    url: String,
    stop: CancellationToken,
    _site: tempfile::TempDir,
}

async fn console_start(stack: &Stack) -> anyhow::Result<Console> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    // The pages' HTML does not depend on the WASM bundle being present.
    let site = tempfile::tempdir()?;
    let mut config = ritma_console::server::config::Config::empty();
    config.api_url = Some(stack.api_url.clone());
    config.database_url = Some(stack.database_url.clone());
    config.public_url = Some(url.clone());
    config.site_root = Some(site.path().to_path_buf());
    config.org = Some("bench".into());
    let app = ritma_console::server::build(config.resolve()?).await?;
    let stop = CancellationToken::new();
    let shutdown = stop.clone();
    tokio::spawn(async move {
        if let Err(e) = app
            .run(listener, async move { shutdown.cancelled().await })
            .await
        {
            eprintln!("console stopped: {e}");
        }
    });
    Ok(Console {
        url,
        stop,
        _site: site,
    })
}

/// Sign in with the admin token; returns the session cookie.
async fn sign_in(http: &reqwest::Client, console: &Console) -> anyhow::Result<String> {
    let resp = http
        .post(format!("{}/auth/login", console.url))
        .header("origin", &console.url)
        .form(&[("token", ADMIN_TOKEN)])
        .send()
        .await?;
    let cookie = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.split(';').next().filter(|kv| kv.contains('=')))
        .map(str::to_owned);
    match cookie {
        Some(c) => Ok(c),
        None => anyhow::bail!(
            "sign-in gave no session cookie: {} {:?}",
            resp.status(),
            resp.headers().get("location")
        ),
    }
}

pub async fn run(args: Args) -> anyhow::Result<Value> {
    let stack = Stack::start_with_bench_fleet(args.nodes).await?;
    let console = console_start(&stack).await?;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let cookie = sign_in(&http, &console).await?;

    let mut results = serde_json::Map::new();
    println!(
        "console pages at {} nodes, {} requests each (ms, whole HTML response)",
        args.nodes, args.requests
    );
    println!(
        "{:<22} {:>8} {:>8} {:>8} {:>8} {:>9}",
        "page", "p50", "p95", "p99", "max", "KiB"
    );
    for (name, path) in pages() {
        let mut times = Vec::with_capacity(args.requests);
        let mut bytes = 0usize;
        // One untimed request first: the console's and controller's caches
        // and connection pools as an operator finds them.
        for i in 0..=args.requests {
            let t = Instant::now();
            let resp = http
                .get(format!("{}{path}", console.url))
                .header("cookie", &cookie)
                .send()
                .await?;
            let status = resp.status();
            let body = resp.bytes().await?;
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            if !status.is_success() {
                anyhow::bail!("{path}: {status}");
            }
            if i > 0 {
                times.push(ms);
            }
            bytes = body.len();
        }
        let summary = crate::summary_ms(times);
        println!(
            "{:<22} {:>8} {:>8} {:>8} {:>8} {:>9.1}",
            name,
            summary["p50_ms"],
            summary["p95_ms"],
            summary["p99_ms"],
            summary["max_ms"],
            bytes as f64 / 1024.0
        );
        results.insert(
            name.into(),
            json!({ "path": path, "html_bytes": bytes, "ms": summary }),
        );
    }
    console.stop.cancel();
    let worst_p95 = results
        .values()
        .filter_map(|v| v["ms"]["p95_ms"].as_f64())
        .fold(0.0f64, f64::max);
    println!("worst page p95: {worst_p95} ms (target: under 100 ms)");
    Ok(json!({
        "nodes": args.nodes,
        "requests": args.requests,
        "pages": results,
        "worst_p95_ms": worst_p95,
    }))
}
