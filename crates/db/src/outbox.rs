//! Status transitions are written with their cause, in the same transaction:
//! a history row, and an outbox row that the publisher sends to the bus after
//! commit and then deletes (at least once; subscribers dedupe by event id).

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, Transaction};

use crate::DbError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusTransition {
    pub node_id: String,
    pub org_id: String,
    pub tenant_id: String,
    pub from: String,
    pub to: String,
    pub reason: String,
}

impl StatusTransition {
    /// A transition of a node the caller holds (an operator's or the
    /// enrollment's change; the ingest and reconciler build theirs from rows).
    pub fn of(node: &crate::nodes::NodeRecord, from: &str, to: &str, reason: String) -> Self {
        Self {
            node_id: node.id.clone(),
            org_id: node.org_id.clone(),
            tenant_id: node.tenant_id.clone(),
            from: from.into(),
            to: to.into(),
            reason,
        }
    }
}

/// Any other state change of a node (policy, key warning): an outbox row
/// whose payload is a `StateChangeKind` in JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeChange {
    pub org_id: String,
    pub tenant_id: String,
    pub node_id: String,
    pub payload: serde_json::Value,
}

pub async fn changes_record(
    tx: &mut Transaction<'_, Postgres>,
    changes: &[NodeChange],
) -> Result<(), DbError> {
    if changes.is_empty() {
        return Ok(());
    }
    let col = |f: fn(&NodeChange) -> &str| -> Vec<String> {
        changes.iter().map(|c| f(c).to_owned()).collect()
    };
    sqlx::query(
        "INSERT INTO state_outbox (org_id, tenant_id, node_id, payload)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::jsonb[])",
    )
    .bind(col(|c| &c.org_id))
    .bind(col(|c| &c.tenant_id))
    .bind(col(|c| &c.node_id))
    .bind(
        changes
            .iter()
            .map(|c| c.payload.clone())
            .collect::<Vec<_>>(),
    )
    .execute(tx.as_mut())
    .await?;
    outbox_notify(tx).await
}

/// The channel on which committed outbox rows are announced, so that every
/// controller's publisher wakes at once (not at its next poll).
pub const OUTBOX_CHANNEL: &str = "ritma_outbox";

/// Announce new outbox rows; PostgreSQL delivers it when `tx` commits.
pub async fn outbox_notify(tx: &mut Transaction<'_, Postgres>) -> Result<(), DbError> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(OUTBOX_CHANNEL)
        .execute(tx.as_mut())
        .await?;
    Ok(())
}

pub async fn transitions_record(
    tx: &mut Transaction<'_, Postgres>,
    transitions: &[StatusTransition],
) -> Result<(), DbError> {
    if transitions.is_empty() {
        return Ok(());
    }
    history_record(tx, transitions).await?;
    let changes: Vec<NodeChange> = transitions
        .iter()
        .map(|t| NodeChange {
            org_id: t.org_id.clone(),
            tenant_id: t.tenant_id.clone(),
            node_id: t.node_id.clone(),
            payload: serde_json::json!({
                "kind": "status", "from": t.from, "to": t.to, "reason": t.reason,
            }),
        })
        .collect();
    changes_record(tx, &changes).await
}

/// A node just enrolled: its first history row and an `enrolled` state change.
pub async fn enrollment_record(
    tx: &mut Transaction<'_, Postgres>,
    node: &crate::nodes::NodeRecord,
    reason: String,
) -> Result<(), DbError> {
    let unseen = "unseen";
    history_record(tx, &[StatusTransition::of(node, unseen, unseen, reason)]).await?;
    changes_record(
        tx,
        &[NodeChange {
            org_id: node.org_id.clone(),
            tenant_id: node.tenant_id.clone(),
            node_id: node.id.clone(),
            payload: serde_json::json!({ "kind": "enrolled", "hostname": node.hostname }),
        }],
    )
    .await
}

