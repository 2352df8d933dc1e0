//! The publisher: connects the simulated nodes, sends their traffic when due
//! and counts publishes and acks.

use std::collections::BinaryHeap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use async_nats::jetstream;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use ritma_bus::connect::{ConnectSpec, SharedJwt};
use ritma_protocol::TelemetryKind;
use tokio::time::Instant;

use crate::{Counters, RunConfig, SimError, SimNode, SimReport, SummaryMix, message};

/// Next due send of one node (min-heap by time).
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Due(std::cmp::Reverse<Instant>, usize, bool);

async fn connect(
    cfg: &RunConfig,
    group: &[SimNode],
    index: usize,
) -> Result<async_nats::Client, SimError> {
    let (key, jwt, inbox) = match (&group[0].creds, &cfg.shared) {
        (Some((key, jwt)), None) => (
            key.clone(),
            jwt.clone(),
            Some(group[0].scope.inbox_prefix()),
        ),
        (_, Some(shared)) => (shared.key.clone(), shared.jwt.clone(), None),
        (None, None) => return Err(SimError::Config("no credentials for a connection".into())),
    };
    let spec = ConnectSpec {
        urls: cfg.nats_urls.clone(),
        name: format!("ritma-sim-{index}"),
        jwt: SharedJwt::new(jwt),
        key,
        inbox_prefix: inbox,
        retry_initial: false,
    };
    ritma_bus::connect::connect(spec)
        .await
        .map_err(|e| SimError::Bus(e.to_string()))
}

/// One connection's sender: publishes its nodes' messages when due, keeps
/// up to `window` acks in flight.
async fn drive(
    js: jetstream::Context,
    group: Vec<SimNode>,
    cfg: RunConfig,
    counters: Arc<Counters>,
    start: Instant,
    end: Instant,
) {
    let mut heap = BinaryHeap::new();
    let mut seqs = vec![cfg.seq_base; group.len()];
    // Spread first sends over the interval, so the fleet is not in lockstep.
    let n = group.len().max(1) as f64;
    for (i, node) in group.iter().enumerate() {
        let jitter = (i as f64 + hash01(node.scope.node.as_str())) / n;
        if let Some(h) = cfg.heartbeat {
            heap.push(Due(std::cmp::Reverse(start + h.mul_f64(jitter)), i, true));
        }
        if let Some(s) = cfg.summary {
            heap.push(Due(std::cmp::Reverse(start + s.mul_f64(jitter)), i, false));
        }
    }
    let interval_secs = cfg.heartbeat.map_or(60, |h| h.as_secs().max(1) as u32);
    let mut inflight = FuturesUnordered::new();
    loop {
        let next = heap.peek().map(|d| d.0.0);
        let Some(next) = next.filter(|t| *t < end) else {
            break;
        };
        if inflight.len() >= cfg.window {
            if let Some(r) = inflight.next().await {
                settle(r, &counters, &cfg);
            }
            continue;
        }
        tokio::select! {
            biased;
            Some(r) = inflight.next(), if !inflight.is_empty() => {
                settle(r, &counters, &cfg);
                continue;
            }
            _ = tokio::time::sleep_until(next) => {}
        }
        let Some(Due(std::cmp::Reverse(at), i, is_heartbeat)) = heap.pop() else {
            break;
        };
        let node = &group[i];
        seqs[i] += 1;
        let seq = seqs[i];
        let kind = if is_heartbeat {
            TelemetryKind::Heartbeat
        } else {
            match (cfg.summaries, seq % 3) {
                (SummaryMix::Usage, _) | (SummaryMix::Mixed, 0) => TelemetryKind::Usage,
                (SummaryMix::Mixed, 1) => TelemetryKind::Events,
                _ => TelemetryKind::Slo,
            }
        };
        let every = if is_heartbeat {
            cfg.heartbeat
        } else {
            cfg.summary
        };
        if let Some(every) = every {
            heap.push(Due(std::cmp::Reverse(at + every), i, is_heartbeat));
        }
        let body = message(&node.scope.node, kind, seq, interval_secs);
        let sent_at = Instant::now();
        match js.publish(node.scope.telemetry(kind), body.into()).await {
            Ok(ack) => {
                counters.sent.fetch_add(1, Ordering::Relaxed);
                inflight.push(async move { (ack.await, sent_at) });
            }
            Err(e) => {
                counters.failed.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(error = %e, "publish failed");
            }
        }
    }
    while let Some(r) = inflight.next().await {
        settle(r, &counters, &cfg);
    }
}

type AckResult = (
    Result<jetstream::publish::PublishAck, jetstream::context::PublishError>,
    Instant,
);

