//! The raw JetStream publish+consume ceiling on a nats-server, outside the
//! product: by default a plain server (no accounts, no auth, JetStream on
//! file storage) of the pinned version (`nats/requirements.txt`) started for
//! the run; `--url` measures any other. The `ingest` benchmark measures its
//! raw phase on the product's server (operator mode, JWT accounts); this
//! tells whether that configuration, rather than the machine, is what caps
//! the rate: same bodies, subjects, window, pull batch and acks.

use std::time::Duration;

use ritma_protocol::{NodeId, TelemetryKind};
use serde_json::{Value, json};

use crate::ingest::{Load, bodies, raw_publish_consume};

#[derive(clap::Args)]
pub struct Args {
    /// A nats-server to measure (no credentials); default: a plain pinned
    /// server started for this run.
    #[arg(long)]
    url: Option<String>,
    #[command(flatten)]
    load: Load,
    /// Measurements in a row; the median is reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

/// A plain nats-server (JetStream, no auth) on a free loopback port; killed on drop.
struct PlainServer {
    child: std::process::Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl PlainServer {
    async fn start() -> anyhow::Result<Self> {
        let binary = ritma_devstack::nats_server(true)?;
        let dir = tempfile::tempdir()?;
        let port = ritma_devstack::ports::free_port()?;
        let child = std::process::Command::new(&binary.path)
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        let server = Self {
            child,
            url: format!("nats://127.0.0.1:{port}"),
            _dir: dir,
        };
        ritma_devstack::ports::wait_for_port(port, Duration::from_secs(15)).await?;
        println!("plain nats-server {} at {}", binary.version, server.url);
        Ok(server)
    }
}

impl Drop for PlainServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn run(args: Args) -> anyhow::Result<Value> {
    let (url, _plain) = match args.url {
        Some(url) => (url, None),
        None => {
            let plain = PlainServer::start().await?;
            (plain.url.clone(), Some(plain))
        }
    };
    let nodes = (0..args.load.nodes.max(1))
        .map(|i| NodeId::new(format!("n{i:06}")))
        .collect::<Result<Vec<_>, _>>()?;
    let mut rates = vec![];
    let mut rounds = vec![];
    for round in 0..args.rounds.max(1) {
        let items = bodies(&nodes, &[TelemetryKind::Usage], args.load.messages, round);
        let run = raw_publish_consume(
            async_nats::connect(&url).await?,
            async_nats::connect(&url).await?,
            &nodes,
            &items,
            &args.load,
        )
        .await?;
        let rate = run.rate();
        println!(
            "round {}: raw publish+consume {rate:.0} msg/s on {} ({} of {} consumed, {} publishes failed)",
            round + 1,
            url,
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
        "raw publish+consume on {url}: median {median:.0} msg/s over {} rounds",
        rates.len()
    );
    Ok(json!({
        "url": url, "nodes": args.load.nodes, "window": args.load.window,
        "rounds": rounds, "rate_median": median,
    }))
}
