//! `ritma-bench <name>`: the performance benchmarks, one command each. Every
//! run starts its own stack (nats-server, a fresh database on the local
//! PostgreSQL, the controller as a separate process), prints its figures and
//! writes them as JSON under `--out` (default `target/bench/`).
//! See `crates/bench/README.md` for what each measures and the latest figures.

mod alerts;
mod api;
mod ceiling;
mod connections;
mod daemon;
mod ingest;
mod latency;
mod offline;
mod pages;
mod stack;

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use serde_json::{Value, json};

// The ingest allocates per message (decode, rows, acks): glibc's malloc was
// the controller's largest single cost in profiles of the ingest benchmark.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "ritma-bench", about = "Ritma performance benchmarks")]
struct Cli {
    /// Where the JSON results go.
    #[arg(long, global = true, default_value = "target/bench")]
    out: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// (a) Raw JetStream publish+consume vs the product's ingest into Postgres, same run.
    Ingest(ingest::Args),
    /// The raw publish+consume ceiling on a plain pinned nats-server (or any, with --url).
    Ceiling(ceiling::Args),
    /// (b) Publish → committed latency at fixed offered rates.
    Latency(latency::Args),
    /// (c) Many connected nodes, each with its own credentials.
    Connections(connections::Args),
    /// (d) API node list at 100,000 nodes.
    Api(api::Args),
    /// (e) The real ritma-node daemon's footprint.
    Daemon(daemon::Args),
    /// Offline detection at 100,000 nodes.
    Offline(offline::Args),
    /// Alerting: SIGKILL → webhook latency, and rule evaluation at 100,000 nodes.
    Alerts(alerts::Args),
    /// The console's pages (server response) at 100,000 nodes.
    Pages(pages::Args),
    /// Run the controller (used by the benchmarks themselves).
    #[command(hide = true)]
    Controller,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::Controller = cli.command {
        return run_controller();
    }
    // Benchmarks that drive many connections raise their own fd limit first.
    if let Command::Connections(a) = &cli.command {
        connections::ensure_fd_limit(a.nodes_here())?;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let _ = tracing_subscriber_init();
        std::fs::create_dir_all(&cli.out)?;
        let (name, result) = match cli.command {
            Command::Ingest(a) => ("ingest", ingest::run(a).await?),
            Command::Ceiling(a) => ("ceiling", ceiling::run(a).await?),
            Command::Latency(a) => ("latency", latency::run(a).await?),
            Command::Connections(a) => ("connections", connections::run(a).await?),
            Command::Api(a) => ("api", api::run(a).await?),
            Command::Daemon(a) => ("daemon", daemon::run(a).await?),
            Command::Offline(a) => ("offline", offline::run(a).await?),
            Command::Alerts(a) => ("alerts", alerts::run(a).await?),
            Command::Pages(a) => ("pages", pages::run(a).await?),
            Command::Controller => unreachable!("handled above"),
        };
        write_result(&cli.out, name, result).await
    })
}

fn tracing_subscriber_init() -> Option<()> {
    ritma_runtime::init_logging("warn");
    Some(())
}

fn run_controller() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        ritma_runtime::init_logging("warn");
        let config = <ritma_controller::Config as Parser>::parse_from(["ritma-controller"]);
        let listener = tokio::net::TcpListener::bind(config.api_listen).await?;
        let controller = ritma_controller::Controller::build(config).await?;
        let shutdown = ritma_runtime::shutdown_on_signals();
        controller.run(listener, shutdown).await
    })
}

async fn write_result(out: &Path, name: &str, result: Value) -> anyhow::Result<()> {
    let doc = json!({
        "benchmark": name,
        "at": chrono::Utc::now(),
        "machine": machine().await,
        "result": result,
    });
    let path = stack::out_path(out, name);
    std::fs::write(&path, serde_json::to_string_pretty(&doc)?)?;
    println!("\nwritten {}", path.display());
    Ok(())
}

async fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kb = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok());
    // The server the benchmark's stacks run (the pinned one, or the
    // machine's with a warning).
    let nats = ritma_devstack::nats_server(true)
        .ok()
        .map(|b| format!("{} ({:?}, {})", b.version, b.source, b.path.display()));
    let pg = match sqlx::PgPool::connect(&stack::postgres_admin_url()).await {
        Ok(p) => sqlx::query_scalar::<_, String>("SHOW server_version")
            .fetch_one(&p)
            .await
            .ok(),
        Err(_) => None,
    };
    json!({
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu_model": model,
        "memory_gib": mem_kb.map(|k| (k as f64 / 1048576.0 * 10.0).round() / 10.0),
        "loadavg": std::fs::read_to_string("/proc/loadavg").ok().map(|s| s.trim().to_owned()),
        "nats_server": nats,
        "postgres": pg,
    })
}

/// p-th percentile (0..=100) of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p / 100.0 * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// p50/p95/p99/p999/max of a sample (milliseconds in, milliseconds out).
pub fn summary_ms(mut v: Vec<f64>) -> Value {
    v.sort_by(f64::total_cmp);
    let r = |x: f64| (x * 100.0).round() / 100.0;
    json!({
        "n": v.len(),
        "p50_ms": r(percentile(&v, 50.0)),
        "p95_ms": r(percentile(&v, 95.0)),
        "p99_ms": r(percentile(&v, 99.0)),
        "p999_ms": r(percentile(&v, 99.9)),
        "max_ms": r(v.last().copied().unwrap_or(f64::NAN)),
    })
}

pub fn mib(bytes: u64) -> f64 {
    (bytes as f64 / 1048576.0 * 10.0).round() / 10.0
}
