//! The raw JetStream publish+consume ceiling on any nats-server, outside the
//! product: by default the machine's own (`nats://127.0.0.1:4222`, Debian's
//! configuration, no accounts, no auth). The `ingest` benchmark measures its
//! raw phase on the product's server (operator mode, JWT accounts); this
//! tells whether that configuration, rather than the machine, is what caps
//! the rate: same bodies, subjects, window, pull batch and acks.

use std::time::Duration;

use ritma_protocol::{NodeId, subjects};
use serde_json::{Value, json};

use crate::ingest::{bodies, raw_publish_consume};

#[derive(clap::Args)]
pub struct Args {
    /// The nats-server to measure (no credentials).
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    url: String,
    /// Messages per round.
    #[arg(long, default_value_t = 300_000)]
    messages: usize,
    /// Distinct nodes (subjects).
    #[arg(long, default_value_t = 10_000)]
    nodes: usize,
    /// Publishes in flight (acks awaited).
    #[arg(long, default_value_t = 4000)]
    window: usize,
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Give up on a round after this many seconds.
    #[arg(long, default_value_t = 120)]
    timeout_secs: u64,
}

pub async fn run(args: Args) -> anyhow::Result<Value> {
    let nodes = (0..args.nodes.max(1))
        .map(|i| NodeId::new(format!("n{i:06}")))
        .collect::<Result<Vec<_>, _>>()?;
    let raw_subjects: Vec<String> = nodes.iter().map(subjects::bench_raw).collect();
    let mut rates = vec![];
    let mut rounds = vec![];
    for round in 0..args.rounds.max(1) {
        let items = bodies(&nodes, args.messages, round);
        let run = raw_publish_consume(
            async_nats::connect(&args.url).await?,
            async_nats::connect(&args.url).await?,
            &raw_subjects,
            &items,
            args.window,
            Duration::from_secs(args.timeout_secs),
        )
        .await?;
        let rate = run.consumed as f64 / run.secs;
        println!(
            "round {}: raw publish+consume {rate:.0} msg/s on {} ({} of {} consumed, {} publishes failed)",
            round + 1,
            args.url,
            run.consumed,
            items.len(),
            run.publish_failed
        );
        rates.push(rate);
        rounds.push(json!({
            "messages": items.len(), "consumed": run.consumed,
            "publish_failed": run.publish_failed, "publish_secs": run.publish_secs,
            "secs": run.secs, "rate": rate,
        }));
    }
    rates.sort_by(f64::total_cmp);
    let median = rates[rates.len() / 2];
    println!(
        "raw publish+consume on {}: median {median:.0} msg/s over {} rounds",
        args.url,
        rates.len()
    );
    Ok(json!({
        "url": args.url, "nodes": args.nodes, "window": args.window,
        "rounds": rounds, "rate_median": median,
    }))
}
