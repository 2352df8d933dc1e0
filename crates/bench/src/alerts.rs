//! Alerting: (1) how long after its process is killed (SIGKILL) a node's
//! `node_offline` webhook arrives, over `--nodes` nodes each on its own
//! connection and credentials (a `ritma sim` child process, killed at once);
//! (2) what evaluating rules costs at `--fleet` nodes: a mass outage of
//! `--outage` nodes through the real path (state changes in the outbox →
//! publisher → evaluator → deliveries), with `--rules` rules in the org,
//! timed to "every notification queued" and "every webhook delivered", and
//! the controller's CPU while `--outage` alerts stay firing.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::stack::{ADMIN_TOKEN, CpuMeter, Stack};
use crate::summary_ms;

#[derive(clap::Args)]
pub struct Args {
    /// Nodes killed at once for the SIGKILL → webhook latency.
    #[arg(long, default_value_t = 100)]
    nodes: usize,
    /// Their heartbeat interval (seconds).
    #[arg(long, default_value_t = 5)]
    heartbeat_secs: u32,
    /// Fleet size for the evaluation cost.
    #[arg(long, default_value_t = 100_000)]
    fleet: usize,
    /// Nodes of that fleet that go offline at once.
    #[arg(long, default_value_t = 10_000)]
    outage: usize,
    /// Rules in the org (one matches every node; the others have label
    /// selectors that match a share of them).
    #[arg(long, default_value_t = 20)]
    rules: usize,
}

/// Arrival instant of each firing webhook, by node id.
type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

async fn receive(State(seen): State<Arrivals>, body: Bytes) -> StatusCode {
    let at = Instant::now();
    if let Ok(v) = serde_json::from_slice::<Value>(&body)
        && v["status"] == "firing"
        && let Some(node) = v["node_id"].as_str()
        && let Ok(mut s) = seen.lock()
    {
        s.entry(node.to_owned()).or_insert(at);
    }
    StatusCode::OK
}

async fn receiver() -> anyhow::Result<(String, Arrivals)> {
    let seen: Arrivals = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(seen.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, seen))
}

async fn post(stack: &Stack, path: &str, body: Value) -> anyhow::Result<Value> {
    let r = stack
        .api
        .http
        .post(format!("{}{path}", stack.api_url))
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await?;
    let status = r.status();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    anyhow::ensure!(status.is_success(), "{path}: {status} {v}");
    Ok(v)
}

async fn channel_and_rule(stack: &Stack, org: &str, url: &str) -> anyhow::Result<String> {
    let ch = post(
        stack,
        &format!("/api/orgs/{org}/notification-channels"),
        json!({ "name": "bench", "kind": "webhook", "url": url }),
    )
    .await?;
    let id = ch["id"].as_str().unwrap_or_default().to_owned();
    post(
        stack,
        &format!("/api/orgs/{org}/alert-rules"),
        json!({ "name": "offline", "event": "node_offline", "channels": [id] }),
    )
    .await?;
    Ok(id)
}

pub async fn run(args: Args) -> anyhow::Result<Value> {
    let env = [
        ("RITMA_ALERT_ALLOWED_NETWORKS", "127.0.0.0/8".to_owned()),
        ("RITMA_ALERT_RETRY_BASE_MS", "200".to_owned()),
    ];
    let stack = Stack::start(&env).await?;
    let (url, seen) = receiver().await?;
    let kill = kill_to_webhook(&stack, &args, &url, &seen).await?;
    let cost = evaluation_cost(&stack, &args, &url).await?;
    Ok(json!({ "sigkill_to_webhook": kill, "evaluation": cost }))
}

