//! (a) The ceiling and the product side by side, in one run on one server:
//! 1. raw: publish M pre-encoded usage bodies (acked, window W) to a plain
//!    stream while a pull consumer (batch 1000, explicit ack) drains it at
//!    the same time: the rate is M / (time until the last one is acked);
//! 2. product: publish the same M bodies to the node subjects as the node
//!    daemon does (same window) and let the controller ingest them: the rate
//!    is M / (time until `/readyz` counts M messages committed and acked).
//!
//! The two phases run in turn `--rounds` times (each round with new node
//! sequence numbers): this machine's speed drifts by 20% within a minute, so
//! one raw phase and one product phase measured at different moments give a
//! ratio that moves with the drift; the median of the rounds' ratios and the
//! ratio of the summed rates move less.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use async_nats::jetstream::{self, consumer, stream};
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use ritma_protocol::{NodeId, TelemetryKind, subjects};
use ritma_sim::SimNode;
use serde_json::{Value, json};

use crate::stack::{CpuMeter, Stack};

/// The load a raw or product phase publishes (shared with `ceiling`).
#[derive(clap::Args)]
pub(crate) struct Load {
    /// Messages per phase.
    #[arg(long, default_value_t = 300_000)]
    pub messages: usize,
    /// Distinct nodes (subjects).
    #[arg(long, default_value_t = 10_000)]
    pub nodes: usize,
    /// Publishes in flight (acks awaited).
    #[arg(long, default_value_t = 4000)]
    pub window: usize,
    /// Give up on a phase after this many seconds.
    #[arg(long, default_value_t = 120)]
    pub timeout_secs: u64,
    /// How the raw phase's consumer acks: each message, as the controller
    /// does, or once per pulled batch (ack policy `all`): what acks cost the
    /// bus.
    #[arg(long, value_enum, default_value_t = RawAck::Each)]
    pub raw_ack: RawAck,
}

/// The raw consumer's acks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum RawAck {
    Each,
    Batch,
}

impl RawAck {
    /// The flag's own spelling, for the figures.
    fn name(self) -> String {
        use clap::ValueEnum;
        self.to_possible_value()
            .map(|v| v.get_name().to_string())
            .unwrap_or_default()
    }
}

/// Acks a pull request's deliveries as `mode` says: each at once, or only
/// the last one when the request is done (with ack policy `all`, that acks
/// every earlier one).
struct Acker {
    mode: RawAck,
    last: Option<jetstream::Message>,
}

impl Acker {
    fn new(mode: RawAck) -> Self {
        Self { mode, last: None }
    }

    async fn delivered(&mut self, msg: jetstream::Message) {
        match self.mode {
            RawAck::Each => {
                let _ = msg.ack().await;
            }
            RawAck::Batch => self.last = Some(msg),
        }
    }

    async fn finish(self) {
        if let Some(msg) = self.last {
            let _ = msg.ack().await;
        }
    }
}

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    load: Load,
    /// Controller ingest workers (RITMA_WORKERS).
    #[arg(long)]
    workers: Option<usize>,
    /// Raw and product phases run in turn this many times.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// What the nodes send: usage reports (an insert each), heartbeats (an
    /// update of the node's liveness each), SLO or enforcement summaries, or
    /// `mixed`: per node two heartbeats for each of its three summaries (the
    /// capacity model's I = 30 s, S = 60 s).
    #[arg(long, value_enum, default_value_t = BodyKind::Usage)]
    kind: BodyKind,
}

/// The message kinds the ingest benchmark can send.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(crate) enum BodyKind {
    Usage,
    Heartbeat,
    Slo,
    Events,
    Mixed,
}

