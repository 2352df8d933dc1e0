//! The bulk worker: leases pending jobs (and running ones whose lease
//! lapsed: their controller stopped), and runs each page by page. A page is
//! one transaction that checks the lease, expands the next keyset page of a
//! filter selection, acts on the next pending nodes and records their
//! outcomes; so a job resumes after a restart exactly where its last
//! committed page ended, and no node is acted on twice.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use ritma_db::audit::AuditEntry;
use ritma_db::bulk_jobs::{self as store, BulkJobRecord};
use ritma_db::nodes::{self, NodeFilter};
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::actions::{self, JobAction, PageEffects};
use super::progress::Progress;
use super::selection::Selection;
use super::settings::BulkSettings;
use crate::accounts::Accounts;
use crate::error::ApiError;
use crate::trust::ControlKeys;

/// Jobs run at once by one controller (each a page at a time).
const CONCURRENCY: usize = 4;

pub struct BulkWorker {
    pub pool: PgPool,
    pub accounts: Arc<Accounts>,
    pub control: Arc<ControlKeys>,
    pub settings: BulkSettings,
    /// Woken when a job is created.
    pub wake: Arc<Notify>,
}

enum Step {
    More(BulkJobRecord),
    Finished(BulkJobRecord),
    LeaseLost,
}

impl BulkWorker {
    fn lease_secs(&self) -> f64 {
        self.settings.lease_secs.max(1) as f64
    }

