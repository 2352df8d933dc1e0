//! Offline detection. Deadlines are stored with each heartbeat
//! (`stale_after` = 2 x interval, `offline_after` = k x interval + grace, from
//! the controller's receive time), so one indexed scan finds the nodes due.
//! Several controllers may run this at once: rows are claimed with SKIP LOCKED.
//!
//! A deadline is judged against the ingest's watermark as well as the clock:
//! only deadlines before the broker time of the oldest message the ingest
//! has not committed are due. A node's heartbeat sent before its deadline
//! may still be waiting in the stream behind a backlog; marking it offline
//! then would be the ingest's delay, not the node's.
//!
//! Offline deadlines are claimed before stale ones, most overdue first (the
//! partial deadline indexes give that order without a sort): when a whole
//! fleet falls due at once, the offline deadline is the one that is promised,
//! and a node whose stale mark is still pending goes straight to offline
//! (one transition instead of two).

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, Transaction};

use crate::DbError;
use crate::flapping::{FlapPolicy, transitions_gate};
use crate::outbox::{StatusTransition, transitions_record};

/// Most nodes claimed per transaction.
pub const BATCH: i64 = 5000;

#[derive(Clone, Copy)]
enum Deadline {
    Offline,
    Stale,
}

/// (id, org, tenant, old status, new status, interval)
type Claimed = (String, String, String, String, String, i32);

async fn overdue_claim(
    tx: &mut Transaction<'_, Postgres>,
    deadline: Deadline,
    limit: i64,
    watermark: DateTime<Utc>,
) -> Result<Vec<Claimed>, DbError> {
    // The CTE reads each row's status under its row lock, so it is the
    // status this transaction replaces. Every claimed row changes liveness,
    // so its flip time is set here, in the same row version: the flapping
    // gate then leaves these rows alone (a second update of each row, with
    // every index of `nodes`, made offline marking at 100,000 nodes fall
    // seconds behind its deadlines).
    let sql = match deadline {
        Deadline::Offline => {
            "WITH due AS (
                 SELECT id, status FROM nodes
                 WHERE status IN ('online','degraded','stale') AND offline_after <= LEAST(now(), $2)
                 ORDER BY offline_after
                 LIMIT $1
                 FOR UPDATE SKIP LOCKED
             )
             UPDATE nodes n SET status = 'offline', status_changed_at = now(), last_flip_at = now()
             FROM due WHERE n.id = due.id
             RETURNING n.id, n.org_id, n.tenant_id, due.status, n.status, n.interval_secs"
        }
        Deadline::Stale => {
            "WITH due AS (
                 SELECT id, status FROM nodes
                 WHERE status IN ('online','degraded') AND stale_after <= LEAST(now(), $2)
                 ORDER BY stale_after
                 LIMIT $1
                 FOR UPDATE SKIP LOCKED
             )
             UPDATE nodes n
             SET status = CASE WHEN n.offline_after <= LEAST(now(), $2) THEN 'offline' ELSE 'stale' END,
                 status_changed_at = now(), last_flip_at = now()
             FROM due WHERE n.id = due.id
             RETURNING n.id, n.org_id, n.tenant_id, due.status, n.status, n.interval_secs"
        }
    };
    Ok(sqlx::query_as(sql)
        .bind(limit)
        .bind(watermark)
        .fetch_all(tx.as_mut())
        .await?)
}

/// Move nodes whose deadline passed before `watermark` (and now) to offline
/// or stale (at most [`BATCH`] per call); returns the committed transitions.
pub async fn nodes_mark_overdue(
    pool: &PgPool,
    watermark: DateTime<Utc>,
    flapping: FlapPolicy,
) -> Result<Vec<StatusTransition>, DbError> {
    let mut tx = pool.begin().await?;
    let mut rows = overdue_claim(&mut tx, Deadline::Offline, BATCH, watermark).await?;
    let left = BATCH - rows.len() as i64;
    if left > 0 {
        rows.extend(overdue_claim(&mut tx, Deadline::Stale, left, watermark).await?);
    }
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
    let transitions = transitions_gate(&mut tx, transitions, flapping).await?;
    transitions_record(&mut tx, &transitions).await?;
    tx.commit().await?;
    Ok(transitions)
}
