//! Writing the audit trail from API handlers.

use ritma_db::audit::{AuditEntry, audit_append};
use serde_json::Value;
use sqlx::{Postgres, Transaction};

use crate::auth::Principal;
use crate::error::ApiError;

/// What happened, by whom, to what.
pub fn entry(
    principal: &Principal,
    org: Option<&str>,
    action: &str,
    target: impl Into<String>,
) -> AuditEntry {
    AuditEntry {
        org_id: org.map(str::to_owned),
        actor: principal.actor(),
        action: action.to_owned(),
        target: target.into(),
        source: principal.source.clone(),
        before: None,
        after: None,
    }
}

pub trait WithStates {
    fn states(self, before: Option<Value>, after: Option<Value>) -> Self;
}

impl WithStates for AuditEntry {
    fn states(mut self, before: Option<Value>, after: Option<Value>) -> Self {
        self.before = before;
        self.after = after;
        self
    }
}

/// Record inside the caller's transaction, so the entry exists exactly when the change does.
pub async fn record(tx: &mut Transaction<'_, Postgres>, entry: AuditEntry) -> Result<(), ApiError> {
    audit_append(tx, &entry).await?;
    Ok(())
}
