//! Offline detection. Deadlines are stored with each heartbeat in the
//! node's liveness row (`stale_after` = 2 x interval, `offline_after` = k x
//! interval + grace, from the controller's receive time), so one indexed
//! scan finds the nodes due.
//! Several controllers may run this at once: rows are claimed with SKIP LOCKED.
//!
//! A deadline is judged against the ingest's watermark as well as the clock:
//! only deadlines before the broker time of the oldest message the ingest
//! has not committed are due. A node's heartbeat sent before its deadline
//! may still be waiting in the stream behind a backlog; marking it offline
//! then would be the ingest's delay, not the node's.
//!
//! Offline deadlines are claimed before stale ones, most overdue first within
//! each half of the fleet (the partial deadline indexes give that order
//! without a sort): when a whole fleet falls due at once, the offline
//! deadline is the one that is promised, and a node whose stale mark is
//! still pending goes straight to offline (one transition instead of two).

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, Transaction};

use crate::DbError;
use crate::flapping::{FlapPolicy, transitions_gate};
use crate::outbox::{StatusTransition, transitions_record};

/// Most nodes claimed per transaction.
pub const BATCH: i64 = 5000;

/// A half of the fleet, by a hash of the node id: the two halves are claimed
/// side by side, each on its own connection, without skipping over each
/// other's locked rows. The deadline indexes lead with the half
/// (`hashtext(node_id) & 1`), so each claim is one ordered range scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Half {
    Even = 0,
    Odd = 1,
}

impl Half {
    pub const BOTH: [Half; 2] = [Half::Even, Half::Odd];
}

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
    half: Half,
) -> Result<Vec<Claimed>, DbError> {
    // First the node rows are locked (skipping those an ingest batch holds):
    // a heartbeat's writer holds that lock while it moves the liveness row.
    // The second statement reads the liveness rows with a new snapshot, so a
    // heartbeat committed before the lock was taken is seen and its node
    // left alone. Every claimed row changes liveness, so its flip time is
    // set here, in the same row version: the flapping gate then leaves these
    // rows alone (a second update of each row, with every index of `nodes`,
    // made offline marking at 100,000 nodes fall seconds behind). The status
    // before the change is the one read under the lock, which nothing else
    // can move before the update (a self-join of `nodes` for it hashed the
    // whole table on every batch: 45 of 300 ms at 100,000 nodes).
    let (lock, apply) = match deadline {
        Deadline::Offline => (
            "SELECT n.id, n.status FROM node_liveness l JOIN nodes n ON n.id = l.node_id
             WHERE (hashtext(l.node_id) & 1) = $3 AND l.offline_after <= LEAST(now(), $2)
             ORDER BY l.offline_after
             LIMIT $1
             FOR UPDATE OF n SKIP LOCKED",
            // Deadlines of nodes no longer live are cleared too, whatever
            // left them (they can no longer fall due).
            "WITH due AS (
                 UPDATE node_liveness l SET offline_after = NULL, stale_after = NULL
                 FROM UNNEST($1::text[], $3::text[]) AS c(id, status)
                 WHERE l.node_id = c.id AND l.offline_after <= LEAST(now(), $2)
                 RETURNING l.node_id, c.status AS old_status
             )
             UPDATE nodes n SET status = 'offline', status_changed_at = now(), last_flip_at = now()
             FROM due
             WHERE n.id = due.node_id AND n.status IN ('online','degraded','stale')
             RETURNING n.id, n.org_id, n.tenant_id, due.old_status, n.status, n.interval_secs",
        ),
        Deadline::Stale => (
            "SELECT n.id, n.status FROM node_liveness l JOIN nodes n ON n.id = l.node_id
             WHERE (hashtext(l.node_id) & 1) = $3 AND l.stale_after <= LEAST(now(), $2)
             ORDER BY l.stale_after
             LIMIT $1
             FOR UPDATE OF n SKIP LOCKED",
            // A node past its offline deadline as well goes straight there.
            "WITH due AS (
                 UPDATE node_liveness l SET stale_after = NULL,
                     offline_after = CASE WHEN l.offline_after <= LEAST(now(), $2)
                                          THEN NULL ELSE l.offline_after END
                 FROM UNNEST($1::text[], $3::text[]) AS c(id, status)
                 WHERE l.node_id = c.id AND l.stale_after <= LEAST(now(), $2)
                 RETURNING l.node_id, l.offline_after IS NULL AS gone, c.status AS old_status
             )
             UPDATE nodes n
             SET status = CASE WHEN due.gone THEN 'offline' ELSE 'stale' END,
                 status_changed_at = now(), last_flip_at = now()
             FROM due
             WHERE n.id = due.node_id AND n.status IN ('online','degraded')
             RETURNING n.id, n.org_id, n.tenant_id, due.old_status, n.status, n.interval_secs",
        ),
    };
    let locked: Vec<(String, String)> = sqlx::query_as(lock)
        .bind(limit)
        .bind(watermark)
        .bind(half as i32)
        .fetch_all(tx.as_mut())
        .await?;
    if locked.is_empty() {
        return Ok(vec![]);
    }
    let (ids, statuses): (Vec<String>, Vec<String>) = locked.into_iter().unzip();
    Ok(sqlx::query_as(apply)
        .bind(&ids)
        .bind(watermark)
        .bind(&statuses)
        .fetch_all(tx.as_mut())
        .await?)
}

/// Move nodes of `half` whose deadline passed before `watermark` (and now)
/// to offline or stale (at most [`BATCH`] per call); returns the committed
/// transitions.
pub async fn nodes_mark_overdue(
    pool: &PgPool,
    watermark: DateTime<Utc>,
    flapping: FlapPolicy,
    half: Half,
) -> Result<Vec<StatusTransition>, DbError> {
    let mut tx = pool.begin().await?;
    let mut rows = overdue_claim(&mut tx, Deadline::Offline, BATCH, watermark, half).await?;
    let left = BATCH - rows.len() as i64;
    if left > 0 {
        rows.extend(overdue_claim(&mut tx, Deadline::Stale, left, watermark, half).await?);
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
