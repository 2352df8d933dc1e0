//! Publishes committed state changes from the outbox to each org's
//! `ritma.<org>.<tenant>.state.node.<node>` subject, then deletes them.

use std::sync::Arc;
use std::time::Duration;

use ritma_db::outbox::{OutboxRow, outbox_delete, outbox_lock_batch};
use ritma_protocol::{
    NodeId, NodeSubject, OrgId, SCHEMA_VERSION, StateChange, StateChangeKind, TenantId,
};
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::accounts::Accounts;

const BATCH: i64 = 500;

/// Why a publishing round stopped; the rows stay in the outbox and the next
/// round takes them again.
#[derive(Debug, thiserror::Error)]
enum PublishError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database: {0}")]
    Store(#[from] ritma_db::DbError),
    #[error("org account: {0}")]
    Account(#[from] crate::error::ApiError),
    #[error("encoding: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("bus: {0}")]
    Bus(String),
}

fn bus(e: impl std::fmt::Display) -> PublishError {
    PublishError::Bus(e.to_string())
}
/// Fallback poll, should a notification be lost (the listener reconnecting).
const POLL: Duration = Duration::from_millis(250);

pub fn state_change(row: &OutboxRow) -> Option<(String, StateChange)> {
    let scope = NodeSubject::new(
        OrgId::new(row.org_id.clone()).ok()?,
        TenantId::new(row.tenant_id.clone()).ok()?,
        NodeId::new(row.node_id.clone()).ok()?,
    );
    let change: StateChangeKind = serde_json::from_value(row.payload.clone()).ok()?;
    Some((
        scope.state(),
        StateChange {
            v: SCHEMA_VERSION,
            event_id: row.id,
            org_id: scope.org.clone(),
            tenant_id: scope.tenant.clone(),
            node_id: scope.node.clone(),
            at: row.created_at,
            change,
        },
    ))
}

async fn publish_once(
    pool: &PgPool,
    accounts: &Accounts,
    alerts_wake: &Notify,
) -> Result<usize, PublishError> {
    let mut tx = pool.begin().await?;
    let rows = outbox_lock_batch(&mut tx, BATCH).await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let mut touched = std::collections::HashMap::new();
    for row in &rows {
        let Some((subject, change)) = state_change(row) else {
            tracing::error!(id = row.id, "unreadable outbox row dropped");
            continue;
        };
        let client = accounts.org_client(&row.org_id).await?;
        let body = serde_json::to_vec(&change)?;
        client.publish(subject, body.into()).await.map_err(bus)?;
        touched.insert(row.org_id.clone(), client);
    }
    for client in touched.values() {
        client.flush().await.map_err(bus)?;
    }
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let for_alerts = outbox_delete(&mut tx, &ids).await?;
    tx.commit().await?;
    if for_alerts > 0 {
        alerts_wake.notify_one();
    }
    Ok(rows.len())
}

/// Publish committed audit entries on their org's audit subject.
async fn publish_audit_once(pool: &PgPool, accounts: &Accounts) -> Result<usize, PublishError> {
    use ritma_db::audit::{audit_outbox_delete, audit_outbox_lock, hex};
    let mut tx = pool.begin().await?;
    let rows = audit_outbox_lock(&mut tx, BATCH).await?;
    if rows.is_empty() {
        return Ok(0);
    }
    for r in &rows {
        let Some(org) = r.org_id.as_deref().and_then(|o| OrgId::new(o).ok()) else {
            continue;
        };
        let event = ritma_protocol::AuditEvent {
            v: SCHEMA_VERSION,
            id: r.id,
            org_id: Some(org.clone()),
            actor: r.actor.clone(),
            action: r.action.clone(),
            target: r.target.clone(),
            source: r.source.clone(),
            before: r.before.clone(),
            after: r.after.clone(),
            at: r.at,
            prev_hash: hex(&r.prev_hash),
            hash: hex(&r.hash),
        };
        let client = accounts.org_client(org.as_str()).await?;
        let body = serde_json::to_vec(&event)?;
        client
            .publish(ritma_protocol::subjects::audit(&org), body.into())
            .await
            .map_err(bus)?;
        client.flush().await.map_err(bus)?;
    }
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    audit_outbox_delete(&mut tx, &ids).await?;
    tx.commit().await?;
    Ok(rows.len())
}

pub async fn run(
    pool: PgPool,
    accounts: Arc<Accounts>,
    wake: Arc<Notify>,
    alerts_wake: Arc<Notify>,
    shutdown: CancellationToken,
) {
    loop {
        let audit = publish_audit_once(&pool, &accounts).await;
        if let Err(e) = &audit {
            tracing::warn!(error = %e, "publishing audit entries failed; retrying");
        }
        match publish_once(&pool, &accounts, &alerts_wake).await {
            Ok(n) if n as i64 == BATCH || audit.as_ref().is_ok_and(|a| *a as i64 == BATCH) => {
                continue;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "publishing state changes failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

/// Wake the publisher whenever any controller commits outbox rows: the
/// writing transaction notifies `OUTBOX_CHANNEL`, delivered at commit. (API
/// changes — policy, keys, enrollment — and other controllers' writes waited
/// for the 250 ms poll before: commit → browser row took ~250 ms.)
pub async fn listen(pool: PgPool, wake: Arc<Notify>, shutdown: CancellationToken) {
    loop {
        let error = tokio::select! {
            _ = shutdown.cancelled() => return,
            e = listen_until_error(&pool, &wake) => e,
        };
        tracing::warn!(error = %error, "outbox listener failed; polling until it reconnects");
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

async fn listen_until_error(pool: &PgPool, wake: &Notify) -> sqlx::Error {
    let mut listener = match sqlx::postgres::PgListener::connect_with(pool).await {
        Ok(l) => l,
        Err(e) => return e,
    };
    if let Err(e) = listener.listen(ritma_db::outbox::OUTBOX_CHANNEL).await {
        return e;
    }
    loop {
        // Rows committed while not listening are caught by this first wake.
        wake.notify_one();
        // `None`: the connection dropped and is re-established on the next
        // call; notifications sent meanwhile are lost, hence the wake above.
        if let Err(e) = listener.try_recv().await {
            return e;
        }
    }
}
