//! (c) Many connected nodes, each with its own credentials: N nodes enroll
//! through the API (one token, max_uses N), each connects with its own NKey
//! and JWT on its own connection and heartbeats every `--heartbeat-secs`.
//! While they are all connected: nats-server memory (`/varz` mem) and
//! connections, the controller's RSS (/proc), the load generator's RSS, and
//! heartbeat lag (controller receive time − node send time, from the rows).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ritma_protocol::{OrgId, TenantId};
use ritma_sim::{Counters, RunConfig, SummaryMix};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::stack::{ADMIN_TOKEN, CpuMeter, Stack, StackOptions, rss, self_pid};
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
    /// nats-servers (one cluster) and load-generator processes to spread the
    /// nodes over; default: the fewest whose share fits one process's
    /// open-file hard limit.
    #[arg(long)]
    servers: Option<usize>,
}

impl Args {
    pub fn servers(&self) -> usize {
        self.servers.unwrap_or_else(|| {
            let hard = nofile_limit(4).unwrap_or(u64::MAX);
            (1..=8)
                .find(|k| fds_needed(self.nodes.div_ceil(*k)) <= hard)
                .unwrap_or(8)
        })
    }

    /// Nodes this process drives (the others run in child processes).
    pub fn nodes_here(&self) -> usize {
        self.nodes.div_ceil(self.servers())
    }
}

/// Field `index` of the "Max open files" line of /proc/self/limits (3: soft, 4: hard).
fn nofile_limit(index: usize) -> Option<u64> {
    std::fs::read_to_string("/proc/self/limits")
        .ok()?
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(index))
        .and_then(|v| v.parse().ok())
}

/// Each connection is a socket in the load generator and one in nats-server.
fn fds_needed(nodes: usize) -> u64 {
    (nodes as u64) * 11 / 10 + 1024
}