impl BodyKind {
    /// What each node sends, in turn.
    fn mix(self) -> &'static [TelemetryKind] {
        use TelemetryKind::{Events, Heartbeat, Slo, Usage};
        match self {
            Self::Usage => &[Usage],
            Self::Heartbeat => &[Heartbeat],
            Self::Slo => &[Slo],
            Self::Events => &[Events],
            Self::Mixed => &[Heartbeat, Usage, Heartbeat, Slo, Events],
        }
    }

    /// The tables the messages end in (a heartbeat updates its node's row
    /// in place).
    fn tables(self) -> Vec<&'static str> {
        let mut tables: Vec<&'static str> = self.mix().iter().map(|k| table_of(*k)).collect();
        tables.sort_unstable();
        tables.dedup();
        tables
    }
}

fn table_of(kind: TelemetryKind) -> &'static str {
    match kind {
        TelemetryKind::Usage => "node_usage_reports",
        TelemetryKind::Heartbeat => "node_liveness",
        TelemetryKind::Slo => "node_slo_summaries",
        TelemetryKind::Events => "node_enforcement_summaries",
    }
}

/// Who publishes a message: the node (its index) and the kind.
#[derive(Clone, Copy)]
pub(crate) struct Sender {
    pub node: usize,
    pub kind: TelemetryKind,
}

/// Bytes on disk (heap, indexes, TOAST) per row of the kind's table and of
/// the hourly rollups, after the run: the storage a node's messages cost.
async fn storage(stack: &Stack, kind: BodyKind) -> anyhow::Result<Value> {
    let mut tables = serde_json::Map::new();
    for table in
        kind.tables()
            .into_iter()
            .chain(["usage_hourly", "slo_hourly", "enforcement_hourly"])
    {
        // Fresh statistics and a checkpoint-free size: VACUUM leaves the
        // dead versions' space for reuse, as the steady state would.
        sqlx::query(sqlx::AssertSqlSafe(format!("VACUUM ANALYZE {table}")))
            .execute(&stack.pool)
            .await?;
        let (bytes, rows): (i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT pg_total_relation_size('{table}'), (SELECT count(*) FROM {table})"
        )))
        .fetch_one(&stack.pool)
        .await?;
        let per_row = (rows > 0).then(|| bytes as f64 / rows as f64);
        println!(
            "  storage {table}: {rows} rows, {bytes} bytes, {} bytes per row",
            per_row.map_or("-".into(), |b| format!("{b:.0}"))
        );
        tables.insert(
            table.into(),
            json!({ "rows": rows, "bytes": bytes, "bytes_per_row": per_row }),
        );
    }
    Ok(Value::Object(tables))
}

const RAW_STREAM: &str = "BENCH_RAW";
const RAW_PULL_EXPIRY: Duration = Duration::from_millis(50);
const RAW_PULL_SETTLE: Duration = Duration::from_millis(5);
/// How often the product phase reads the committed count: the phase's end is
/// known to within this (half of it on average). It was 100 ms, which cost
/// the product ~0.7% of a 7 s phase against the raw phase's exact clock.
const READYZ_POLL: Duration = Duration::from_millis(20);

/// Round `round`'s bodies, each node sending the kinds of `mix` in turn:
/// node sequence numbers follow the earlier rounds', so every round's
/// summaries are new to the database.
pub(crate) fn bodies(
    nodes: &[NodeId],
    mix: &[TelemetryKind],
    m: usize,
    round: usize,
) -> Vec<(Sender, Bytes)> {
    let per_node = m.div_ceil(nodes.len());
    (0..m)
        .map(|k| {
            let (node, turn) = (k % nodes.len(), k / nodes.len());
            let kind = mix[turn % mix.len()];
            let seq = (round * per_node + turn) as u64 + 1;
            let body = ritma_sim::message(&nodes[node], kind, seq, 10);
            (Sender { node, kind }, Bytes::from(body))
        })
        .collect()
}

/// A JetStream context that lets `window` publishes await their acks (the
/// client refuses publishes beyond 5,000 in flight by default).
fn publisher(client: async_nats::Client, window: usize) -> jetstream::Context {
    jetstream::context::ContextBuilder::new()
        .max_ack_inflight(window.max(1))
        .build(client)
}

