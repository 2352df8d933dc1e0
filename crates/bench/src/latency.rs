//! (b) Publish → committed latency at fixed offered rates.
//!
//! The load generator (`ritma-sim`, shared connections) sends usage reports
//! at a fixed total rate spread over the nodes; each body carries its send
//! instant (`sent_at`, this machine's clock). Two ways to see the commit:
//! - default: the run has a PostgreSQL of its own with
//!   `track_commit_timestamp = on`, and each row's commit instant is read
//!   back (`pg_xact_commit_timestamp(xmin)`): latency = commit − sent_at, exact
//!   and at no cost to the system under test;
//! - `--ack-tap` (on the machine's PostgreSQL): the bench subscribes to the
//!   ingest consumer's ack subject `$JS.ACK.RITMA_TELEMETRY.ritma-ingest.>`
//!   (workers ack after commit) and times ack seen − send on one monotonic
//!   clock. That subscription makes nats-server deliver every ack a second
//!   time and this process read it: at 50k msg/s it costs the machine what
//!   it measures.
//!
//! The first seconds of each rate (warm-up) are left out.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use ritma_bus::streams::{INGEST_CONSUMER, TELEMETRY_STREAM, ack_stream_sequence, consumer_acks};
use ritma_sim::{RunConfig, SimReport, SummaryMix};
use serde_json::{Value, json};
use tokio::sync::{Mutex, mpsc};
use tokio::time::Instant;

use crate::stack::{CpuMeter, Stack, StackOptions};
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
    /// Time commits by the ingest's acks (a subscription to every ack) on the
    /// machine's PostgreSQL, instead of commit timestamps.
    #[arg(long)]
    ack_tap: bool,
}

/// Send instants and the instants their acks were seen (`--ack-tap`).
struct AckTap {
    acks: Arc<Mutex<HashMap<u64, Instant>>>,
    collector: tokio::task::JoinHandle<()>,
    sent: tokio::task::JoinHandle<Vec<(u64, Instant)>>,
}

impl AckTap {
    async fn start(
        bus: &async_nats::Client,
    ) -> anyhow::Result<(Self, mpsc::UnboundedSender<(u64, Instant)>)> {
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
        Ok((
            Self {
                acks,
                collector,
                sent,
            },
            tx,
        ))
    }

    /// Latencies (ms) of the sends after `warm`, and how many acks never came.
    async fn finish(self, report: &SimReport, warm: Instant) -> anyhow::Result<(Vec<f64>, u64)> {
        let sends = self.sent.await?;
        // Let the last batches commit.
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline && (self.acks.lock().await.len() as u64) < report.acked {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.collector.abort();
        let acks = self.acks.lock().await;
        let mut lat = vec![];
        let mut missing = 0u64;
        for (seq, at) in sends.iter().filter(|(_, at)| *at >= warm) {
            match acks.get(seq) {
                Some(done) => lat.push(done.duration_since(*at).as_secs_f64() * 1000.0),
                None => missing += 1,
            }
        }
        Ok((lat, missing))
    }
}

/// Commit − send (ms) of this round's rows sent after `warm`, read from the
/// database once every acked report is there (or 15 s passed); and how many
/// acked reports never arrived.
async fn commit_latencies(
    stack: &Stack,
    seqs: (i64, i64),
    report: &SimReport,
    warm: DateTime<Utc>,
) -> anyhow::Result<(Vec<f64>, u64)> {
    let count = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM node_usage_reports WHERE seq > $1 AND seq < $2",
        )
        .bind(seqs.0)
        .bind(seqs.1)
        .fetch_one(&stack.pool)
        .await
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut rows = count().await?;
    while Instant::now() < deadline && (rows as u64) < report.acked {
        tokio::time::sleep(Duration::from_millis(200)).await;
        rows = count().await?;
    }
    let lat: Vec<f64> = sqlx::query_scalar(
        "SELECT (extract(epoch FROM pg_xact_commit_timestamp(xmin) - sent_at) * 1000)::float8
         FROM node_usage_reports WHERE seq > $1 AND seq < $2 AND sent_at >= $3",
    )
    .bind(seqs.0)
    .bind(seqs.1)
    .bind(warm)
    .fetch_all(&stack.pool)
    .await?;
    Ok((lat, report.acked.saturating_sub(rows as u64)))
}

pub async fn run(args: Args) -> anyhow::Result<Value> {
    let mut env = vec![];
    if let Some(w) = args.workers {
        env.push(("RITMA_WORKERS", w.to_string()));
    }
    if let Some(w) = args.batch_wait_ms {
        env.push(("RITMA_BATCH_WAIT_MS", w.to_string()));
    }
    let options = StackOptions {
        commit_timestamps: !args.ack_tap,
        ..StackOptions::default()
    };
    let stack = Stack::start_with(&env, options).await?;
    stack
        .api
        .org_ensure(&ritma_protocol::OrgId::new("bench")?)
        .await?;
    let nodes = stack.nodes_bulk_insert("bench", "n", args.nodes, 1).await?;
    let bus = stack.controller_bus().await?;
    let method = if args.ack_tap {
        "ack seen − send (ack tap)"
    } else {
        "commit timestamp − sent_at"
    };
    let mut results = vec![];
    for (round, rate) in args.rates.iter().copied().enumerate() {
        let (tap, ack_sink) = if args.ack_tap {
            let (tap, sink) = AckTap::start(&bus).await?;
            (Some(tap), Some(sink))
        } else {
            (None, None)
        };
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
            ack_sink,
            linger: Duration::ZERO,
            seq_base,
        };
        let cpu = CpuMeter::start(&stack);
        let started = Instant::now();
        let warm_wall = Utc::now() + chrono::Duration::seconds(i64::try_from(args.warmup_secs)?);
        eprintln!(
            "rate {rate} msg/s: {} nodes, one usage report each every {:.3}s ...",
            nodes.len(),
            interval.as_secs_f64()
        );
        let report = ritma_sim::run(nodes.clone(), cfg).await?;
        let cores = cpu.cores(&stack);
        let warm = started + Duration::from_secs(args.warmup_secs);
        let seqs = (
            i64::try_from(seq_base)?,
            i64::try_from(seq_base + 1_000_000_000)?,
        );
        let (lat, missing) = match tap {
            Some(tap) => tap.finish(&report, warm).await?,
            None => commit_latencies(&stack, seqs, &report, warm_wall).await?,
        };
        let summary = summary_ms(lat);
        println!(
            "offered {rate}/s: achieved {:.0}/s acked; publish→commit p50 {} ms, p99 {} ms, p999 {} ms (n={}, missing {missing}; {method}); cores: {cores}",
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
            "method": method,
            "missing": missing,
            "cores": cores,
        }));
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    Ok(json!({ "nodes": nodes.len(), "secs_per_rate": args.secs, "rates": results }))
}