/// The server inherits our limits: re-run under `prlimit` when too low
/// (needs root or CAP_SYS_RESOURCE above the hard limit).
pub fn ensure_fd_limit(nodes: usize) -> anyhow::Result<()> {
    let need = fds_needed(nodes);
    if nofile_limit(3).unwrap_or(0) >= need || std::env::var_os("RITMA_BENCH_PRLIMIT").is_some() {
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

/// The other shares of the fleet: `ritma sim` (next to this binary) with the
/// same settings, each on its own nats-server of the cluster.
fn spawn_partners(
    stack: &Stack,
    args: &Args,
    share: usize,
    out: &std::path::Path,
) -> anyhow::Result<Vec<(Child, std::path::PathBuf)>> {
    let exe = std::env::current_exe()?;
    let ritma = exe.with_file_name("ritma");
    anyhow::ensure!(
        ritma.exists() || stack.peers.is_empty(),
        "{} missing: cargo build --release -p ritma-cli",
        ritma.display()
    );
    let mut children = vec![];
    for (i, server) in stack.peers.iter().enumerate() {
        let json = out.join(format!("connections-part-{}.json", i + 1));
        let child = Command::new(&ritma)
            .arg("sim")
            .args(["--api-url", &stack.api_url, "--admin-token", ADMIN_TOKEN])
            .args([
                "--nats-url",
                &server.url,
                "--org",
                "bench",
                "--tenant",
                "fleet",
            ])
            .args(["--prefix", &format!("c{}", i + 1), "--own-credentials"])
            .args(["-n", &share.to_string(), "--nodes-per-connection", "1"])
            .args(["--heartbeat-secs", &args.heartbeat_secs.to_string()])
            .args(["--summary-secs", "86400", "--window", "8"])
            .args(["--enroll-concurrency", &args.enroll_concurrency.to_string()])
            .args(["--duration-secs", &args.hold_secs.to_string()])
            .arg("--json")
            .arg(&json)
            .stdout(Stdio::null())
            .spawn()?;
        children.push((child, json));
    }
    Ok(children)
}

pub async fn run(args: Args) -> anyhow::Result<Value> {
    let servers = args.servers();
    let share = args.nodes_here();
    let stack = Stack::start_with(
        &[("RITMA_DEFAULT_HEARTBEAT_SECS", "10".into())],
        StackOptions {
            nats_servers: servers,
            ..StackOptions::default()
        },
    )
    .await?;
    let org = OrgId::new("bench")?;
    let tenant = TenantId::new("fleet")?;
    eprintln!(
        "{} nodes over {servers} nats-server(s) and as many load-generator processes; enrolling through the API ...",
        args.nodes
    );
    let out = stack.dir.path().to_owned();
    // The controller's own connections, before any node connects.
    let baseline = nats_totals(&stack).await.0;
    let t0 = Instant::now();
    let mut partners = spawn_partners(&stack, &args, share, &out)?;
    let here = args.nodes - share * stack.peers.len();
    let (nodes, _) = ritma_sim::enroll(
        &stack.api,
        &org,
        &tenant,
        "c",
        here,
        args.enroll_concurrency,
        true,
    )
    .await?;
    let enroll_secs = t0.elapsed().as_secs_f64();
    eprintln!(
        "enrolled {} here in {enroll_secs:.1}s ({:.0}/s); connecting, one connection per node ...",
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
        nats_urls: vec![stack.nats.url.clone()],
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
    // Wait until every node is connected (all servers' client counts, minus
    // the controller's and this benchmark's own connections), then sample
    // while they hold.
    let connect_start = Instant::now();
    loop {
        let up = nats_totals(&stack).await.0.saturating_sub(baseline);
        if up as usize >= args.nodes
            || sim.is_finished()
            || connect_start.elapsed() > Duration::from_secs(args.hold_secs.max(120))
        {
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
        let (connections, mem) = nats_totals(&stack).await;
        let partner_rss: u64 = partners
            .iter()
            .filter_map(|(c, _)| rss(c.id()).map(|r| r.0))
            .sum();
        samples.push(json!({
            "t": connect_start.elapsed().as_secs_f64(),
            "nats_connections": connections,
            "nats_mem_mib": mib(mem),
            "controller_rss_mib": stack.controller_pid().and_then(rss).map(|r| mib(r.0)),
            "sim_rss_mib": rss(self_pid()).map(|r| mib(r.0 + partner_rss)),
        }));
    }
    let cores = cpu.cores(&stack);
    let mut report = serde_json::to_value(sim.await??)?;
    for (child, json) in &mut partners {
        let status = tokio::task::block_in_place(|| child.wait())?;
        let part: Value = serde_json::from_str(&std::fs::read_to_string(&*json).map_err(|e| {
            anyhow::anyhow!(
                "ritma sim ({status}) wrote no report {}: {e}",
                json.display()
            )
        })?)?;
        for k in [
            "nodes",
            "connections",
            "connect_failed",
            "sent",
            "acked",
            "failed",
        ] {
            report[k] = json!(report[k].as_u64().unwrap_or(0) + part[k].as_u64().unwrap_or(0));
        }
    }
    let lag: Vec<f64> = sqlx::query_scalar(
        "SELECT (extract(epoch FROM last_seen_at - last_sent_at) * 1000)::float8 FROM node_liveness
         WHERE last_sent_at IS NOT NULL AND org_id = 'bench'",
    )
    .fetch_all(&stack.pool)
    .await?;
    let online: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM nodes WHERE status = 'online' AND org_id = 'bench'",
    )
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
        report["connections"],
        report["connect_failed"],
        idle_rss.0.map(|r| mib(r.0)),
        idle_rss.1.map(|r| mib(r.0)),
        report["sent"],
        report["acked"],
        report["failed"],
        lag["p50_ms"],
        lag["p99_ms"],
    );
    Ok(json!({
        "nodes": args.nodes, "nats_servers": servers, "heartbeat_secs": args.heartbeat_secs,
        "enroll_secs": enroll_secs, "enroll_rate": args.nodes as f64 / enroll_secs,
        "connect_secs": connect_secs, "sim": report, "online": online,
        "nats_mem_peak_mib": peak, "controller_rss_peak_mib": peak_ctrl, "sim_rss_peak_mib": peak_sim,
        "nats_rss_before_mib": idle_rss.0.map(|r| mib(r.0)),
        "controller_rss_before_mib": idle_rss.1.map(|r| mib(r.0)),
        "cores": cores,
        "heartbeat_lag": lag, "samples": samples,
    }))
}

/// Clients connected to all the stack's servers (routes are not clients)
/// and the servers' memory in bytes, summed from each one's `/varz`.
async fn nats_totals(stack: &Stack) -> (u64, u64) {
    let (mut connections, mut mem) = (0, 0);
    for server in stack.nats_servers() {
        if let Ok(v) = stack.varz_of(server).await {
            connections += v["connections"].as_u64().unwrap_or(0);
            mem += v["mem"].as_u64().unwrap_or(0);
        }
    }
    (connections, mem)
}
