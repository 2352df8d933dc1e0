//! Offline from the broker: nodes whose last bus connection the broker
//! reported closed (and that did not reconnect within the grace) are marked
//! offline with the reason, in one transaction with their transitions.
//!
//! A node is named only by its authenticated user key within its org's
//! account, never by anything the client chose. A heartbeat the broker
//! received after the disconnect wins: such a node reconnected (a credential
//! refresh overlapping its old connection, or a reconnect this controller did
//! not see) and is left as it is.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::DbError;
use crate::flapping::{FlapPolicy, transitions_gate};
use crate::outbox::{StatusTransition, transitions_record};

/// A node user whose last connection closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerDisconnect {
    /// The org account's public key.
    pub account: String,
    /// The user's public key (the node's `public_key`).
    pub user_key: String,
    /// When the broker closed the connection (its clock).
    pub at: DateTime<Utc>,
    pub reason: String,
}

/// A node a disconnect may mark: (user key, node id, org, tenant).
pub type LiveNode = (String, String, String, String);

/// The nodes among `gone` that a disconnect could still mark offline
/// (online, degraded or stale, named by their key in their org's account).
pub async fn nodes_of_disconnected(
    pool: &PgPool,
    gone: &[BrokerDisconnect],
) -> Result<Vec<LiveNode>, DbError> {
    Ok(sqlx::query_as(
        "SELECT n.public_key, n.id, n.org_id, n.tenant_id
         FROM UNNEST($1::text[], $2::text[]) AS g(account, user_key)
         JOIN orgs o ON o.nats_account_public_key = g.account
         JOIN nodes n ON n.public_key = g.user_key AND n.org_id = o.id
         WHERE n.status IN ('online','degraded','stale')",
    )
    .bind(gone.iter().map(|g| g.account.as_str()).collect::<Vec<_>>())
    .bind(gone.iter().map(|g| g.user_key.as_str()).collect::<Vec<_>>())
    .fetch_all(pool)
    .await?)
}

/// Mark the nodes of `gone` offline (those that are online, degraded or
/// stale, and sent no heartbeat after the disconnect); returns the committed
/// transitions. Entries that name no node (another account's user, an
/// integrator, the controller itself) change nothing.
pub async fn nodes_mark_disconnected(
    pool: &PgPool,
    gone: &[BrokerDisconnect],
    flapping: FlapPolicy,
) -> Result<Vec<StatusTransition>, DbError> {
    if gone.is_empty() {
        return Ok(vec![]);
    }
    let col = |f: fn(&BrokerDisconnect) -> &str| -> Vec<&str> { gone.iter().map(f).collect() };
    let mut tx = pool.begin().await?;
    // The first statement locks each node row (waiting for an ingest batch
    // that holds it); the second reads the liveness rows with a new
    // snapshot, so a heartbeat committed meanwhile is seen.
    let locked: Vec<(String, String, DateTime<Utc>)> = sqlx::query_as(
        "WITH gone AS (
             SELECT DISTINCT ON (user_key) *
             FROM UNNEST($1::text[], $2::text[], $3::timestamptz[], $4::text[])
                  AS g(account, user_key, at, reason)
             ORDER BY user_key, at DESC
         )
         SELECT n.id, g.reason, g.at
         FROM gone g
         JOIN orgs o ON o.nats_account_public_key = g.account
         JOIN nodes n ON n.public_key = g.user_key AND n.org_id = o.id
         WHERE n.status IN ('online','degraded','stale')
         ORDER BY n.id
         FOR UPDATE OF n",
    )
    .bind(col(|g| &g.account))
    .bind(col(|g| &g.user_key))
    .bind(gone.iter().map(|g| g.at).collect::<Vec<_>>())
    .bind(col(|g| &g.reason))
    .fetch_all(tx.as_mut())
    .await?;
    let rows: Vec<(String, String, String, String, String, String)> = sqlx::query_as(
        "WITH due AS (
             SELECT c.id, c.reason
             FROM UNNEST($1::text[], $2::text[], $3::timestamptz[]) AS c(id, reason, at)
             JOIN node_liveness l ON l.node_id = c.id
             WHERE l.last_seen_at IS NULL OR l.last_seen_at <= c.at
         ), cleared AS (
             UPDATE node_liveness l SET offline_after = NULL, stale_after = NULL
             FROM due WHERE l.node_id = due.id
         )
         UPDATE nodes n SET status = 'offline', status_changed_at = now()
         FROM due, nodes old
         WHERE n.id = due.id AND old.id = n.id AND n.status IN ('online','degraded','stale')
         RETURNING n.id, n.org_id, n.tenant_id, old.status, n.status, due.reason",
    )
    .bind(locked.iter().map(|l| l.0.as_str()).collect::<Vec<_>>())
    .bind(locked.iter().map(|l| l.1.as_str()).collect::<Vec<_>>())
    .bind(locked.iter().map(|l| l.2).collect::<Vec<_>>())
    .fetch_all(tx.as_mut())
    .await?;
    let transitions: Vec<StatusTransition> = rows
        .into_iter()
        .filter(|r| r.3 != r.4)
        .map(
            |(node_id, org_id, tenant_id, from, to, reason)| StatusTransition {
                node_id,
                org_id,
                tenant_id,
                from,
                to,
                reason,
            },
        )
        .collect();
    let transitions = transitions_gate(&mut tx, transitions, flapping).await?;
    transitions_record(&mut tx, &transitions).await?;
    tx.commit().await?;
    Ok(transitions)
}