async fn kill_to_webhook(
    stack: &Stack,
    args: &Args,
    url: &str,
    seen: &Arrivals,
) -> anyhow::Result<Value> {
    stack
        .api
        .org_ensure(&ritma_protocol::OrgId::new("alerts")?)
        .await?;
    channel_and_rule(stack, "alerts", url).await?;
    let ritma = std::env::current_exe()?.with_file_name("ritma");
    anyhow::ensure!(
        ritma.exists(),
        "{} missing: cargo build --release -p ritma-cli",
        ritma.display()
    );
    eprintln!("starting {} nodes in a `ritma sim` process ...", args.nodes);
    let mut child = Command::new(&ritma)
        .arg("sim")
        .args(["--api-url", &stack.api_url, "--admin-token", ADMIN_TOKEN])
        .args([
            "--nats-url",
            &stack.nats.url,
            "--org",
            "alerts",
            "--tenant",
            "fleet",
        ])
        .args(["--prefix", "k", "--own-credentials"])
        .args(["-n", &args.nodes.to_string(), "--nodes-per-connection", "1"])
        .args(["--heartbeat-secs", &args.heartbeat_secs.to_string()])
        .args([
            "--summary-secs",
            "86400",
            "--window",
            "8",
            "--duration-secs",
            "3600",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let online = async {
        loop {
            let n: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM nodes WHERE org_id = 'alerts' AND status = 'online'",
            )
            .fetch_one(&stack.pool)
            .await?;
            if n as usize >= args.nodes {
                return anyhow::Ok(());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(180), online).await??;
    // Settle: every node has heartbeated at least twice.
    tokio::time::sleep(Duration::from_secs(u64::from(args.heartbeat_secs) * 2)).await;
    eprintln!("all online; SIGKILL ...");
    let killed = Instant::now();
    child.kill()?;
    let _ = child.wait();
    let deadline = killed + Duration::from_secs(u64::from(args.heartbeat_secs) * 3 + 30);
    while seen.lock().map(|s| s.len()).unwrap_or(0) < args.nodes && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ms: Vec<f64> = seen
        .lock()
        .map(|s| {
            s.values()
                .map(|at| at.duration_since(killed).as_secs_f64() * 1000.0)
                .collect()
        })
        .unwrap_or_default();
    let result = json!({
        "nodes": args.nodes,
        "heartbeat_secs": args.heartbeat_secs,
        "webhooks_received": ms.len(),
        "ms": summary_ms(ms),
    });
    println!("SIGKILL → webhook: {result}");
    Ok(result)
}

async fn evaluation_cost(stack: &Stack, args: &Args, url: &str) -> anyhow::Result<Value> {
    stack
        .api
        .org_ensure(&ritma_protocol::OrgId::new("bench")?)
        .await?;
    eprintln!("inserting {} nodes ...", args.fleet);
    stack
        .nodes_bulk_insert("bench", "f", args.fleet, 10)
        .await?;
    sqlx::query("UPDATE nodes SET status = 'online' WHERE org_id = 'bench'")
        .execute(&stack.pool)
        .await?;
    let channel = channel_and_rule(stack, "bench", url).await?;
    for i in 1..args.rules {
        post(
            stack,
            "/api/orgs/bench/alert-rules",
            json!({ "name": format!("rack {i}"), "event": "node_offline", "channels": [channel],
                    "labels": { "rack": format!("r{}", i % 50) }, "for_secs": 60 }),
        )
        .await?;
    }
    let expected_firing = args.outage;
    eprintln!("{} nodes go offline at once ...", args.outage);
    let cpu = CpuMeter::start(stack);
    let started = Instant::now();
    // What the reconciler commits for a mass outage: each node's status and
    // its transition (history and outbox), then the publisher's wake-up.
    let mut tx = stack.pool.begin().await?;
    sqlx::query(
        "WITH down AS (
             UPDATE nodes SET status = 'offline', status_changed_at = now()
             WHERE id IN (SELECT id FROM nodes WHERE org_id = 'bench' ORDER BY id LIMIT $1)
             RETURNING id, org_id, tenant_id)
         INSERT INTO state_outbox (org_id, tenant_id, node_id, payload)
         SELECT org_id, tenant_id, id,
                jsonb_build_object('kind', 'status', 'from', 'online', 'to', 'offline',
                                   'reason', 'bench outage')
         FROM down",
    )
    .bind(i64::try_from(args.outage)?)
    .execute(&mut *tx)
    .await?;
    sqlx::query("SELECT pg_notify('ritma_outbox', '')")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    let count = |sql: &'static str| async move {
        sqlx::query_scalar::<_, i64>(sql)
            .fetch_one(&stack.pool)
            .await
            .unwrap_or(0)
    };
    let mut queued_at = None;
    let limit = Instant::now() + Duration::from_secs(600);
    loop {
        let firing = count(
            "SELECT count(*) FROM alerts a JOIN alert_rules r ON r.id = a.rule_id
             WHERE a.org_id = 'bench' AND r.name = 'offline' AND a.last_notified_at IS NOT NULL",
        )
        .await;
        if queued_at.is_none() && firing as usize >= expected_firing {
            queued_at = Some(started.elapsed());
        }
        let delivered = count(
            "SELECT count(*) FROM alert_deliveries WHERE org_id = 'bench' AND state = 'delivered'
               AND channel_id IS NOT NULL",
        )
        .await;
        if queued_at.is_some() && delivered as usize >= expected_firing {
            break;
        }
        anyhow::ensure!(
            Instant::now() < limit,
            "the outage was not delivered in 10 min"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let delivered_at = started.elapsed();
    let burst_cpu = cpu.cores(stack);
    // Steady state: the outage stays; the evaluator ticks over it.
    let steady = CpuMeter::start(stack);
    tokio::time::sleep(Duration::from_secs(30)).await;
    let steady_cpu = steady.cores(stack);
    let queued_secs = queued_at.unwrap_or_default().as_secs_f64();
    let result = json!({
        "fleet": args.fleet,
        "outage": args.outage,
        "rules": args.rules,
        "notifications_queued_secs": queued_secs,
        "transitions_evaluated_per_sec": args.outage as f64 / queued_secs.max(1e-9),
        "webhooks_delivered_secs": delivered_at.as_secs_f64(),
        "burst_cpu": burst_cpu,
        "steady_cpu_30s_with_outage_firing": steady_cpu,
    });
    println!("evaluation: {result}");
    Ok(result)
}
