//! (d) `GET /api/orgs/{org}/nodes` at 100,000 nodes (`--nodes`; inserted
//! with SQL for setup: 10 tenants, 7 statuses, labels env/rack, 5 agent
//! versions), timed from this process over loopback HTTP: first pages with
//! and without filters, sorted by last seen, text search, the dashboard's
//! summary, and deep pages (walking the list by cursor, each page timed).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::stack::Stack;
use crate::summary_ms;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value_t = 100_000)]
    nodes: usize,
    /// Timed requests per query.
    #[arg(long, default_value_t = 200)]
    requests: usize,
    /// Page size when walking deep pages.
    #[arg(long, default_value_t = 100)]
    page: usize,
    /// Stop each deep-page walk after this many seconds (a million nodes
    /// are 10,000 pages).
    #[arg(long, default_value_t = 300)]
    walk_secs: u64,
}

/// `path_and_query` is under `/api/orgs/bench/nodes`.
async fn get(stack: &Stack, path_and_query: &str) -> anyhow::Result<(f64, Value)> {
    let url = format!("{}/api/orgs/bench/nodes{path_and_query}", stack.api_url);
    let t = Instant::now();
    let resp = stack
        .api
        .http
        .get(&url)
        .bearer_auth(crate::stack::ADMIN_TOKEN)
        .send()
        .await?;
    let status = resp.status();
    let body: Value = resp.json().await?;
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    if !status.is_success() {
        anyhow::bail!("{url}: {status} {body}");
    }
    Ok((ms, body))
}

pub async fn run(args: Args) -> anyhow::Result<Value> {
    let stack = Stack::start_with_bench_fleet(args.nodes).await?;
    let queries: &[(&str, &str)] = &[
        ("first page, no filter", "?limit=50"),
        ("status=offline", "?status=offline&limit=50"),
        ("status=online,degraded", "?status=online,degraded&limit=50"),
        ("tenant=t3", "?tenant=t3&limit=50"),
        ("label env=prod", "?label=env%3Dprod&limit=50"),
        ("version=v2", "?version=v2&limit=50"),
        (
            "tenant+status+label",
            "?tenant=t3&status=online&label=rack%3Dr7&limit=50",
        ),
        ("text q=host-4242", "?q=host-4242&limit=50"),
        ("text q=9999 (rare)", "?q=99999&limit=50"),
        ("sort=last_seen desc", "?sort=last_seen&order=desc&limit=50"),
        ("sort=status", "?sort=status&limit=50"),
        // The dashboard's counts by status, drift and key warnings.
        ("dashboard summary", "/summary"),
    ];
    let mut results = serde_json::Map::new();
    let mut all_p99: Vec<(String, f64)> = vec![];
    for (name, q) in queries {
        for _ in 0..10 {
            get(&stack, q).await?;
        }
        let mut ms = Vec::with_capacity(args.requests);
        let mut total = 0;
        for _ in 0..args.requests {
            let (t, body) = get(&stack, q).await?;
            total = body["total"].as_i64().unwrap_or(0);
            if total == 0 && *q == "/summary" {
                anyhow::bail!("the summary counted no nodes: {body}");
            }
            ms.push(t);
        }
        let s = summary_ms(ms);
        println!(
            "{name:<26} total {total:>6}: p50 {:>6} ms  p99 {:>6} ms",
            s["p50_ms"], s["p99_ms"]
        );
        all_p99.push((name.to_string(), s["p99_ms"].as_f64().unwrap_or(f64::NAN)));
        results.insert(
            name.to_string(),
            json!({ "query": q, "total": total, "latency": s }),
        );
    }
    // Deep pages: walk the list by cursor, timing every page.
    for (name, base) in [
        ("deep pages by name", format!("?limit={}", args.page)),
        (
            "deep pages by last_seen",
            format!("?sort=last_seen&order=desc&limit={}", args.page),
        ),
        (
            "deep pages status=online",
            format!("?status=online&limit={}", args.page),
        ),
    ] {
        let mut ms = vec![];
        let mut cursor: Option<String> = None;
        let start = Instant::now();
        loop {
            let q = match &cursor {
                Some(c) => format!("{base}&cursor={c}"),
                None => base.clone(),
            };
            let (t, body) = get(&stack, &q).await?;
            ms.push(t);
            cursor = body["next_cursor"].as_str().map(str::to_owned);
            if cursor.is_none() || start.elapsed() > Duration::from_secs(args.walk_secs) {
                break;
            }
        }
        let pages = ms.len();
        let s = summary_ms(ms);
        println!(
            "{name:<26} {pages:>6} pages: p50 {:>6} ms  p99 {:>6} ms",
            s["p50_ms"], s["p99_ms"]
        );
        all_p99.push((name.to_string(), s["p99_ms"].as_f64().unwrap_or(f64::NAN)));
        results.insert(
            name.to_string(),
            json!({ "query": base, "pages": pages, "latency": s }),
        );
    }
    let worst =
        all_p99.iter().cloned().fold(
            (String::new(), 0.0f64),
            |a, b| if b.1 > a.1 { b } else { a },
        );
    println!("worst p99: {} ms ({}) — target < 50 ms", worst.1, worst.0);
    Ok(
        json!({ "nodes": args.nodes, "queries": results, "worst_p99": { "query": worst.0, "ms": worst.1 } }),
    )
}
