//! Returns flapping nodes to their real status once they have been steady
//! for the flapping window (one transition each; see `ritma_db::flapping`).

use std::sync::Arc;

use ritma_db::flapping::{FlapPolicy, SETTLE_BATCH, flapping_settle};
use sqlx::PgPool;
use tokio::sync::Notify;

use super::periodic::Pass;

/// Settles, each pass, every node steady for the flapping window.
pub struct FlappingSettler {
    pub pool: PgPool,
    pub policy: FlapPolicy,
    /// Woken when transitions were written (the state-change publisher).
    pub wake: Arc<Notify>,
}

impl Pass for FlappingSettler {
    async fn pass(&mut self) {
        loop {
            match flapping_settle(&self.pool, self.policy).await {
                Ok(t) if !t.is_empty() => {
                    for x in t.iter().take(100) {
                        tracing::info!(node = %x.node_id, to = %x.to, "steady again after flapping");
                    }
                    self.wake.notify_one();
                    if (t.len() as i64) < SETTLE_BATCH {
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
