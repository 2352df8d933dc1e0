//! The delivery worker: takes due notifications from the outbox (leased, so
//! a crashed or restarted controller's attempts are retried), sends each to
//! its channel, and records the outcome; failures are retried with
//! exponential back-off until the attempts run out.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::StreamExt;
use ritma_db::alerts::{self as store, DeliveryClaim};
use ritma_protocol::alerts::AlertNotification;
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::send::{ChannelSecret, SendError, Sender, seal_context};
use super::settings::AlertSettings;
use crate::accounts::Accounts;
use crate::metrics::{DeliveryOutcome, Metrics};

const CLAIM: i64 = 32;
const CONCURRENCY: usize = 8;

pub struct Deliverer {
    pub pool: PgPool,
    pub accounts: Arc<Accounts>,
    pub settings: AlertSettings,
    pub wake: Arc<Notify>,
    pub metrics: Arc<Metrics>,
}

/// The wait before attempt `attempts + 1`: base x 2^(attempts - 1), at most
/// an hour, with up to 10 % jitter so a recovering receiver is not hit by
/// every retry at once.
pub fn backoff(base: Duration, attempts: i32) -> Duration {
    let exp = u32::try_from(attempts.saturating_sub(1).clamp(0, 20)).unwrap_or(20);
    let wait = base
        .saturating_mul(1u32 << exp)
        .min(Duration::from_secs(3600));
    wait + wait.mul_f64(rand::random::<f64>() * 0.1)
}

impl Deliverer {
    pub async fn run(self, shutdown: CancellationToken) {
        let lease = (self.settings.timeout_secs.max(1) * 3 + 5) as i64;
        loop {
            let claimed = match store::deliveries_claim(&self.pool, CLAIM, lease).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "taking alert deliveries failed; retrying");
                    Vec::new()
                }
            };
            let n = claimed.len() as i64;
            futures::stream::iter(claimed)
                .for_each_concurrent(CONCURRENCY, |c| self.attempt(c))
                .await;
            if n == CLAIM {
                continue;
            }
            let wait = match store::deliveries_next_due(&self.pool).await {
                Ok(Some(at)) => (at - Utc::now())
                    .to_std()
                    .unwrap_or(Duration::ZERO)
                    .clamp(Duration::from_millis(20), Duration::from_secs(1)),
                _ => Duration::from_secs(1),
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    async fn attempt(&self, claim: DeliveryClaim) {
        let outcome = self.send(&claim).await;
        let (status, error, retry_at) = match &outcome {
            Ok(status) => (*status, None, None),
            Err(e @ SendError::Retry(..)) if claim.attempts < self.settings.max_attempts => {
                let wait = backoff(
                    Duration::from_millis(self.settings.retry_base_ms),
                    claim.attempts,
                );
                let at = Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
                (e.status(), Some(e.to_string()), Some(at))
            }
            Err(e) => (e.status(), Some(e.to_string()), None),
        };
        if let Some(e) = &error {
            tracing::warn!(delivery = claim.id, attempts = claim.attempts, error = %e,
                retry = retry_at.is_some(), "alert delivery failed");
        }
        self.metrics.alert_delivery(match (&error, retry_at) {
            (None, _) => DeliveryOutcome::Delivered,
            (Some(_), Some(_)) => DeliveryOutcome::Retry,
            (Some(_), None) => DeliveryOutcome::Failed,
        });
        let status = status.map(i32::from);
        if let Err(e) =
            store::delivery_record(&self.pool, claim.id, status, error.as_deref(), retry_at).await
        {
            // The lease runs out and the delivery is tried again.
            tracing::warn!(delivery = claim.id, error = %e, "recording an alert delivery failed");
        }
    }

    async fn send(&self, claim: &DeliveryClaim) -> Result<Option<u16>, SendError> {
        let n: AlertNotification = serde_json::from_value(claim.notification.clone())
            .map_err(|e| SendError::Permanent(format!("unreadable notification: {e}"), None))?;
        let sender = Sender {
            settings: &self.settings,
            accounts: &self.accounts,
        };
        let Some(channel_id) = claim.channel_id else {
            return sender.bus(&n).await.map(|()| None);
        };
        send_to_channel(
            &self.pool,
            &self.accounts,
            &sender,
            channel_id,
            &n,
            claim.id,
        )
        .await
    }
}

/// Unseal a channel and send one notification to it.
pub async fn send_to_channel(
    pool: &PgPool,
    accounts: &Accounts,
    sender: &Sender<'_>,
    channel_id: uuid::Uuid,
    n: &AlertNotification,
    delivery_id: i64,
) -> Result<Option<u16>, SendError> {
    let sealed = store::channel_sealed(pool, channel_id)
        .await
        .map_err(|e| SendError::Retry(e.to_string(), None))?
        .ok_or_else(|| SendError::Permanent("the channel was deleted".into(), None))?;
    let plain = accounts
        .unseal(&sealed.secret_enc, &seal_context(&sealed.org_id, sealed.id))
        .map_err(|e| SendError::Permanent(e.to_string(), None))?;
    let secret: ChannelSecret = serde_json::from_slice(&plain)
        .map_err(|e| SendError::Permanent(format!("sealed channel: {e}"), None))?;
    sender.send(&sealed.kind, &secret, n, delivery_id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped_at_an_hour() {
        let base = Duration::from_secs(5);
        let first = backoff(base, 1);
        assert!(first >= base && first <= base.mul_f64(1.1));
        let fourth = backoff(base, 4);
        assert!(fourth >= Duration::from_secs(40) && fourth <= Duration::from_secs(44));
        let late = backoff(base, 30);
        assert!(late >= Duration::from_secs(3600) && late <= Duration::from_secs(3960));
    }
}