fn settle(r: AckResult, counters: &Counters, cfg: &RunConfig) {
    match r {
        (Ok(ack), sent_at) => {
            counters.acked.fetch_add(1, Ordering::Relaxed);
            if let Some(sink) = &cfg.ack_sink {
                let _ = sink.send((ack.sequence, sent_at));
            }
        }
        (Err(e), _) => {
            counters.failed.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(error = %e, "publish not acked");
        }
    }
}

/// A stable number in [0, 1) from a string (spreads start times).
fn hash01(s: &str) -> f64 {
    let h = s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    (h % 10_000) as f64 / 10_000.0
}

/// Connect every group, run the traffic for `cfg.duration`, report.
pub async fn run(nodes: Vec<SimNode>, cfg: RunConfig) -> Result<SimReport, SimError> {
    let counters = Arc::new(Counters::default());
    run_with(nodes, cfg, counters).await
}

pub async fn run_with(
    nodes: Vec<SimNode>,
    cfg: RunConfig,
    counters: Arc<Counters>,
) -> Result<SimReport, SimError> {
    if nodes.is_empty() {
        return Err(SimError::Config("no nodes".into()));
    }
    let per = if cfg.shared.is_some() {
        cfg.nodes_per_connection.max(1)
    } else {
        1
    };
    let total = nodes.len();
    let groups: Vec<Vec<SimNode>> = nodes.chunks(per).map(<[SimNode]>::to_vec).collect();
    let connect_started = Instant::now();
    // Connect with bounded concurrency (a connect storm only measures the accept queue).
    let mut connecting = futures::stream::iter(groups.into_iter().enumerate().map(|(i, g)| {
        let cfg = cfg.clone();
        async move {
            let r = connect(&cfg, &g, i).await;
            (r, g)
        }
    }))
    .buffer_unordered(64);
    let mut clients = Vec::new();
    while let Some((r, g)) = connecting.next().await {
        match r {
            Ok(c) => {
                counters.connected.fetch_add(1, Ordering::Relaxed);
                clients.push((c, g));
            }
            Err(e) => {
                let failed = counters.connect_failed.fetch_add(1, Ordering::Relaxed);
                if failed < 5 {
                    tracing::warn!(error = %e, "connect failed");
                }
            }
        }
        let c = counters.connected.load(Ordering::Relaxed);
        if cfg.progress.is_some() && c > 0 && c.is_multiple_of(1000) {
            eprintln!("  connected {c}");
        }
    }
    drop(connecting);
    let connect_secs = connect_started.elapsed().as_secs_f64();
    let start = Instant::now();
    let end = start + cfg.duration;
    let mut tasks = tokio::task::JoinSet::new();
    let mut keep = Vec::with_capacity(clients.len());
    for (client, group) in clients {
        let js = jetstream::new(client.clone());
        keep.push(client);
        tasks.spawn(drive(js, group, cfg.clone(), counters.clone(), start, end));
    }
    let reporter = cfg.progress.map(|every| {
        let counters = counters.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            let mut last = (0u64, Instant::now());
            loop {
                tick.tick().await;
                let acked = counters.acked.load(Ordering::Relaxed);
                let rate = (acked - last.0) as f64 / last.1.elapsed().as_secs_f64();
                last = (acked, Instant::now());
                eprintln!(
                    "  {:>5.0}s sent {} acked {} failed {} ({rate:.0} acked/s)",
                    start.elapsed().as_secs_f64(),
                    counters.sent.load(Ordering::Relaxed),
                    acked,
                    counters.failed.load(Ordering::Relaxed),
                );
            }
        })
    });
    while tasks.join_next().await.is_some() {}
    let run_secs = start.elapsed().as_secs_f64();
    if let Some(r) = reporter {
        r.abort();
    }
    tokio::time::sleep(cfg.linger).await;
    for c in &keep {
        let _ = c.flush().await;
    }
    drop(keep);
    let sent = counters.sent.load(Ordering::Relaxed);
    let acked = counters.acked.load(Ordering::Relaxed);
    Ok(SimReport {
        nodes: total,
        connections: counters.connected.load(Ordering::Relaxed),
        connect_failed: counters.connect_failed.load(Ordering::Relaxed),
        enroll_secs: 0.0,
        connect_secs,
        run_secs,
        sent,
        acked,
        failed: counters.failed.load(Ordering::Relaxed),
        sent_per_sec: sent as f64 / run_secs.max(1e-9),
        acked_per_sec: acked as f64 / run_secs.max(1e-9),
    })
}
