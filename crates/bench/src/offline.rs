//! Offline detection at 100,000 nodes: every node is made online as if its
//! last heartbeat had just been committed (last seen spread over the last
//! interval, deadlines as the ingest sets them: stale at 2 × interval,
//! offline at 3 × interval + the default grace), then `--silent` of them
//! (default: all, a whole-fleet outage) send nothing more; the others' next
//! deadlines lie an hour ahead, as if they kept heartbeating. The
//! controller's reconciler (default settings) must move each silent node to
//! offline; the figures are how late after its deadline each node was marked
//! (from `status_changed_at`) and how long after its last heartbeat.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::stack::{CpuMeter, Stack};
use crate::summary_ms;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value_t = 100_000)]
    nodes: usize,
    /// Heartbeat interval of the simulated fleet, seconds.
    #[arg(long, default_value_t = 10)]
    interval_secs: i32,
    /// Heartbeats are dated this far ahead, so setup never eats into a deadline.
    #[arg(long, default_value_t = 30.0)]
    margin_secs: f64,
    /// How many nodes fall silent (default: every one).
    #[arg(long)]
    silent: Option<usize>,
}

pub async fn run(args: Args) -> anyhow::Result<Value> {
    let stack = Stack::start_with_bench_fleet(args.nodes).await?;
    // Deadlines as the controller (default settings) sets them; the promise
    // is offline within 3 x interval + 2 s of the last heartbeat.
    let grace = ritma_controller::config::DEFAULT_OFFLINE_GRACE_SECS;
    let limit_secs = f64::from(3 * args.interval_secs + 2);
    // Updating 100k rows takes a while on a loaded machine: the heartbeats
    // are dated `margin` seconds ahead, so no deadline passes before setup
    // is done (checked below).
    let setup = std::time::Instant::now();
    sqlx::query(
        "UPDATE nodes SET status = 'online', status_changed_at = now(), interval_secs = $1
         WHERE org_id = 'bench'",
    )
    .bind(args.interval_secs)
    .execute(&stack.pool)
    .await?;
    sqlx::query(
        "UPDATE node_liveness
         SET last_seen_at = now() + make_interval(secs => $2) - random() * make_interval(secs => $1)
         WHERE org_id = 'bench'",
    )
    .bind(f64::from(args.interval_secs))
    .bind(args.margin_secs)
    .execute(&stack.pool)
    .await?;
    // The fleet's ids are `node-0000001` ...: the first `silent` fall silent.
    let silent = args.silent.unwrap_or(args.nodes).min(args.nodes);
    let last_silent = format!("node-{silent:07}");
    sqlx::query(
        "UPDATE node_liveness SET stale_after = last_seen_at + make_interval(secs => $1 * 2)
                                                + CASE WHEN node_id <= $3 THEN interval '0' ELSE interval '1 hour' END,
                offline_after = last_seen_at + make_interval(secs => $1 * 3 + $2)
                                + CASE WHEN node_id <= $3 THEN interval '0' ELSE interval '1 hour' END
         WHERE org_id = 'bench'",
    )
    .bind(f64::from(args.interval_secs))
    .bind(grace)
    .bind(&last_silent)
    .execute(&stack.pool)
    .await?;
    sqlx::query("VACUUM ANALYZE nodes, node_liveness, node_statuses")
        .execute(&stack.pool)
        .await?;
    let setup_secs = setup.elapsed().as_secs_f64();
    if setup_secs > args.margin_secs {
        eprintln!(
            "warning: setup took {setup_secs:.1}s, more than the {}s margin",
            args.margin_secs
        );
    }
    eprintln!(
        "all online (setup {setup_secs:.1}s); waiting for offline detection (deadline {limit_secs}s after each last heartbeat) ..."
    );
    let start = Instant::now();
    // CPU is measured from just before the first deadline (the margin is idle).
    tokio::time::sleep(Duration::from_secs_f64(
        (args.margin_secs - setup_secs).max(0.0),
    ))
    .await;
    let cpu = CpuMeter::start(&stack);
    let timeout = Duration::from_secs_f64(args.margin_secs + limit_secs + 60.0);
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        // Progress from the org's count deltas (only silent nodes go
        // offline here; a flapping one is offline too): counting the table
        // itself took a core's worth of what it measures at 1,000,000 nodes.
        let offline: i64 = sqlx::query_scalar(
            "SELECT COALESCE(sum(delta), 0)::bigint FROM node_count_deltas
             WHERE org_id = 'bench' AND bucket IN ('status:offline', 'status:flapping')",
        )
        .fetch_one(&stack.pool)
        .await?;
        let left = i64::try_from(silent)? - offline;
        if left <= 0 || start.elapsed() > timeout {
            break;
        }
    }
    let total_secs = start.elapsed().as_secs_f64();
    let cores = cpu.cores(&stack);
    let rows: Vec<(f64, f64)> = sqlx::query_as(
        // The deadline as the heartbeat set it (the reconciler clears it
        // once the node is offline).
        "SELECT (extract(epoch FROM n.status_changed_at
                        - (l.last_seen_at + make_interval(secs => n.interval_secs * 3 + $1))) * 1000)::float8,
                extract(epoch FROM n.status_changed_at - l.last_seen_at)::float8
         FROM nodes n JOIN node_liveness l ON l.node_id = n.id
         WHERE n.org_id = 'bench' AND n.status = 'offline'",
    )
    .bind(grace)
    .fetch_all(&stack.pool)
    .await?;
    // How many nodes were marked stale on the way (the rest went straight
    // to offline because the reconciler served offline deadlines first).
    let via_stale: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM node_status_history h JOIN nodes n ON n.id = h.node_id
         WHERE n.org_id = 'bench' AND h.to_status = 'stale'",
    )
    .fetch_one(&stack.pool)
    .await?;
    let detected = rows.len();
    let late_ms: Vec<f64> = rows.iter().map(|r| r.0).collect();
    let since_seen_max = rows.iter().map(|r| r.1).fold(0.0, f64::max);
    let within = rows.iter().filter(|r| r.1 <= limit_secs).count();
    let late = summary_ms(late_ms);
    println!(
        "{detected}/{silent} silent nodes (of {}) offline after {total_secs:.1}s; marked after the deadline by p50 {} ms, p99 {} ms, max {} ms; \
         longest since last heartbeat {since_seen_max:.2}s (limit {limit_secs}s); within limit: {within}; marked stale first: {via_stale}; cores {cores}",
        args.nodes, late["p50_ms"], late["p99_ms"], late["max_ms"]
    );
    Ok(json!({
        "nodes": args.nodes, "silent": silent, "interval_secs": args.interval_secs, "limit_secs": limit_secs,
        "setup_secs": setup_secs, "margin_secs": args.margin_secs,
        "detected": detected, "within_limit": within, "late_after_deadline": late,
        "max_since_last_heartbeat_secs": since_seen_max, "cores": cores, "via_stale": via_stale,
    }))
}