/// Publish everything with `window` acks in flight; returns (seconds, failures).
async fn publish_all<F>(
    js: &jetstream::Context,
    items: &[(Sender, Bytes)],
    window: usize,
    subject_of: F,
) -> (f64, u64)
where
    F: Fn(Sender) -> String,
{
    let start = Instant::now();
    let mut inflight = FuturesUnordered::new();
    let mut failed = 0u64;
    for (i, body) in items {
        while inflight.len() >= window {
            if let Some(Err(_)) = inflight.next().await {
                failed += 1;
            }
        }
        match js.publish(subject_of(*i), body.clone()).await {
            Ok(ack) => inflight.push(ack.into_future()),
            Err(_) => failed += 1,
        }
    }
    while let Some(r) = inflight.next().await {
        if r.is_err() {
            failed += 1;
        }
    }
    (start.elapsed().as_secs_f64(), failed)
}

/// One raw publish+consume run: what the ingest is measured against.
pub(crate) struct RawRun {
    pub consumed: usize,
    pub publish_failed: u64,
    pub publish_secs: f64,
    /// Until the last message was acked by the consumer.
    pub secs: f64,
}

impl RawRun {
    pub fn rate(&self) -> f64 {
        self.consumed as f64 / self.secs
    }

    /// The run's figures, as the JSON of both benchmarks shows them.
    pub fn figures(&self, messages: usize) -> Value {
        json!({
            "messages": messages, "consumed": self.consumed, "publish_failed": self.publish_failed,
            "publish_secs": self.publish_secs, "publish_rate": messages as f64 / self.publish_secs,
            "secs": self.secs, "rate": self.rate(),
        })
    }
}

