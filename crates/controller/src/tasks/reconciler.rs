//! Offline detection: an idempotent reconciler that moves overdue nodes to
//! stale or offline, commits the transitions, and wakes the publisher.
//!
//! Liveness never depends on the ingest keeping up: heartbeat deadlines
//! count from the broker's receive time (see `ritma_db::ingest`), and each
//! pass only marks deadlines that fall before the ingest's watermark, the
//! broker time of the oldest telemetry message not yet committed. While the
//! ingest is behind (a backlog, a slow or unreachable database), offline
//! marking waits for it; when the watermark cannot be read (the bus is
//! unreachable), it waits too.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// A watermark this far behind the clock is logged (at most once a minute).
const LAG_WARNING: chrono::TimeDelta = chrono::TimeDelta::seconds(10);

pub type IngestConsumer = (
    jetstream::stream::Stream<()>,
    jetstream::consumer::PullConsumer,
);

/// Commit the half's overdue transitions: when many nodes fall due at once
/// (a rack losing power, a bus outage) every claimed batch is committed at
/// once, not one batch per tick.
async fn drain(
    pool: &PgPool,
    watermark: DateTime<Utc>,
    flapping: ritma_db::flapping::FlapPolicy,
    half: ritma_db::reconcile::Half,
    wake: &Notify,
    metrics: &crate::metrics::Metrics,
    shutdown: &CancellationToken,
) {
    loop {
        match ritma_db::reconcile::nodes_mark_overdue(pool, watermark, flapping, half).await {
            Ok(t) if !t.is_empty() => {
                transitions_report(&t, metrics);
                wake.notify_one();
                if (t.len() as i64) < ritma_db::reconcile::BATCH || shutdown.is_cancelled() {
                    return;
                }
            }
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(error = %e, "offline reconciler failed; retrying");
                return;
            }
        }
    }
}

/// Count and log committed transitions.
fn transitions_report(t: &[ritma_db::outbox::StatusTransition], metrics: &crate::metrics::Metrics) {
    for x in t {
        metrics.transition(&x.to);
    }
    if t.len() <= 100 {
        for x in t {
            tracing::info!(node = %x.node_id, from = %x.from, to = %x.to, "status change");
        }
    } else {
        tracing::info!(count = t.len(), "status changes");
    }
}

/// Up to when every telemetry message is committed, by the broker's clock.
pub async fn watermark(
    js: &jetstream::Context,
    consumer: &mut Option<IngestConsumer>,
) -> Result<DateTime<Utc>, ritma_bus::BusError> {
    let asked = Utc::now();
    if consumer.is_none() {
        *consumer = Some(ritma_bus::streams::ingest_consumer(js).await?);
    }
    let Some((stream, consumer_handle)) = consumer.as_mut() else {
        unreachable!("set just above")
    };
    let read = ritma_bus::streams::ingest_watermark(stream, consumer_handle).await;
    if read.is_err() {
        // Looked up again next time (the stream may have been recreated).
        *consumer = None;
    }
    Ok(match read? {
        None => asked,
        Some(nanos) => {
            let nanos = i64::try_from(nanos).unwrap_or(i64::MAX);
            // Never ahead of the moment the question was asked.
            DateTime::from_timestamp_nanos(nanos).min(asked)
        }
    })
}

pub async fn run(
    pool: PgPool,
    js: jetstream::Context,
    every: Duration,
    flapping: ritma_db::flapping::FlapPolicy,
    wake: Arc<Notify>,
    metrics: Arc<crate::metrics::Metrics>,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut warned: Option<Instant> = None;
    let mut consumer = None;
    let mut warn = |what: String| {
        if warned.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
            warned = Some(Instant::now());
            tracing::warn!("{what}");
        }
    };
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let watermark = match watermark(&js, &mut consumer).await {
            Ok(w) => w,
            Err(e) => {
                warn(format!(
                    "ingest watermark unreadable ({e}); offline marking waits"
                ));
                continue;
            }
        };
        let behind = Utc::now() - watermark;
        metrics
            .reconciler_lag_seconds
            .set(behind.num_milliseconds().max(0) as f64 / 1000.0);
        if behind > LAG_WARNING {
            warn(format!(
                "ingest {}s behind the bus; offline marking waits for it",
                behind.num_seconds()
            ));
        }
        // Both halves of the fleet drain at once, each on its own
        // connection. Measured on 2 cores (`ritma-bench offline`, 100,000
        // nodes falling due within 10 s): one claim at a time left a core
        // idle while PostgreSQL updated one batch.
        let halves = ritma_db::reconcile::Half::BOTH
            .map(|half| drain(&pool, watermark, flapping, half, &wake, &metrics, &shutdown));
        futures::future::join_all(halves).await;
    }
}
