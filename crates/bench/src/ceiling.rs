//! The raw JetStream publish+consume ceiling on any nats-server, outside the
//! product: by default the machine's own (`nats://127.0.0.1:4222`, Debian's
//! configuration, no accounts, no auth). The `ingest` benchmark measures its
//! raw phase on the product's server (operator mode, JWT accounts); this
//! tells whether that configuration, rather than the machine, is what caps
//! the rate: same bodies, subjects, window, pull batch and acks.

use std::time::Duration;

use ritma_protocol::NodeId;
use serde_json::{Value, json};

use crate::ingest::{Load, bodies, raw_publish_consume};

#[derive(clap::Args)]
pub struct Args {
    /// The nats-server to measure (no credentials).
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    url: String,
    #[command(flatten)]
    load: Load,
    /// Measurements in a row; the median is reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

pub async fn run(args: Args) -> anyhow::Result<Value> {
    let nodes = (0..args.load.nodes.max(1))
        .map(|i| NodeId::new(format!("n{i:06}")))
        .collect::<Result<Vec<_>, _>>()?;
    let mut rates = vec![];
    let mut rounds = vec![];
    for round in 0..args.rounds.max(1) {
        let items = bodies(&nodes, args.load.messages, round);
        let run = raw_publish_consume(
            async_nats::connect(&args.url).await?,
            async_nats::connect(&args.url).await?,
            &nodes,
            &items,
            args.load.window,
            Duration::from_secs(args.load.timeout_secs),
        )
        .await?;
        let rate = run.rate();
        println!(
            "round {}: raw publish+consume {rate:.0} msg/s on {} ({} of {} consumed, {} publishes failed)",
            round + 1,
            args.url,
            run.consumed,
            items.len(),
            run.publish_failed
        );
        rates.push(rate);
        rounds.push(run.figures(items.len()));
    }
    rates.sort_by(f64::total_cmp);
    let median = crate::percentile(&rates, 50.0);
    println!(
        "raw publish+consume on {}: median {median:.0} msg/s over {} rounds",
        args.url,
        rates.len()
    );
    Ok(json!({
        "url": args.url, "nodes": args.load.nodes, "window": args.load.window,
        "rounds": rounds, "rate_median": median,
    }))
}
