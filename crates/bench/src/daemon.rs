//! (e) The real `ritma-node` binary's footprint: it enrolls against the
//! bench stack, then RSS (VmRSS, peak VmHWM) and CPU (utime+stime from
//! /proc/<pid>/stat over the window) are read at idle (heartbeat every 10 s,
//! summaries every 60 s) and at 1 msg/s (heartbeat every second).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use ritma_protocol::{OrgId, TenantId};
use serde_json::{Value, json};

use crate::mib;
use crate::stack::{Stack, cpu_secs, rss};

#[derive(clap::Args)]
pub struct Args {
    /// The daemon binary (default: ritma-node next to this binary).
    #[arg(long)]
    node_bin: Option<PathBuf>,
    /// Seconds measured per phase (after a 10 s warm-up).
    #[arg(long, default_value_t = 60)]
    secs: u64,
}

fn spawn(
    bin: &PathBuf,
    stack: &Stack,
    token: &str,
    state: &std::path::Path,
    heartbeat: u32,
) -> anyhow::Result<Child> {
    let log = std::fs::File::create(state.with_extension(format!("hb{heartbeat}.log")))?;
    Ok(Command::new(bin)
        .env("RITMA_NODE_CONTROLLER_URL", &stack.api_url)
        .env("RITMA_ENROLL_TOKEN", token)
        .env("RITMA_STATE_DIR", state)
        .env("RITMA_HEARTBEAT_SECS", heartbeat.to_string())
        .env("RITMA_SUMMARY_SECS", "60")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()?)
}

async fn measure(pid: u32, secs: u64) -> anyhow::Result<Value> {
    tokio::time::sleep(Duration::from_secs(10)).await;
    let c0 = cpu_secs(pid).context("daemon exited")?;
    let t0 = Instant::now();
    let mut rss_max = 0u64;
    let mut rss_last = 0u64;
    let mut hwm = 0u64;
    while t0.elapsed() < Duration::from_secs(secs) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if let Some((r, h)) = rss(pid) {
            rss_max = rss_max.max(r);
            rss_last = r;
            hwm = h;
        }
    }
    let c1 = cpu_secs(pid).context("daemon exited")?;
    let cpu_pct = (c1 - c0) / t0.elapsed().as_secs_f64() * 100.0;
    Ok(json!({
        "rss_mib": mib(rss_last), "rss_max_mib": mib(rss_max), "peak_hwm_mib": mib(hwm),
        "cpu_pct": (cpu_pct * 1000.0).round() / 1000.0, "secs": secs,
    }))
}

pub async fn run(args: Args) -> anyhow::Result<Value> {
    let bin = match args.node_bin {
        Some(b) => b,
        None => std::env::current_exe()?
            .parent()
            .context("no folder for this binary")?
            .join("ritma-node"),
    };
    anyhow::ensure!(
        bin.exists(),
        "{} not found: cargo build --release -p ritma-node",
        bin.display()
    );
    let stack = Stack::start(&[]).await?;
    let org = OrgId::new("bench")?;
    stack.api.org_ensure(&org).await?;
    let token = stack
        .api
        .token_create(&org, &TenantId::new("edge")?, 1)
        .await?;
    let state = stack.dir.path().join("node");
    let mut out = serde_json::Map::new();
    for (phase, heartbeat) in [("idle", 10u32), ("1_msg_per_sec", 1u32)] {
        let mut child = spawn(&bin, &stack, &token, &state, heartbeat)?;
        eprintln!(
            "{phase}: daemon pid {}, measuring {}s ...",
            child.id(),
            args.secs
        );
        let r = measure(child.id(), args.secs).await;
        let _ = Command::new("kill").arg(child.id().to_string()).status();
        let _ = child.wait();
        let r = r?;
        println!(
            "{phase:<14} RSS {} MiB (max {}, peak {}), CPU {}% — targets RSS < 15 MB, idle CPU < 0.5%",
            r["rss_mib"], r["rss_max_mib"], r["peak_hwm_mib"], r["cpu_pct"]
        );
        out.insert(phase.into(), r);
    }
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM nodes WHERE status <> 'unseen'")
        .fetch_one(&stack.pool)
        .await?;
    out.insert("nodes_seen".into(), json!(rows));
    Ok(Value::Object(out))
}
