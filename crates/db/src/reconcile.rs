//! Offline detection. Deadlines are stored with each heartbeat
//! (`stale_after` = 2 x interval, `offline_after` = k x interval + grace, from
//! the controller's receive time), so one indexed scan finds the nodes due.
//! Several controllers may run this at once: rows are claimed with SKIP LOCKED.

use sqlx::PgPool;

use crate::DbError;
use crate::outbox::{StatusTransition, transitions_record};

/// Most nodes claimed per transaction.
pub const BATCH: i64 = 5000;

/// Move overdue nodes to stale or offline; returns the committed transitions.
pub async fn nodes_mark_overdue(pool: &PgPool) -> Result<Vec<StatusTransition>, DbError> {
    let mut tx = pool.begin().await?;
    let rows: Vec<(String, String, String, String, String, i32)> = sqlx::query_as(
        "WITH due AS (
             SELECT id FROM nodes
             WHERE (status IN ('online','degraded','stale') AND offline_after <= now())
                OR (status IN ('online','degraded') AND stale_after <= now())
             ORDER BY id
             LIMIT $1
             FOR UPDATE SKIP LOCKED
         )
         UPDATE nodes n
         SET status = CASE WHEN n.offline_after <= now() THEN 'offline' ELSE 'stale' END,
             status_changed_at = now()
         FROM due, nodes old
         WHERE n.id = due.id AND old.id = n.id
         RETURNING n.id, n.org_id, n.tenant_id, old.status, n.status, n.interval_secs",
    )
    .bind(BATCH)
    .fetch_all(&mut *tx)
    .await?;
    let transitions: Vec<StatusTransition> = rows
        .into_iter()
        .filter(|r| r.3 != r.4)
        .map(
            |(node_id, org_id, tenant_id, from, to, interval)| StatusTransition {
                reason: if to == "offline" {
                    format!("no heartbeat within the offline deadline (interval {interval}s)")
                } else {
                    format!("heartbeat late (more than 2 x {interval}s)")
                },
                node_id,
                org_id,
                tenant_id,
                from,
                to,
            },
        )
        .collect();
    transitions_record(&mut tx, &transitions).await?;
    tx.commit().await?;
    Ok(transitions)
}
