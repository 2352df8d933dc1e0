//! The fleet reconciler: the node counts' fold, policy drift, key expiry,
//! the `ritma_cloud` key sync and telemetry retention. Each pass is idempotent; several
//! controllers may run it at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ritma_db::keys::{self, KeyUpsert};
use ritma_db::telemetry::{self, Retention};
use sqlx::PgPool;
use tokio::sync::Notify;

use super::periodic::Pass;
use crate::fleet::Fleet;

const RETENTION_EVERY: Duration = Duration::from_secs(3600);

pub struct FleetReconciler {
    pub pool: PgPool,
    pub fleet: Arc<Fleet>,
    pub retention: Retention,
    pub wake: Arc<Notify>,
    pub last_sync: Option<Instant>,
    pub last_prune: Option<Instant>,
}

impl Pass for FleetReconciler {
    async fn pass(&mut self) {
        if let Err(e) = ritma_db::nodes::node_counts_fold(&self.pool).await {
            tracing::warn!(error = %e, "folding the node counts failed; retrying");
        }
        self.drift().await;
        self.expire_keys().await;
        if self.fleet.cloud.is_some()
            && self
                .last_sync
                .is_none_or(|t| t.elapsed() >= self.fleet.cloud_sync_every)
        {
            self.last_sync = Some(Instant::now());
            self.cloud_sync().await;
        }
        if self
            .last_prune
            .is_none_or(|t| t.elapsed() >= RETENTION_EVERY)
        {
            self.last_prune = Some(Instant::now());
            self.prune().await;
        }
    }
}

impl FleetReconciler {
    async fn prune(&self) {
        match telemetry::telemetry_prune(&self.pool, self.retention).await {
            Ok(n) if n > 0 => tracing::info!(rows = n, "telemetry past retention deleted"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "telemetry retention failed"),
        }
        match telemetry::history_prune(&self.pool, self.retention).await {
            Ok(n) if n > 0 => tracing::info!(
                rows = n,
                "dead letters, status history and ingest counters past retention deleted"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "history retention failed"),
        }
    }

    async fn drift(&self) {
        match ritma_db::policies::nodes_mark_drift(&self.pool, self.fleet.drift_grace_secs).await {
            Ok(changes) if !changes.is_empty() => {
                tracing::info!(count = changes.len(), "policy drift changes");
                self.wake.notify_one();
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "drift reconciler failed; retrying"),
        }
    }

    async fn warnings_sync(&self, org: &str) {
        let result = async {
            let mut tx = self.pool.begin().await?;
            let changes = keys::key_warnings_sync(&mut tx, org).await?;
            tx.commit().await?;
            Ok::<_, ritma_db::DbError>(changes.len())
        }
        .await;
        match result {
            Ok(n) if n > 0 => self.wake.notify_one(),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, org, "key warning sync failed"),
        }
    }

    async fn expire_keys(&self) {
        match keys::keys_expire(&self.pool).await {
            Ok(orgs) => {
                for org in orgs {
                    tracing::info!(org, "signing keys expired");
                    self.warnings_sync(&org).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "key expiry failed"),
        }
    }

    /// Pull every org's keys from the registry; keys it lists replace ours.
    async fn cloud_sync(&self) {
        let Some(cloud) = &self.fleet.cloud else {
            return;
        };
        let orgs = match ritma_db::orgs::org_list(&self.pool).await {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(error = %e, "key sync: orgs unreadable");
                return;
            }
        };
        let mut error = None;
        for org in orgs {
            let listed = match cloud.org_keys(&org.id).await {
                Ok(k) => k,
                Err(e) => {
                    tracing::warn!(error = %e, org = %org.id, "ritma_cloud key sync failed");
                    error = Some(e.to_string());
                    continue;
                }
            };
            if let Err(e) = self.cloud_keys_store(&org.id, &listed).await {
                error = Some(e.to_string());
            }
            self.warnings_sync(&org.id).await;
        }
        let mut status = self.fleet.cloud_status.lock().await;
        status.last_sync_at = Some(chrono::Utc::now());
        status.error = error;
    }

    async fn cloud_keys_store(
        &self,
        org: &str,
        listed: &[crate::upstream::ritma_cloud::CloudKey],
    ) -> Result<(), ritma_db::DbError> {
        let mut tx = self.pool.begin().await?;
        for k in listed {
            if let Err(e) = ritma_protocol::keys::key_id_check(&k.key_id) {
                tracing::warn!(org, error = %e, "ritma_cloud key with a refused id skipped");
                continue;
            }
            if ritma_protocol::KeyStatus::parse(&k.status).is_none() {
                tracing::warn!(key = %k.key_id, status = %k.status, "ritma_cloud key with an unknown status skipped");
                continue;
            }
            keys::key_upsert(
                &mut tx,
                &KeyUpsert {
                    key_id: &k.key_id,
                    org_id: org,
                    label: &k.label,
                    status: &k.status,
                    source: "ritma_cloud",
                    rotated_at: k.rotated_at,
                    rotate_by: k.rotate_by,
                    expires_at: k.expires_at,
                    updated_by: "ritma_cloud",
                },
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
