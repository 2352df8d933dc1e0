//! Heartbeats: the node's liveness row, its wide row where something
//! changed, its status transitions and change events, and the signing keys'
//! last use.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::{Postgres, Transaction};

use super::{HeartbeatRow, OfflinePolicy};
use crate::DbError;
use crate::outbox::{NodeChange, StatusTransition};

/// Keep only the newest heartbeat of each node: one row update per node per batch.
pub fn heartbeats_coalesce(rows: Vec<HeartbeatRow>) -> Vec<HeartbeatRow> {
    let mut newest: BTreeMap<String, HeartbeatRow> = BTreeMap::new();
    for row in rows {
        match newest.get(&row.origin.node_id) {
            Some(kept) if kept.seq >= row.seq => {}
            _ => {
                newest.insert(row.origin.node_id.clone(), row);
            }
        }
    }
    newest.into_values().collect()
}

pub(super) async fn heartbeats_apply(
    tx: &mut Transaction<'_, Postgres>,
    rows: &[&HeartbeatRow],
    policy: OfflinePolicy,
) -> Result<(u64, Vec<StatusTransition>, Vec<NodeChange>), DbError> {
    if rows.is_empty() {
        return Ok((0, vec![], vec![]));
    }
    let live = liveness_apply(tx, rows, policy).await?;
    let applied = live.len() as u64;
    let live: BTreeSet<&str> = live.iter().map(String::as_str).collect();
    let applied_rows: Vec<&HeartbeatRow> = rows
        .iter()
        .copied()
        .filter(|r| live.contains(r.origin.node_id.as_str()))
        .collect();
    let updated = node_rows_apply(tx, &applied_rows).await?;
    let mut changes = Vec::new();
    for r in &updated {
        let change = |payload| NodeChange {
            org_id: r.org_id.clone(),
            tenant_id: r.tenant_id.clone(),
            node_id: r.id.clone(),
            payload,
        };
        if r.old_policy_version != r.policy_version {
            changes.push(change(
                serde_json::json!({"kind": "policy_applied", "applied": r.policy_version}),
            ));
        }
        // A new refusal is news; the node applying a policy again shows as
        // policy_applied.
        if let Some(reason) = r
            .policy_rejected
            .as_ref()
            .filter(|_| r.old_policy_rejected != r.policy_rejected)
        {
            changes.push(change(
                serde_json::json!({"kind": "policy_rejected", "reason": reason}),
            ));
        }
        if r.old_key_warning != r.key_warning {
            changes.push(change(serde_json::json!({
                "kind": "key_warning", "key_id": r.key_id, "key_status": r.key_warning,
            })));
        }
    }
    let transitions = updated
        .into_iter()
        .filter(|r| r.old_status != r.status)
        .map(|r| StatusTransition {
            reason: match r.health.as_str() {
                "stopping" => "node stopped gracefully".into(),
                "degraded" => "node reports itself degraded".into(),
                _ => "heartbeat received".into(),
            },
            node_id: r.id,
            org_id: r.org_id,
            tenant_id: r.tenant_id,
            from: r.old_status,
            to: r.status,
        })
        .collect();
    keys_touch(tx, rows).await?;
    Ok((applied, transitions, changes))
}