/// The status history rows of these transitions (no state change).
async fn history_record(
    tx: &mut Transaction<'_, Postgres>,
    transitions: &[StatusTransition],
) -> Result<(), DbError> {
    let col = |f: fn(&StatusTransition) -> &str| -> Vec<String> {
        transitions.iter().map(|t| f(t).to_owned()).collect()
    };
    let nodes = col(|t| &t.node_id);
    let (froms, tos, reasons) = (col(|t| &t.from), col(|t| &t.to), col(|t| &t.reason));
    sqlx::query(
        "INSERT INTO node_status_history (node_id, from_status, to_status, reason)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[])",
    )
    .bind(&nodes)
    .bind(&froms)
    .bind(&tos)
    .bind(&reasons)
    .execute(tx.as_mut())
    .await?;
    Ok(())
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OutboxRow {
    pub id: i64,
    pub org_id: String,
    pub tenant_id: String,
    pub node_id: String,
    pub payload: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

/// The two queues of state changes: the outbox (to publish on the bus),
/// then the alert evaluator's inbox. Their rows have the same shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateQueue {
    Outbox,
    AlertInbox,
}

impl StateQueue {
    fn table(self) -> &'static str {
        match self {
            Self::Outbox => "state_outbox",
            Self::AlertInbox => "alert_inbox",
        }
    }
}

/// Lock the oldest rows of `queue` (skipping rows another controller holds).
pub async fn state_queue_lock_batch(
    tx: &mut Transaction<'_, Postgres>,
    queue: StateQueue,
    limit: i64,
) -> Result<Vec<OutboxRow>, DbError> {
    let sql = format!(
        "SELECT id, org_id, tenant_id, node_id, payload, created_at FROM {}
         ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
        queue.table()
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(limit)
        .fetch_all(tx.as_mut())
        .await?)
}

/// Lock the oldest unpublished rows.
pub async fn outbox_lock_batch(
    tx: &mut Transaction<'_, Postgres>,
    limit: i64,
) -> Result<Vec<OutboxRow>, DbError> {
    state_queue_lock_batch(tx, StateQueue::Outbox, limit).await
}

/// Delete published rows; those of orgs with alert rules move to the alert
/// evaluator's inbox in the same statement. The number moved.
pub async fn outbox_delete(
    tx: &mut Transaction<'_, Postgres>,
    ids: &[i64],
) -> Result<u64, DbError> {
    Ok(sqlx::query(
        "WITH gone AS (DELETE FROM state_outbox WHERE id = ANY($1) RETURNING *)
         INSERT INTO alert_inbox (id, org_id, tenant_id, node_id, payload, created_at)
         SELECT g.id, g.org_id, g.tenant_id, g.node_id, g.payload, g.created_at FROM gone g
         WHERE EXISTS (SELECT 1 FROM alert_rules r WHERE r.org_id = g.org_id)
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(ids)
    .execute(tx.as_mut())
    .await?
    .rows_affected())
}

/// Rows waiting in each outbox.
#[derive(Debug, Clone, Copy, Default, sqlx::FromRow)]
pub struct OutboxBacklogs {
    pub state_changes: i64,
    pub audit: i64,
    pub alert_inbox: i64,
    /// Alert deliveries still pending (due or backing off).
    pub alert_deliveries: i64,
}

/// The rows waiting in each outbox (each is small while its publisher keeps up).
pub async fn outbox_backlogs(pool: &PgPool) -> Result<OutboxBacklogs, DbError> {
    Ok(sqlx::query_as(
        "SELECT (SELECT count(*) FROM state_outbox) AS state_changes,
                (SELECT count(*) FROM audit_outbox) AS audit,
                (SELECT count(*) FROM alert_inbox) AS alert_inbox,
                (SELECT count(*) FROM alert_deliveries WHERE state = 'pending') AS alert_deliveries",
    )
    .fetch_one(pool)
    .await?)
}
