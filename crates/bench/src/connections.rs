//! (c) Many connected nodes, each with its own credentials: N nodes enroll
//! through the API (one token, max_uses N), each connects with its own NKey
//! and JWT on its own connection and heartbeats every `--heartbeat-secs`.
//! While they are all connected: nats-server memory (`/varz` mem) and
//! connections, the controller's RSS (/proc), the load generator's RSS, and
//! heartbeat lag (controller receive time − node send time, from the rows).

use std::time::Duration;

use ritma_protocol::{OrgId, TenantId};
use ritma_sim::{Counters, RunConfig, SummaryMix};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::stack::{CpuMeter, Stack, rss, self_pid};
use crate::{mib, summary_ms};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value_t = 20_000)]
    pub nodes: usize,
    #[arg(long, default_value_t = 10.0)]
    heartbeat_secs: f64,
    /// Seconds to hold all connections after they are up.
    #[arg(long, default_value_t = 60)]
    hold_secs: u64,
    #[arg(long, default_value_t = 32)]
    enroll_concurrency: usize,
}

fn nofile_soft() -> Option<u64> {
    std::fs::read_to_string("/proc/self/limits")
        .ok()?
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
}

/// Each connection is a socket in this process and one in nats-server, and
/// the server inherits our limits: re-run under `prlimit` when too low
/// (needs root or CAP_SYS_RESOURCE above the hard limit).
pub fn ensure_fd_limit(nodes: usize) -> anyhow::Result<()> {
    let need = (nodes as u64) * 11 / 10 + 1024;
    if nofile_soft().unwrap_or(0) >= need || std::env::var_os("RITMA_BENCH_PRLIMIT").is_some() {
        return Ok(());
    }
    let exe = std::env::current_exe()?;
    let status = std::process::Command::new("prlimit")
        .arg(format!("--nofile={need}:{need}"))
        .arg(exe)
        .args(std::env::args_os().skip(1))
        .env("RITMA_BENCH_PRLIMIT", "1")
        .status()?;
    std::process::exit(status.code().unwrap_or(1));
}

pub async fn run(args: Args) -> anyhow::Result<Value> {
    let stack = Stack::start(&[("RITMA_DEFAULT_HEARTBEAT_SECS", "10".into())]).await?;
    let org = OrgId::new("bench")?;
    let tenant = TenantId::new("fleet")?;
    eprintln!("enrolling {} nodes through the API ...", args.nodes);
    let t0 = Instant::now();
    let (nodes, urls) = ritma_sim::enroll(
        &stack.api,
        &org,
        &tenant,
        "c",
        args.nodes,
        args.enroll_concurrency,
        true,
    )
    .await?;
    let enroll_secs = t0.elapsed().as_secs_f64();
    eprintln!(
        "enrolled {} in {enroll_secs:.1}s ({:.0}/s); connecting, one connection per node ...",
        nodes.len(),
        nodes.len() as f64 / enroll_secs
    );
    let idle_rss = (
        stack.nats.pid().and_then(rss),
        stack.controller_pid().and_then(rss),
    );
    let counters = std::sync::Arc::new(Counters::default());
    let heartbeat = Duration::from_secs_f64(args.heartbeat_secs.max(0.1));
    let cfg = RunConfig {
        nats_urls: if urls.is_empty() {
            vec![stack.nats.url.clone()]
        } else {
            urls
        },
        shared: None,
        nodes_per_connection: 1,
        heartbeat: Some(heartbeat),
        summary: None,
        summaries: SummaryMix::Usage,
        duration: Duration::from_secs(args.hold_secs),
        window: 8,
        progress: Some(Duration::from_secs(10)),
        ack_sink: None,
        linger: Duration::ZERO,
        seq_base: 0,
    };
    let sim = tokio::spawn(ritma_sim::run_with(nodes, cfg, counters.clone()));
    // Wait until every node is connected (or failed), then sample while they hold.
    let connect_start = Instant::now();
    loop {
        let c = counters
            .connected
            .load(std::sync::atomic::Ordering::Relaxed)
            + counters
                .connect_failed
                .load(std::sync::atomic::Ordering::Relaxed);
        if c as usize >= args.nodes || sim.is_finished() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let connect_secs = connect_start.elapsed().as_secs_f64();
    eprintln!("connections up after {connect_secs:.1}s; holding ...");
    let mut samples = vec![];
    let cpu = CpuMeter::start(&stack);
    while !sim.is_finished() {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let varz = stack.varz().await.unwrap_or(Value::Null);
        samples.push(json!({
            "t": connect_start.elapsed().as_secs_f64(),
            "nats_connections": varz["connections"],
            "nats_mem_mib": varz["mem"].as_u64().map(mib),
            "nats_cpu_pct": varz["cpu"],
            "controller_rss_mib": stack.controller_pid().and_then(rss).map(|r| mib(r.0)),
            "sim_rss_mib": rss(self_pid()).map(|r| mib(r.0)),
        }));
    }
    let cores = cpu.cores(&stack);
    let report = sim.await??;
    let lag: Vec<f64> = sqlx::query_scalar(
        "SELECT (extract(epoch FROM last_seen_at - last_sent_at) * 1000)::float8 FROM nodes
         WHERE last_sent_at IS NOT NULL AND id LIKE 'c-%'",
    )
    .fetch_all(&stack.pool)
    .await?;
    let online: i64 =
        sqlx::query_scalar("SELECT count(*) FROM nodes WHERE status = 'online' AND id LIKE 'c-%'")
            .fetch_one(&stack.pool)
            .await?;
    let peak = samples
        .iter()
        .filter_map(|s| s["nats_mem_mib"].as_f64())
        .fold(0.0, f64::max);
    let peak_ctrl = samples
        .iter()
        .filter_map(|s| s["controller_rss_mib"].as_f64())
        .fold(0.0, f64::max);
    let peak_sim = samples
        .iter()
        .filter_map(|s| s["sim_rss_mib"].as_f64())
        .fold(0.0, f64::max);
    let lag = summary_ms(lag);
    println!(
        "{} nodes, {} connected ({} failed) in {connect_secs:.1}s; nats-server mem peak {peak} MiB (idle {:?} MiB), controller RSS peak {peak_ctrl} MiB (idle {:?} MiB), load generator RSS {peak_sim} MiB; \
         heartbeats sent {} acked {} failed {}; online {online}; heartbeat lag p50 {} ms p99 {} ms; cores {cores}",
        args.nodes,
        report.connections,
        report.connect_failed,
        idle_rss.0.map(|r| mib(r.0)),
        idle_rss.1.map(|r| mib(r.0)),
        report.sent,
        report.acked,
        report.failed,
        lag["p50_ms"],
        lag["p99_ms"],
    );
    Ok(json!({
        "nodes": args.nodes, "heartbeat_secs": args.heartbeat_secs,
        "enroll_secs": enroll_secs, "enroll_rate": args.nodes as f64 / enroll_secs,
        "connect_secs": connect_secs, "sim": report, "online": online,
        "nats_mem_peak_mib": peak, "controller_rss_peak_mib": peak_ctrl, "sim_rss_peak_mib": peak_sim,
        "nats_rss_before_mib": idle_rss.0.map(|r| mib(r.0)),
        "controller_rss_before_mib": idle_rss.1.map(|r| mib(r.0)),
        "cores": cores,
        "heartbeat_lag": lag, "samples": samples,
    }))
}