/// Every heartbeat newer than the last one applied moves its node's
/// liveness row (times, sequence, deadlines, counters); returns those nodes.
/// The ingest's admission holds the node rows' locks (the lock order of
/// `migrations/*_node_liveness.sql`).
async fn liveness_apply(
    tx: &mut Transaction<'_, Postgres>,
    rows: &[&HeartbeatRow],
    policy: OfflinePolicy,
) -> Result<Vec<String>, DbError> {
    Ok(sqlx::query_scalar(
        "UPDATE node_liveness l SET
             last_seen_at = i.seen_at,
             last_sent_at = i.sent_at,
             last_seq = i.seq,
             stale_after = CASE WHEN i.health = 'stopping' THEN NULL
                                ELSE i.seen_at + make_interval(secs => i.interval_secs * 2) END,
             offline_after = CASE WHEN i.health = 'stopping' THEN NULL
                                  ELSE i.seen_at + make_interval(secs => i.interval_secs * $12 + $13) END,
             last_policy_sync_at = i.last_policy_sync_at,
             last_evidence_batch_at = i.last_evidence_batch_at,
             slo_counters = i.slo_counters,
             host_uptime_secs = i.host_uptime_secs,
             spool_depth = i.spool_depth, spool_dropped = i.spool_dropped
         FROM (
             SELECT u.*,
                    -- The broker's receive time, never later than now (a
                    -- broker clock ahead of the database's gains nothing).
                    LEAST(now(), COALESCE(u.received_at, now())) AS seen_at
             FROM UNNEST($1::text[], $2::bigint[], $3::timestamptz[], $4::text[], $5::int[],
                         $6::timestamptz[], $7::timestamptz[], $8::jsonb[], $9::bigint[],
                         $10::bigint[], $11::bigint[], $14::timestamptz[])
                  AS u(node_id, seq, sent_at, health, interval_secs, last_policy_sync_at,
                       last_evidence_batch_at, slo_counters, host_uptime_secs, spool_depth,
                       spool_dropped, received_at)
         ) i, nodes n
         WHERE l.node_id = i.node_id AND n.id = l.node_id AND i.seq > l.last_seq
           AND n.status <> 'decommissioned'
         RETURNING l.node_id",
    )
    .bind(column(rows, |r| r.origin.node_id.clone()))
    .bind(column(rows, |r| r.seq))
    .bind(column(rows, |r| r.sent_at))
    .bind(column(rows, |r| r.health.clone()))
    .bind(column(rows, |r| r.interval_secs))
    .bind(column(rows, |r| r.last_policy_sync_at))
    .bind(column(rows, |r| r.last_evidence_batch_at))
    .bind(column(rows, |r| r.slo_counters.clone()))
    .bind(column(rows, |r| r.host_uptime_secs))
    .bind(column(rows, |r| r.spool_depth))
    .bind(column(rows, |r| r.spool_dropped))
    .bind(policy.intervals)
    .bind(policy.grace_secs)
    .bind(column(rows, |r| r.received_at))
    .fetch_all(tx.as_mut())
    .await?)
}

