//! Offline detection: an idempotent reconciler that moves overdue nodes to
//! stale or offline, commits the transitions, and wakes the publisher.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub async fn run(pool: PgPool, every: Duration, wake: Arc<Notify>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        // Drain: when many nodes fall due at once (a rack losing power, a
        // bus outage) every claimed batch is committed at once, not one
        // batch per tick.
        loop {
            match ritma_db::reconcile::nodes_mark_overdue(&pool).await {
                Ok(t) if !t.is_empty() => {
                    if t.len() <= 100 {
                        for x in &t {
                            tracing::info!(node = %x.node_id, from = %x.from, to = %x.to, "status change");
                        }
                    } else {
                        tracing::info!(count = t.len(), "status changes");
                    }
                    wake.notify_one();
                    if (t.len() as i64) < ritma_db::reconcile::BATCH || shutdown.is_cancelled() {
                        break;
                    }
                }
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "offline reconciler failed; retrying");
                    break;
                }
            }
        }
    }
}
