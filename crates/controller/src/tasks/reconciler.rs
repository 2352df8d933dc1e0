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
        match ritma_db::reconcile::nodes_mark_overdue(&pool).await {
            Ok(t) if !t.is_empty() => {
                for x in &t {
                    tracing::info!(node = %x.node_id, from = %x.from, to = %x.to, "status change");
                }
                wake.notify_one();
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "offline reconciler failed; retrying"),
        }
    }
}