/// Publish `items` to the raw stream, each on its node's subject (acks
/// awaited with the load's window in flight) on one connection while a pull
/// consumer (batch 1000, each message acked unless the load says per batch)
/// drains the stream on another, as the controller has its own. The stream
/// is created for the run and deleted after it.
pub(crate) async fn raw_publish_consume(
    publish: async_nats::Client,
    consume: async_nats::Client,
    nodes: &[NodeId],
    items: &[(Sender, Bytes)],
    load: &Load,
) -> anyhow::Result<RawRun> {
    let (window, timeout) = (load.window, Duration::from_secs(load.timeout_secs));
    let mode = load.raw_ack;
    let raw_subjects: Vec<String> = nodes.iter().map(subjects::bench_raw).collect();
    let js = publisher(publish, window);
    let raw = js
        .get_or_create_stream(stream::Config {
            name: RAW_STREAM.into(),
            subjects: vec![subjects::all_bench_raw()],
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    raw.get_or_create_consumer(
        "bench",
        consumer::pull::Config {
            durable_name: Some("bench".into()),
            ack_policy: match mode {
                RawAck::Each => consumer::AckPolicy::Explicit,
                RawAck::Batch => consumer::AckPolicy::All,
            },
            max_ack_pending: 20_000,
            ..Default::default()
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let consumer: consumer::PullConsumer = jetstream::new(consume)
        .get_stream(RAW_STREAM)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .get_consumer("bench")
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let m = items.len();
    let consumer_task = tokio::spawn(async move {
        let start = Instant::now();
        let got = Arc::new(AtomicUsize::new(0));
        while got.load(Ordering::Relaxed) < m && start.elapsed() < timeout {
            let mut batch = match consumer
                .batch()
                .max_messages(1000)
                .expires(RAW_PULL_EXPIRY)
                .messages()
                .await
            {
                Ok(b) => b,
                Err(_) => continue,
            };
            // As the ingest worker does: nats-server 2.9 sends no status when
            // a request expires part-filled, and the client would wait 5 s
            // more for one (a run once read 40k msg/s with a core idle). The
            // next request goes out just after this one expired; what this
            // one still delivers is acked in the background.
            let expired = tokio::time::Instant::now() + RAW_PULL_EXPIRY;
            let mut acker = Acker::new(mode);
            loop {
                match tokio::time::timeout_at(expired + RAW_PULL_SETTLE, batch.next()).await {
                    Ok(Some(Ok(msg))) => {
                        acker.delivered(msg).await;
                        got.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => break,
                    Err(_) => {
                        let got = got.clone();
                        let mut late_acker = std::mem::replace(&mut acker, Acker::new(mode));
                        tokio::spawn(async move {
                            let late = expired + Duration::from_secs(1);
                            while let Ok(Some(Ok(msg))) =
                                tokio::time::timeout_at(late, batch.next()).await
                            {
                                late_acker.delivered(msg).await;
                                got.fetch_add(1, Ordering::Relaxed);
                            }
                            late_acker.finish().await;
                        });
                        break;
                    }
                }
            }
            acker.finish().await;
        }
        (start.elapsed().as_secs_f64(), got.load(Ordering::Relaxed))
    });
    let (publish_secs, publish_failed) =
        publish_all(&js, items, window, |s| raw_subjects[s.node].clone()).await;
    let (secs, consumed) = consumer_task.await?;
    let _ = js.delete_stream(RAW_STREAM).await;
    Ok(RawRun {
        consumed,
        publish_failed,
        publish_secs,
        secs,
    })
}

async fn raw_phase(
    stack: &Stack,
    nodes: &[NodeId],
    items: &[(Sender, Bytes)],
    args: &Args,
) -> anyhow::Result<Value> {
    let (publish, consume) = (stack.controller_bus().await?, stack.controller_bus().await?);
    let cpu = CpuMeter::start(stack);
    let run = raw_publish_consume(publish, consume, nodes, items, &args.load).await?;
    let mut figures = run.figures(items.len());
    figures["cores"] = cpu.cores(stack);
    figures["ack"] = json!(args.load.raw_ack.name());
    Ok(figures)
}

async fn product_phase(
    stack: &Stack,
    nodes: &[SimNode],
    items: &[(Sender, Bytes)],
    args: &Args,
) -> anyhow::Result<Value> {
    let client = stack.controller_bus().await?;
    let js = publisher(client, args.load.window);
    let m = items.len() as u64;
    let before = stack.ingested().await?;
    let cpu = CpuMeter::start(stack);
    let start = Instant::now();
    let publisher = {
        let js = js.clone();
        let items = items.to_vec();
        let nodes = nodes.to_vec();
        let window = args.load.window;
        tokio::spawn(async move {
            publish_all(&js, &items, window, |s| {
                nodes[s.node].scope.telemetry(s.kind)
            })
            .await
        })
    };
    let timeout = Duration::from_secs(args.load.timeout_secs);
    let mut samples = vec![];
    let mut done;
    loop {
        tokio::time::sleep(READYZ_POLL).await;
        done = stack.ingested().await? - before;
        samples.push((start.elapsed().as_secs_f64(), done));
        if done >= m || start.elapsed() > timeout {
            break;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let cores = cpu.cores(stack);
    let (pub_secs, failed) = publisher.await?;
    let mut rows = 0i64;
    for table in args.kind.tables() {
        let n: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
                .fetch_one(&stack.pool)
                .await?;
        rows += n;
    }
    // Steady-state commit rate: between 20% and 80% of the messages.
    let at = |frac: f64| {
        samples
            .iter()
            .find(|(_, d)| *d as f64 >= frac * m as f64)
            .copied()
    };
    let steady = match (at(0.2), at(0.8)) {
        (Some((t0, d0)), Some((t1, d1))) if t1 > t0 => Some((d1 - d0) as f64 / (t1 - t0)),
        _ => None,
    };
    // Commit rate while the publisher is still running (both compete for
    // the same cores), and after it finished (the backlog drains alone).
    let first_after = samples.iter().find(|(t, _)| *t >= pub_secs).copied();
    let rate_between = |(t0, d0): (f64, u64), (t1, d1): (f64, u64)| {
        (t1 > t0).then(|| (d1 - d0) as f64 / (t1 - t0))
    };
    let while_publishing = first_after.and_then(|p| rate_between((0.0, 0), p));
    let draining = match (first_after, samples.last().copied()) {
        (Some(p), Some(last)) => rate_between(p, last),
        _ => None,
    };
    Ok(json!({
        "messages": m, "committed": done, "rows": rows, "publish_failed": failed,
        "publish_secs": pub_secs, "publish_rate": m as f64 / pub_secs,
        "secs": secs, "rate": done as f64 / secs, "steady_rate": steady, "cores": cores,
        "commit_rate_while_publishing": while_publishing, "commit_rate_draining": draining,
    }))
}

pub async fn run(args: Args) -> anyhow::Result<Value> {
    let mut env = vec![];
    if let Some(w) = args.workers {
        env.push(("RITMA_WORKERS", w.to_string()));
    }
    let stack = Stack::start(&env).await?;
    stack
        .api
        .org_ensure(&ritma_protocol::OrgId::new("bench")?)
        .await?;
    let nodes = stack
        .nodes_bulk_insert("bench", "n", args.load.nodes, 1)
        .await
        .context("bulk insert")?;
    let node_ids: Vec<NodeId> = nodes.iter().map(|n| n.scope.node.clone()).collect();
    let mut rounds = vec![];
    for round in 0..args.rounds.max(1) {
        eprintln!(
            "round {}: encoding {} {:?} bodies over {} nodes ...",
            round + 1,
            args.load.messages,
            args.kind,
            nodes.len()
        );
        let items = bodies(&node_ids, args.kind.mix(), args.load.messages, round);
        let avg = items.iter().map(|x| x.1.len()).sum::<usize>() / items.len().max(1);
        eprintln!("raw JetStream publish+consume ...");
        let raw = raw_phase(&stack, &node_ids, &items, &args).await?;
        eprintln!("  {raw}");
        eprintln!("product ingest (publish → controller → Postgres → ack) ...");
        let product = product_phase(&stack, &nodes, &items, &args).await?;
        eprintln!("  {product}");
        let raw_rate = raw["rate"].as_f64().unwrap_or(f64::NAN);
        let rate = product["rate"].as_f64().unwrap_or(f64::NAN);
        println!(
            "round {}: raw publish+consume {raw_rate:.0} msg/s | product ingest {rate:.0} msg/s | ratio {:.1}% | body {avg} bytes",
            round + 1,
            rate / raw_rate * 100.0
        );
        println!("  cores, raw: {}", raw["cores"]);
        println!("  cores, product: {}", product["cores"]);
        println!(
            "  product commit rate while the publisher runs {:.0} msg/s, draining the backlog after it stopped {:.0} msg/s",
            product["commit_rate_while_publishing"]
                .as_f64()
                .unwrap_or(f64::NAN),
            product["commit_rate_draining"].as_f64().unwrap_or(f64::NAN),
        );
        rounds.push(json!({
            "body_bytes": avg, "raw": raw, "product": product, "ratio": rate / raw_rate,
        }));
    }
    let rate_sum = |phase: &str| {
        rounds
            .iter()
            .map(|r| r[phase]["rate"].as_f64().unwrap_or(f64::NAN))
            .sum::<f64>()
    };
    let pooled = rate_sum("product") / rate_sum("raw");
    let mut ratios: Vec<f64> = rounds
        .iter()
        .map(|r| r["ratio"].as_f64().unwrap_or(f64::NAN))
        .collect();
    ratios.sort_by(f64::total_cmp);
    let median = crate::percentile(&ratios, 50.0);
    println!(
        "ingest / raw over {} rounds: median {:.1}%, summed rates {:.1}% (target ≥ 90%); rounds {}",
        rounds.len(),
        median * 100.0,
        pooled * 100.0,
        ratios
            .iter()
            .map(|r| format!("{:.1}%", r * 100.0))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let storage = storage(&stack, args.kind).await?;
    Ok(json!({
        "kind": format!("{:?}", args.kind).to_lowercase(), "storage": storage,
        "nodes": nodes.len(), "window": args.load.window, "messages": args.load.messages,
        "rounds": rounds, "ratio_median": median, "ratio_summed": pooled,
    }))
}
