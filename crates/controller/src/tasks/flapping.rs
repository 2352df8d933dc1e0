//! Returns flapping nodes to their real status once they have been steady
//! for the flapping window (one transition each; see `ritma_db::flapping`).

use std::sync::Arc;
use std::time::Duration;

use ritma_db::flapping::{FlapPolicy, SETTLE_BATCH, flapping_settle};
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub async fn run(
    pool: PgPool,
    policy: FlapPolicy,
    every: Duration,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        loop {
            match flapping_settle(&pool, policy).await {
                Ok(t) if !t.is_empty() => {
                    for x in t.iter().take(100) {
                        tracing::info!(node = %x.node_id, to = %x.to, "steady again after flapping");
                    }
                    wake.notify_one();
                    if (t.len() as i64) < SETTLE_BATCH || shutdown.is_cancelled() {
                        break;
                    }
                }
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "flapping settle failed; retrying");
                    break;
                }
            }
        }
    }
}
