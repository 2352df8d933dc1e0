//! Job progress on `ritma.<org>.jobs`: at most one message per job every
//! [`MIN_INTERVAL`] while it runs, and always its final state. Best effort:
//! the job's row is the record (the API and the console's next load read
//! it); a lost message only delays what a browser shows.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ritma_db::bulk_jobs::BulkJobRecord;
use ritma_protocol::jobs::{BulkAction, BulkJobProgress, BulkJobState};
use ritma_protocol::{OrgId, SCHEMA_VERSION, subjects};

use crate::accounts::Accounts;

pub const MIN_INTERVAL: Duration = Duration::from_millis(250);

/// The message for a job's row (None: a row this version cannot describe).
pub fn message(job: &BulkJobRecord) -> Option<BulkJobProgress> {
    let count = |n: i32| u64::try_from(n).unwrap_or(0);
    Some(BulkJobProgress {
        v: SCHEMA_VERSION,
        job_id: job.id,
        org_id: OrgId::new(job.org_id.clone()).ok()?,
        action: BulkAction::parse(&job.action)?,
        state: BulkJobState::parse(&job.state)?,
        total: count(job.total),
        succeeded: count(job.succeeded),
        failed: count(job.failed),
        skipped: count(job.skipped),
        at: chrono::Utc::now(),
    })
}

/// One job's publisher, throttled.
pub struct Progress {
    accounts: Arc<Accounts>,
    last: Option<Instant>,
}

impl Progress {
    pub fn new(accounts: Arc<Accounts>) -> Self {
        Self {
            accounts,
            last: None,
        }
    }

    /// Publish `job` unless one went out less than [`MIN_INTERVAL`] ago
    /// (a final state always goes out).
    pub async fn update(&mut self, job: &BulkJobRecord) {
        let Some(msg) = message(job) else {
            return;
        };
        let due = self.last.is_none_or(|at| at.elapsed() >= MIN_INTERVAL);
        if !due && !msg.state.is_final() {
            return;
        }
        self.last = Some(Instant::now());
        let sent = async {
            let client = self.accounts.org_client(msg.org_id.as_str()).await?;
            let body = serde_json::to_vec(&msg)
                .map_err(|e| crate::error::ApiError::Internal(e.to_string()))?;
            client
                .publish(subjects::jobs(&msg.org_id), body.into())
                .await
                .map_err(|e| crate::error::ApiError::Bus(e.to_string()))?;
            if msg.state.is_final() {
                client
                    .flush()
                    .await
                    .map_err(|e| crate::error::ApiError::Bus(e.to_string()))?;
            }
            Ok::<_, crate::error::ApiError>(())
        };
        if let Err(e) = sent.await {
            tracing::debug!(job = %job.id, error = %e, "bulk job progress not published");
        }
    }
}