/// The wide node row takes what a heartbeat reports only where it differs
/// (status, interval, versions, key, host, policy refusal): most heartbeats
/// leave it alone. Returns the rows that changed, old and new values.
async fn node_rows_apply(
    tx: &mut Transaction<'_, Postgres>,
    rows: &[&HeartbeatRow],
) -> Result<Vec<HeartbeatApplied>, DbError> {
    if rows.is_empty() {
        return Ok(vec![]);
    }
    Ok(sqlx::query_as(
        "UPDATE nodes n SET
             status = i.new_status,
             status_changed_at = CASE WHEN i.new_status <> old.status THEN now() ELSE old.status_changed_at END,
             interval_secs = i.interval_secs,
             agent_version = i.agent_version,
             policy_version = i.policy_version,
             key_id = i.key_id,
             key_warning = i.key_warning,
             host_os = i.host_os, host_kernel = i.host_kernel, host_arch = i.host_arch,
             host_cpus = i.host_cpus, host_memory_bytes = i.host_memory_bytes,
             policy_rejected = i.policy_rejected
         FROM (
             SELECT u.*, CASE u.health WHEN 'stopping' THEN 'offline'
                                       WHEN 'degraded' THEN 'degraded'
                                       ELSE 'online' END AS new_status,
                    (SELECT k.status FROM signing_keys k
                     WHERE k.key_id = u.key_id AND k.org_id = u.org_id
                       AND k.status <> 'active') AS key_warning
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::int[], $6::text[],
                         $7::text[], $8::text[], $9::text[], $10::text[], $11::int[],
                         $12::bigint[], $13::text[])
                  AS u(node_id, org_id, health, agent_version, interval_secs, policy_version,
                       key_id, host_os, host_kernel, host_arch, host_cpus, host_memory_bytes,
                       policy_rejected)
         ) i, nodes old
         WHERE n.id = i.node_id AND old.id = n.id
           AND (old.status, old.interval_secs, old.agent_version, old.policy_version, old.key_id,
                old.key_warning, old.host_os, old.host_kernel, old.host_arch, old.host_cpus,
                old.host_memory_bytes, old.policy_rejected)
               IS DISTINCT FROM
               (i.new_status, i.interval_secs, i.agent_version, i.policy_version, i.key_id,
                i.key_warning, i.host_os, i.host_kernel, i.host_arch, i.host_cpus,
                i.host_memory_bytes, i.policy_rejected)
         RETURNING n.id, n.org_id, n.tenant_id, old.status, n.status AS status_new, i.health,
                   old.policy_version, n.policy_version AS policy_version_new,
                   old.key_warning, n.key_warning AS key_warning_new, n.key_id,
                   old.policy_rejected, n.policy_rejected AS policy_rejected_new",
    )
    .bind(column(rows, |r| r.origin.node_id.clone()))
    .bind(column(rows, |r| r.origin.org_id.clone()))
    .bind(column(rows, |r| r.health.clone()))
    .bind(column(rows, |r| r.agent_version.clone()))
    .bind(column(rows, |r| r.interval_secs))
    .bind(column(rows, |r| r.policy_version.clone()))
    .bind(column(rows, |r| r.key_id.clone()))
    .bind(column(rows, |r| r.host_os.clone()))
    .bind(column(rows, |r| r.host_kernel.clone()))
    .bind(column(rows, |r| r.host_arch.clone()))
    .bind(column(rows, |r| r.host_cpus))
    .bind(column(rows, |r| r.host_memory_bytes))
    .bind(column(rows, |r| r.policy_rejected.clone()))
    .fetch_all(tx.as_mut())
    .await?)
}

/// One field of every row, as a statement's array parameter.
fn column<T>(rows: &[&HeartbeatRow], field: impl Fn(&HeartbeatRow) -> T) -> Vec<T> {
    rows.iter().map(|r| field(r)).collect()
}

#[derive(sqlx::FromRow)]
struct HeartbeatApplied {
    id: String,
    org_id: String,
    tenant_id: String,
    #[sqlx(rename = "status")]
    old_status: String,
    #[sqlx(rename = "status_new")]
    status: String,
    health: String,
    #[sqlx(rename = "policy_version")]
    old_policy_version: Option<String>,
    #[sqlx(rename = "policy_version_new")]
    policy_version: Option<String>,
    #[sqlx(rename = "key_warning")]
    old_key_warning: Option<String>,
    #[sqlx(rename = "key_warning_new")]
    key_warning: Option<String>,
    key_id: Option<String>,
    #[sqlx(rename = "policy_rejected")]
    old_policy_rejected: Option<String>,
    #[sqlx(rename = "policy_rejected_new")]
    policy_rejected: Option<String>,
}

/// Record when each signing key was last reported in use, at most once a
/// minute per key (a heartbeat batch must not rewrite the key rows each time).
async fn keys_touch(
    tx: &mut Transaction<'_, Postgres>,
    rows: &[&HeartbeatRow],
) -> Result<(), DbError> {
    let mut used: Vec<(String, String)> = rows
        .iter()
        .filter_map(|r| r.key_id.clone().map(|k| (k, r.origin.org_id.clone())))
        .collect();
    if used.is_empty() {
        return Ok(());
    }
    used.sort();
    used.dedup();
    let (keys, orgs): (Vec<String>, Vec<String>) = used.into_iter().unzip();
    sqlx::query(
        "UPDATE signing_keys k SET last_used_at = now()
         FROM UNNEST($1::text[], $2::text[]) AS u(key_id, org_id)
         WHERE k.key_id = u.key_id AND k.org_id = u.org_id
           AND (k.last_used_at IS NULL OR k.last_used_at < now() - interval '1 minute')",
    )
    .bind(keys)
    .bind(orgs)
    .execute(tx.as_mut())
    .await?;
    Ok(())
}
