//! (b) Publish → committed latency at fixed offered rates.
//!
//! Method: the load generator (`ritma-sim`, shared connections) sends usage
//! reports at a fixed total rate spread over the nodes, and records for each
//! publish its send instant and the stream sequence JetStream acked it with.
//! The bench also subscribes (in the controller's account) to the ingest
//! consumer's ack subject `$JS.ACK.RITMA_TELEMETRY.ritma-ingest.>`: the
//! workers ack a message only after its batch committed, so the instant the
//! ack is seen is an upper bound of the commit time (by the ack's ~0.1 ms
//! trip). latency = ack seen − send, on one monotonic clock. The first
//! seconds (warm-up) are left out. As a cross-check, the database's own view
//! `received_at − sent_at` of the same rows is given too (received_at is the
//! transaction's start, so it reads a few ms low).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use ritma_bus::streams::{INGEST_CONSUMER, TELEMETRY_STREAM, ack_stream_sequence, consumer_acks};
use ritma_sim::{RunConfig, SummaryMix};
use serde_json::{Value, json};
use tokio::sync::{Mutex, mpsc};
use tokio::time::Instant;

use crate::stack::{CpuMeter, Stack};
use crate::summary_ms;

#[derive(clap::Args)]
pub struct Args {
    /// Offered rates, messages per second.
    #[arg(long, value_delimiter = ',', default_value = "10000,30000,50000")]
    rates: Vec<u64>,
    /// Seconds per rate.
    #[arg(long, default_value_t = 20)]
    secs: u64,
    /// Seconds left out at the start of each rate.
    #[arg(long, default_value_t = 3)]
    warmup_secs: u64,
    #[arg(long, default_value_t = 10_000)]
    nodes: usize,
    #[arg(long, default_value_t = 500)]
    nodes_per_connection: usize,
    /// Controller ingest workers (RITMA_WORKERS).
    #[arg(long)]
    workers: Option<usize>,
    /// Controller batch wait in ms (RITMA_BATCH_WAIT_MS).
    #[arg(long)]
    batch_wait_ms: Option<u64>,
}

pub async fn run(args: Args) -> anyhow::Result<Value> {
    let mut env = vec![];
    if let Some(w) = args.workers {
        env.push(("RITMA_WORKERS", w.to_string()));
    }
    if let Some(w) = args.batch_wait_ms {
        env.push(("RITMA_BATCH_WAIT_MS", w.to_string()));
    }
    let stack = Stack::start(&env).await?;
    stack
        .api
        .org_ensure(&ritma_protocol::OrgId::new("bench")?)
        .await?;
    let nodes = stack.nodes_bulk_insert("bench", "n", args.nodes, 1).await?;
    let bus = stack.controller_bus().await?;
    let mut results = vec![];
    for (round, rate) in args.rates.iter().copied().enumerate() {
        let acks: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
        let mut sub = bus
            .subscribe(consumer_acks(TELEMETRY_STREAM, INGEST_CONSUMER))
            .await?;
        bus.flush().await?;
        let collector = {
            let acks = acks.clone();
            tokio::spawn(async move {
                while let Some(m) = sub.next().await {
                    let now = Instant::now();
                    let positive = m.payload.is_empty() || m.payload.starts_with(b"+ACK");
                    if positive && let Some(seq) = ack_stream_sequence(m.subject.as_str()) {
                        acks.lock().await.insert(seq, now);
                    }
                }
            })
        };
        let (tx, mut rx) = mpsc::unbounded_channel::<(u64, Instant)>();
        let sent = tokio::spawn(async move {
            let mut all = Vec::new();
            while let Some(x) = rx.recv().await {
                all.push(x);
            }
            all
        });
        let interval = Duration::from_secs_f64(nodes.len() as f64 / rate.max(1) as f64);
        let seq_base = (round as u64 + 1) * 1_000_000_000;
        let cfg = RunConfig {
            nats_urls: vec![stack.nats.url.clone()],
            shared: Some(stack.shared_creds()?),
            nodes_per_connection: args.nodes_per_connection,
            heartbeat: None,
            summary: Some(interval),
            summaries: SummaryMix::Usage,
            duration: Duration::from_secs(args.secs),
            window: 4096,
            progress: Some(Duration::from_secs(5)),
            ack_sink: Some(tx),
            linger: Duration::ZERO,
            seq_base,
        };
        let cpu = CpuMeter::start(&stack);
        let started = Instant::now();
        eprintln!(
            "rate {rate} msg/s: {} nodes, one usage report each every {:.3}s ...",
            nodes.len(),
            interval.as_secs_f64()
        );
        let report = ritma_sim::run(nodes.clone(), cfg).await?;
        let cores = cpu.cores(&stack);
        let sends = sent.await?;
        // Let the last batches commit.
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            let n = acks.lock().await.len();
            if n as u64 >= report.acked {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        collector.abort();
        let acks = acks.lock().await;
        let warm = started + Duration::from_secs(args.warmup_secs);
        let mut lat = vec![];
        let mut missing = 0u64;
        for (seq, at) in &sends {
            if *at < warm {
                continue;
            }
            match acks.get(seq) {
                Some(done) => lat.push(done.duration_since(*at).as_secs_f64() * 1000.0),
                None => missing += 1,
            }
        }
        let db: Option<(f64, f64, f64)> = sqlx::query_as(
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY d),
                    percentile_cont(0.99) WITHIN GROUP (ORDER BY d),
                    percentile_cont(0.999) WITHIN GROUP (ORDER BY d)
             FROM (SELECT extract(epoch FROM received_at - sent_at) * 1000 AS d
                   FROM node_usage_reports WHERE seq > $1 AND seq < $2) x",
        )
        .bind(i64::try_from(seq_base)?)
        .bind(i64::try_from(seq_base + 1_000_000_000)?)
        .fetch_optional(&stack.pool)
        .await
        .ok()
        .flatten();
        let summary = summary_ms(lat);
        println!(
            "offered {rate}/s: achieved {:.0}/s acked; publish→commit p50 {} ms, p99 {} ms, p999 {} ms (n={}, missing {missing}); cores: {cores}",
            report.acked_per_sec,
            summary["p50_ms"],
            summary["p99_ms"],
            summary["p999_ms"],
            summary["n"],
        );
        results.push(json!({
            "offered_rate": rate,
            "achieved_rate": report.acked_per_sec,
            "sim": report,
            "publish_to_commit": summary,
            "missing_acks": missing,
            "db_received_minus_sent_ms": db.map(|(a, b, c)| json!({"p50": a, "p99": b, "p999": c})),
            "cores": cores,
        }));
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    Ok(json!({ "nodes": nodes.len(), "secs_per_rate": args.secs, "rates": results }))
}