    pub async fn run(self, shutdown: CancellationToken) {
        // Jobs run side by side; a free slot takes the next job at once, so
        // one long job does not hold back another org's.
        let mut running = futures::stream::FuturesUnordered::new();
        loop {
            let free = CONCURRENCY.saturating_sub(running.len());
            if free > 0 {
                match store::bulk_jobs_claim(&self.pool, free as i64, self.lease_secs()).await {
                    Ok(claimed) => {
                        for job in claimed {
                            running.push(self.drive(job, &shutdown));
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "taking bulk jobs failed; retrying"),
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => {
                    // Each job gives its lease back and stops.
                    while running.next().await.is_some() {}
                    return;
                }
                Some(()) = running.next(), if !running.is_empty() => {}
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    /// Run one leased job to its end (or until shutdown or a lost lease).
    async fn drive(&self, job: BulkJobRecord, shutdown: &CancellationToken) {
        let Some(token) = job.lease_token else {
            return;
        };
        let mut progress = Progress::new(self.accounts.clone());
        let prepared = JobAction::from_stored(&job)
            .and_then(|a| Selection::stored_filter(&job.selection).map(|f| (a, f)));
        let (action, filter) = match prepared {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(job = %job.id, error = %e, "bulk job cannot run; failed");
                if let Ok(done) = self.finish(&job, "failed", Some(&e.to_string())).await {
                    progress.update(&done).await;
                }
                return;
            }
        };
        tracing::info!(job = %job.id, org = %job.org_id, action = %job.action, "bulk job running");
        progress.update(&job).await;
        let mut failures = 0u32;
        loop {
            if shutdown.is_cancelled() {
                // Resumed at once by the next controller (no lease to wait out).
                let _ = store::bulk_job_release(&self.pool, job.id, token).await;
                return;
            }
            match self.page(&job, token, &action, filter.as_ref()).await {
                Ok(Step::More(now)) => {
                    failures = 0;
                    progress.update(&now).await;
                    if self.settings.page_pause_ms > 0 {
                        tokio::time::sleep(Duration::from_millis(self.settings.page_pause_ms))
                            .await;
                    }
                }
                Ok(Step::Finished(done)) => {
                    tracing::info!(job = %done.id, succeeded = done.succeeded, failed = done.failed,
                        skipped = done.skipped, "bulk job done");
                    progress.update(&done).await;
                    return;
                }
                Ok(Step::LeaseLost) => {
                    tracing::warn!(job = %job.id, "bulk job lease lost; another worker has it");
                    return;
                }
                Err(e) => {
                    // Nothing of the page was committed; try it again. The
                    // lease lapses meanwhile if this goes on, and whoever
                    // claims the job next resumes it.
                    failures += 1;
                    tracing::warn!(job = %job.id, error = %e, failures, "bulk job page failed; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => {}
                        _ = tokio::time::sleep(crate::tasks::backoff(failures)) => {}
                    }
                }
            }
        }
    }

    async fn page(
        &self,
        job: &BulkJobRecord,
        token: Uuid,
        action: &JobAction,
        filter: Option<&NodeFilter>,
    ) -> Result<Step, ApiError> {
        let size = self.settings.page_size.clamp(1, 5_000);
        let mut tx = self.pool.begin().await.map_err(ritma_db::DbError::from)?;
        let Some(now) =
            store::bulk_job_lock_leased(&mut tx, job.id, token, self.lease_secs()).await?
        else {
            return Ok(Step::LeaseLost);
        };
        let mut expanded = now.expanded;
        if !expanded {
            let ids = match filter {
                Some(f) => {
                    nodes::node_ids_matching(
                        &mut tx,
                        &now.org_id,
                        f,
                        now.expand_cursor.as_deref(),
                        size,
                    )
                    .await?
                }
                None => vec![],
            };
            expanded = (ids.len() as i64) < size;
            store::bulk_job_expand(&mut tx, job.id, &ids, expanded).await?;
        }
        let pending = store::bulk_job_items_pending(&mut tx, job.id, size).await?;
        if pending.is_empty() {
            if !expanded {
                tx.commit().await.map_err(ritma_db::DbError::from)?;
                return Ok(Step::More(now));
            }
            let done = self.finish_in(&mut tx, &now, "done", None).await?;
            tx.commit().await.map_err(ritma_db::DbError::from)?;
            if action == &JobAction::Decommission {
                // Once more at the end: a push lost to a crash after an
                // earlier page's commit is made good here.
                self.push_revocations(&done.org_id).await;
            }
            return Ok(Step::Finished(done));
        }
        let (outcomes, effects) = actions::apply(&mut tx, action, &now, &pending).await?;
        store::bulk_job_items_record(&mut tx, job.id, &outcomes).await?;
        tx.commit().await.map_err(ritma_db::DbError::from)?;
        self.after_commit(&now.org_id, effects).await;
        let now = store::bulk_job_get(&self.pool, &job.org_id, job.id)
            .await?
            .ok_or_else(|| ApiError::Internal(format!("bulk job {} vanished", job.id)))?;
        Ok(Step::More(now))
    }

    async fn after_commit(&self, org: &str, effects: PageEffects) {
        crate::commands::policy_changed_send(
            &self.accounts,
            &self.control,
            org,
            &effects.reassigned,
        )
        .await;
        if effects.revoked {
            self.push_revocations(org).await;
        }
    }

    /// Push the org's account JWT (with the page's revocations) to the
    /// broker, which cuts the decommissioned nodes' connections.
    async fn push_revocations(&self, org: &str) {
        let pushed = async {
            let record = ritma_db::orgs::org_get(&self.pool, org)
                .await?
                .ok_or_else(|| ApiError::NotFound(format!("org {org}")))?;
            self.accounts.push_org_account(&record).await
        };
        if let Err(e) = pushed.await {
            // The revocations are stored; the accounts reconciler pushes them.
            tracing::warn!(org, error = %e, "revocations of a bulk decommission not pushed yet");
        }
    }

    async fn finish(
        &self,
        job: &BulkJobRecord,
        state: &str,
        error: Option<&str>,
    ) -> Result<BulkJobRecord, ApiError> {
        let mut tx = self.pool.begin().await.map_err(ritma_db::DbError::from)?;
        let done = self.finish_in(&mut tx, job, state, error).await?;
        tx.commit().await.map_err(ritma_db::DbError::from)?;
        Ok(done)
    }

    /// End the job and audit how it ended, in the caller's transaction.
    async fn finish_in(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
        job: &BulkJobRecord,
        state: &str,
        error: Option<&str>,
    ) -> Result<BulkJobRecord, ApiError> {
        let done = store::bulk_job_finish(tx, job.id, state, error).await?;
        crate::audit::record(
            tx,
            AuditEntry {
                org_id: Some(done.org_id.clone()),
                actor: done.created_by.clone(),
                action: "bulk_job.finish".into(),
                target: done.id.to_string(),
                source: Some("bulk-worker".into()),
                before: None,
                after: Some(serde_json::json!({
                    "action": done.action, "state": done.state, "total": done.total,
                    "succeeded": done.succeeded, "failed": done.failed,
                    "skipped": done.skipped, "error": done.error,
                })),
            },
        )
        .await?;
        Ok(done)
    }
}
