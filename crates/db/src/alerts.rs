//! Alerting: channels, rules, silences, alert episodes, the evaluator's
//! inbox and the delivery outbox (which is also the delivery log).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::DbError;

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ChannelRecord {
    pub id: Uuid,
    pub org_id: String,
    pub name: String,
    pub kind: String,
    /// Redacted: the URL's scheme and host, or the e-mail address.
    pub target: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

/// A channel with its sealed URL/address and secret, for sending.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ChannelSealed {
    pub id: Uuid,
    pub org_id: String,
    pub kind: String,
    pub secret_enc: Vec<u8>,
}

const CHANNEL_COLUMNS: &str = "id, org_id, name, kind, target, created_by, created_at";

pub async fn channel_insert(
    tx: &mut Transaction<'_, Postgres>,
    channel: &ChannelRecord,
    secret_enc: &[u8],
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO notification_channels (id, org_id, name, kind, target, secret_enc, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(channel.id)
    .bind(&channel.org_id)
    .bind(&channel.name)
    .bind(&channel.kind)
    .bind(&channel.target)
    .bind(secret_enc)
    .bind(&channel.created_by)
    .execute(tx.as_mut())
    .await?;
    Ok(())
}

pub async fn channel_list(pool: &PgPool, org_id: &str) -> Result<Vec<ChannelRecord>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {CHANNEL_COLUMNS} FROM notification_channels WHERE org_id = $1 ORDER BY name"
    )))
    .bind(org_id)
    .fetch_all(pool)
    .await?)
}

pub async fn channel_count(pool: &PgPool, org_id: &str) -> Result<i64, DbError> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM notification_channels WHERE org_id = $1")
            .bind(org_id)
            .fetch_one(pool)
            .await?,
    )
}

pub async fn channel_get(
    pool: &PgPool,
    org_id: &str,
    id: Uuid,
) -> Result<Option<ChannelRecord>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {CHANNEL_COLUMNS} FROM notification_channels WHERE org_id = $1 AND id = $2"
    )))
    .bind(org_id)
    .bind(id)
    .fetch_optional(pool)
    .await?)
}

pub async fn channel_sealed(pool: &PgPool, id: Uuid) -> Result<Option<ChannelSealed>, DbError> {
    Ok(sqlx::query_as(
        "SELECT id, org_id, kind, secret_enc FROM notification_channels WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?)
}

/// The names of the org's rules that send to channel `id`.
pub async fn channel_users(pool: &PgPool, org_id: &str, id: Uuid) -> Result<Vec<String>, DbError> {
    Ok(sqlx::query_scalar(
        "SELECT name FROM alert_rules WHERE org_id = $1 AND $2 = ANY (channels) ORDER BY name",
    )
    .bind(org_id)
    .bind(id)
    .fetch_all(pool)
    .await?)
}

pub async fn channel_delete(
    tx: &mut Transaction<'_, Postgres>,
    org_id: &str,
    id: Uuid,
) -> Result<Option<ChannelRecord>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "DELETE FROM notification_channels WHERE org_id = $1 AND id = $2 RETURNING {CHANNEL_COLUMNS}"
    )))
    .bind(org_id)
    .bind(id)
    .fetch_optional(tx.as_mut())
    .await?)
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct RuleRecord {
    pub id: Uuid,
    pub org_id: String,
    pub name: String,
    pub event: String,
    pub tenant_id: Option<String>,
    pub labels: serde_json::Value,
    pub for_secs: i32,
    pub repeat_secs: i32,
    pub threshold: Option<i64>,
    pub channels: Vec<Uuid>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

const RULE_COLUMNS: &str = "id, org_id, name, event, tenant_id, labels, for_secs, repeat_secs, \
     threshold, channels, created_by, created_at";

pub async fn rule_insert(
    tx: &mut Transaction<'_, Postgres>,
    rule: &RuleRecord,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO alert_rules (id, org_id, name, event, tenant_id, labels, for_secs,
             repeat_secs, threshold, channels, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(rule.id)
    .bind(&rule.org_id)
    .bind(&rule.name)
    .bind(&rule.event)
    .bind(&rule.tenant_id)
    .bind(&rule.labels)
    .bind(rule.for_secs)
    .bind(rule.repeat_secs)
    .bind(rule.threshold)
    .bind(&rule.channels)
    .bind(&rule.created_by)
    .execute(tx.as_mut())
    .await?;
    Ok(())
}

pub async fn rule_list(pool: &PgPool, org_id: &str) -> Result<Vec<RuleRecord>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {RULE_COLUMNS} FROM alert_rules WHERE org_id = $1 ORDER BY name"
    )))
    .bind(org_id)
    .fetch_all(pool)
    .await?)
}

pub async fn rule_count(pool: &PgPool, org_id: &str) -> Result<i64, DbError> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM alert_rules WHERE org_id = $1")
            .bind(org_id)
            .fetch_one(pool)
            .await?,
    )
}

pub async fn rule_delete(
    tx: &mut Transaction<'_, Postgres>,
    org_id: &str,
    id: Uuid,
) -> Result<Option<RuleRecord>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "DELETE FROM alert_rules WHERE org_id = $1 AND id = $2 RETURNING {RULE_COLUMNS}"
    )))
    .bind(org_id)
    .bind(id)
    .fetch_optional(tx.as_mut())
    .await?)
}

/// The rules of these orgs watching node events (not the control plane's).
pub async fn rules_of_orgs(
    tx: &mut Transaction<'_, Postgres>,
    org_ids: &[String],
    control_plane_events: &[&str],
) -> Result<Vec<RuleRecord>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {RULE_COLUMNS} FROM alert_rules
         WHERE org_id = ANY ($1) AND NOT (event = ANY ($2))"
    )))
    .bind(org_ids)
    .bind(control_plane_events)
    .fetch_all(tx.as_mut())
    .await?)
}

/// Every rule watching one of `events` (the control-plane ones).
pub async fn rules_watching(pool: &PgPool, events: &[&str]) -> Result<Vec<RuleRecord>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {RULE_COLUMNS} FROM alert_rules WHERE event = ANY ($1)"
    )))
    .bind(events)
    .fetch_all(pool)
    .await?)
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct SilenceRecord {
    pub id: Uuid,
    pub org_id: String,
    pub rule_id: Option<Uuid>,
    pub event: Option<String>,
    pub tenant_id: Option<String>,
    pub node_id: Option<String>,
    pub labels: serde_json::Value,
    pub comment: String,
    pub created_by: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub active: bool,
}

const SILENCE_COLUMNS: &str = "id, org_id, rule_id, event, tenant_id, node_id, labels, comment, \
     created_by, starts_at, ends_at, (now() >= starts_at AND now() < ends_at) AS active";

pub async fn silence_insert(
    tx: &mut Transaction<'_, Postgres>,
    s: &SilenceRecord,
) -> Result<SilenceRecord, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO alert_silences (id, org_id, rule_id, event, tenant_id, node_id, labels,
             comment, created_by, ends_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {SILENCE_COLUMNS}"
    )))
    .bind(s.id)
    .bind(&s.org_id)
    .bind(s.rule_id)
    .bind(&s.event)
    .bind(&s.tenant_id)
    .bind(&s.node_id)
    .bind(&s.labels)
    .bind(&s.comment)
    .bind(&s.created_by)
    .bind(s.ends_at)
    .fetch_one(tx.as_mut())
    .await?)
}

/// Active silences and those that ended in the last seven days.
pub async fn silence_list(pool: &PgPool, org_id: &str) -> Result<Vec<SilenceRecord>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {SILENCE_COLUMNS} FROM alert_silences
         WHERE org_id = $1 AND ends_at > now() - interval '7 days'
         ORDER BY ends_at DESC LIMIT 500"
    )))
    .bind(org_id)
    .fetch_all(pool)
    .await?)
}

pub async fn silence_active_count(pool: &PgPool, org_id: &str) -> Result<i64, DbError> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM alert_silences WHERE org_id = $1 AND ends_at > now()",
    )
    .bind(org_id)
    .fetch_one(pool)
    .await?)
}

/// End a silence now; `None` when the org has no such silence.
pub async fn silence_end(
    tx: &mut Transaction<'_, Postgres>,
    org_id: &str,
    id: Uuid,
) -> Result<Option<SilenceRecord>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE alert_silences SET ends_at = GREATEST(starts_at + interval '1 microsecond', LEAST(ends_at, now()))
         WHERE org_id = $1 AND id = $2 RETURNING {SILENCE_COLUMNS}"
    )))
    .bind(org_id)
    .bind(id)
    .fetch_optional(tx.as_mut())
    .await?)
}

/// True when an active silence of the org matches this alert's rule, event,
/// tenant, node and the node's labels.
pub async fn silenced(tx: &mut Transaction<'_, Postgres>, alert_id: Uuid) -> Result<bool, DbError> {
    Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT EXISTS (SELECT 1 FROM alerts a JOIN alert_rules r ON r.id = a.rule_id
             LEFT JOIN nodes n ON n.id = a.node_id
         WHERE a.id = $1 AND {SILENCE_MATCH})"
    )))
    .bind(alert_id)
    .fetch_one(tx.as_mut())
    .await?)
}

/// Holds for an alert `a` of rule `r` on node `n` (left-joined) when an
/// active silence matches it.
const SILENCE_MATCH: &str = "EXISTS (SELECT 1 FROM alert_silences s
    WHERE s.org_id = a.org_id AND now() >= s.starts_at AND now() < s.ends_at
      AND (s.rule_id IS NULL OR s.rule_id = a.rule_id)
      AND (s.event IS NULL OR s.event = r.event)
      AND (s.tenant_id IS NULL OR s.tenant_id = a.tenant_id)
      AND (s.node_id IS NULL OR s.node_id = a.node_id)
      AND (s.labels = '{}'::jsonb OR COALESCE(n.labels, '{}'::jsonb) @> s.labels))";

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct AlertRecord {
    pub id: Uuid,
    pub org_id: String,
    pub rule_id: Uuid,
    pub rule_name: String,
    pub event: String,
    pub tenant_id: Option<String>,
    pub node_id: Option<String>,
    pub state: String,
    pub detail: String,
    pub opened_at: DateTime<Utc>,
    pub fired_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub silenced: bool,
}

pub async fn alert_list(
    pool: &PgPool,
    org_id: &str,
    states: &[&str],
    limit: i64,
) -> Result<Vec<AlertRecord>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT a.id, a.org_id, a.rule_id, r.name AS rule_name, r.event, a.tenant_id, a.node_id,
                a.state, a.detail, a.opened_at, a.fired_at, a.resolved_at,
                {SILENCE_MATCH} AS silenced
         FROM alerts a JOIN alert_rules r ON r.id = a.rule_id
         LEFT JOIN nodes n ON n.id = a.node_id
         WHERE a.org_id = $1 AND a.state = ANY ($2)
         ORDER BY a.opened_at DESC LIMIT $3"
    )))
    .bind(org_id)
    .bind(states)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// Open an episode of `rule` for `subject` unless one is open: firing at
/// once when the rule has no `for`. `None` when one was already open.
#[allow(clippy::too_many_arguments)]
pub async fn alert_open(
    tx: &mut Transaction<'_, Postgres>,
    rule: &RuleRecord,
    subject: &str,
    tenant_id: Option<&str>,
    node_id: Option<&str>,
    detail: &str,
    at: DateTime<Utc>,
) -> Result<Option<Uuid>, DbError> {
    let firing = rule.for_secs == 0;
    Ok(sqlx::query_scalar(
        "INSERT INTO alerts (id, org_id, rule_id, subject, tenant_id, node_id, state, detail,
             opened_at, fired_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, CASE WHEN $10 THEN now() END)
         ON CONFLICT (rule_id, subject) WHERE state <> 'resolved' DO NOTHING
         RETURNING id",
    )
    .bind(Uuid::now_v7())
    .bind(&rule.org_id)
    .bind(rule.id)
    .bind(subject)
    .bind(tenant_id)
    .bind(node_id)
    .bind(if firing { "firing" } else { "pending" })
    .bind(detail)
    .bind(at)
    .bind(firing)
    .fetch_optional(tx.as_mut())
    .await?)
}

/// An alert that was just resolved, and whether people had been told it fired.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Resolved {
    pub id: Uuid,
    pub was_notified: bool,
}

/// Close the open episode of `rule` for `subject`, if any.
pub async fn alert_close(
    tx: &mut Transaction<'_, Postgres>,
    rule_id: Uuid,
    subject: &str,
    detail: &str,
) -> Result<Option<Resolved>, DbError> {
    Ok(sqlx::query_as(
        "UPDATE alerts SET state = 'resolved', resolved_at = now(), detail = $3
         WHERE rule_id = $1 AND subject = $2 AND state <> 'resolved'
         RETURNING id, last_notified_at IS NOT NULL AS was_notified",
    )
    .bind(rule_id)
    .bind(subject)
    .bind(detail)
    .fetch_optional(tx.as_mut())
    .await?)
}

/// Move pending alerts whose `for` has passed to firing; their ids.
pub async fn alerts_due_fire(
    tx: &mut Transaction<'_, Postgres>,
    limit: i64,
) -> Result<Vec<Uuid>, DbError> {
    Ok(sqlx::query_scalar(
        "UPDATE alerts SET state = 'firing', fired_at = now()
         WHERE id IN (
             SELECT a.id FROM alerts a JOIN alert_rules r ON r.id = a.rule_id
             WHERE a.state = 'pending'
               AND a.opened_at + make_interval(secs => r.for_secs) <= now()
             ORDER BY a.opened_at LIMIT $1 FOR UPDATE OF a SKIP LOCKED)
         RETURNING id",
    )
    .bind(limit)
    .fetch_all(tx.as_mut())
    .await?)
}

/// Firing alerts someone should hear about now (never told, or the rule's
/// repeat interval has passed) and that no silence covers. Locked, and
/// marked as notified.
pub async fn alerts_due_notify(
    tx: &mut Transaction<'_, Postgres>,
    limit: i64,
) -> Result<Vec<Uuid>, DbError> {
    Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "UPDATE alerts SET last_notified_at = now()
         WHERE id IN (
             SELECT a.id FROM alerts a JOIN alert_rules r ON r.id = a.rule_id
             LEFT JOIN nodes n ON n.id = a.node_id
             WHERE a.state = 'firing'
               AND (a.last_notified_at IS NULL
                    OR (r.repeat_secs > 0
                        AND a.last_notified_at + make_interval(secs => r.repeat_secs) <= now()))
               AND NOT {SILENCE_MATCH}
             ORDER BY a.fired_at LIMIT $1 FOR UPDATE OF a SKIP LOCKED)
         RETURNING id"
    )))
    .bind(limit)
    .fetch_all(tx.as_mut())
    .await?)
}

/// Close one-shot alerts (`node_enrolled`) once they have been told.
pub async fn alerts_resolve_quietly(
    tx: &mut Transaction<'_, Postgres>,
    ids: &[Uuid],
) -> Result<(), DbError> {
    sqlx::query("UPDATE alerts SET state = 'resolved', resolved_at = now() WHERE id = ANY ($1)")
        .bind(ids)
        .execute(tx.as_mut())
        .await?;
    Ok(())
}

/// Everything a notification about alert `id` is made of.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AlertContext {
    pub id: Uuid,
    pub org_id: String,
    pub tenant_id: Option<String>,
    pub node_id: Option<String>,
    pub detail: String,
    pub opened_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub rule_id: Uuid,
    pub rule_name: String,
    pub event: String,
    pub channels: Vec<Uuid>,
    pub hostname: Option<String>,
}

pub async fn alert_context(
    tx: &mut Transaction<'_, Postgres>,
    ids: &[Uuid],
) -> Result<Vec<AlertContext>, DbError> {
    Ok(sqlx::query_as(
        "SELECT a.id, a.org_id, a.tenant_id, a.node_id, a.detail, a.opened_at, a.resolved_at,
                a.rule_id, r.name AS rule_name, r.event, r.channels, n.hostname
         FROM alerts a JOIN alert_rules r ON r.id = a.rule_id
         LEFT JOIN nodes n ON n.id = a.node_id
         WHERE a.id = ANY ($1)",
    )
    .bind(ids)
    .fetch_all(tx.as_mut())
    .await?)
}

/// Open control-plane alerts of `rule_id` (subject '').
pub async fn alert_is_open(pool: &PgPool, rule_id: Uuid, subject: &str) -> Result<bool, DbError> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM alerts WHERE rule_id = $1 AND subject = $2 AND state <> 'resolved')",
    )
    .bind(rule_id)
    .bind(subject)
    .fetch_one(pool)
    .await?)
}

/// Open an alert for every node of the rule's scope already in `status`
/// (a rule made while nodes are down still tells about them).
pub async fn alerts_seed_status(
    tx: &mut Transaction<'_, Postgres>,
    rule: &RuleRecord,
    status: &str,
) -> Result<u64, DbError> {
    let firing = rule.for_secs == 0;
    Ok(sqlx::query(
        "INSERT INTO alerts (id, org_id, rule_id, subject, tenant_id, node_id, state, detail,
             opened_at, fired_at)
         SELECT gen_random_uuid(), n.org_id, $2, n.id, n.tenant_id, n.id, $5,
                'already ' || s.shown_status || ' when the rule was made', now(),
                CASE WHEN $6 THEN now() END
         FROM nodes n
         -- The status the console shows (a flapping node is `flapping`
         -- whatever its liveness), read by its index.
         JOIN node_statuses s ON s.node_id = n.id AND s.org_id = n.org_id
         WHERE n.org_id = $1 AND s.shown_status = $3
           AND ($4::text IS NULL OR n.tenant_id = $4) AND n.labels @> $7
         ON CONFLICT (rule_id, subject) WHERE state <> 'resolved' DO NOTHING",
    )
    .bind(&rule.org_id)
    .bind(rule.id)
    .bind(status)
    .bind(&rule.tenant_id)
    .bind(if firing { "firing" } else { "pending" })
    .bind(firing)
    .bind(&rule.labels)
    .execute(tx.as_mut())
    .await?
    .rows_affected())
}

/// Lock the oldest rows of the alert evaluator's inbox.
pub async fn inbox_lock_batch(
    tx: &mut Transaction<'_, Postgres>,
    limit: i64,
) -> Result<Vec<crate::outbox::OutboxRow>, DbError> {
    crate::outbox::state_queue_lock_batch(tx, crate::outbox::StateQueue::AlertInbox, limit).await
}

pub async fn inbox_delete(tx: &mut Transaction<'_, Postgres>, ids: &[i64]) -> Result<(), DbError> {
    sqlx::query("DELETE FROM alert_inbox WHERE id = ANY ($1)")
        .bind(ids)
        .execute(tx.as_mut())
        .await?;
    Ok(())
}

/// Labels and tenant of these nodes.
pub async fn node_labels(
    tx: &mut Transaction<'_, Postgres>,
    node_ids: &[String],
) -> Result<Vec<(String, serde_json::Value)>, DbError> {
    Ok(
        sqlx::query_as("SELECT id, labels FROM nodes WHERE id = ANY ($1)")
            .bind(node_ids)
            .fetch_all(tx.as_mut())
            .await?,
    )
}

/// One notification to queue: to a channel, or (`channel_id: None`) to the
/// org's bus subject.
#[derive(Debug, Clone)]
pub struct DeliveryNew {
    pub org_id: String,
    pub channel_id: Option<Uuid>,
    pub alert_id: Option<Uuid>,
    pub status: String,
    pub notification: serde_json::Value,
}

pub async fn deliveries_enqueue(
    tx: &mut Transaction<'_, Postgres>,
    rows: &[DeliveryNew],
) -> Result<(), DbError> {
    if rows.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO alert_deliveries (org_id, channel_id, alert_id, status, notification)
         SELECT * FROM UNNEST($1::text[], $2::uuid[], $3::uuid[], $4::text[], $5::jsonb[])
             AS u (org_id, channel_id, alert_id, status, notification)
         -- a channel deleted since the rule named it is skipped
         WHERE u.channel_id IS NULL
            OR EXISTS (SELECT 1 FROM notification_channels c WHERE c.id = u.channel_id)",
    )
    .bind(rows.iter().map(|r| r.org_id.clone()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.channel_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.alert_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.status.clone()).collect::<Vec<_>>())
    .bind(
        rows.iter()
            .map(|r| r.notification.clone())
            .collect::<Vec<_>>(),
    )
    .execute(tx.as_mut())
    .await?;
    Ok(())
}

/// A delivery taken for one attempt (leased, so a crash retries it later).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeliveryClaim {
    pub id: i64,
    pub org_id: String,
    pub channel_id: Option<Uuid>,
    pub notification: serde_json::Value,
    pub attempts: i32,
}

pub async fn deliveries_claim(
    pool: &PgPool,
    limit: i64,
    lease_secs: i64,
) -> Result<Vec<DeliveryClaim>, DbError> {
    Ok(sqlx::query_as(
        "UPDATE alert_deliveries SET lease_until = now() + make_interval(secs => $2),
             attempts = attempts + 1
         WHERE id IN (
             SELECT id FROM alert_deliveries
             WHERE state = 'pending' AND next_attempt_at <= now()
               AND (lease_until IS NULL OR lease_until < now())
             ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)
         RETURNING id, org_id, channel_id, notification, attempts",
    )
    .bind(limit)
    .bind(lease_secs as f64)
    .fetch_all(pool)
    .await?)
}

/// Record one attempt's outcome: delivered, retried at `retry_at`, or
/// failed for good (`retry_at: None` with an error).
pub async fn delivery_record(
    pool: &PgPool,
    id: i64,
    response_status: Option<i32>,
    error: Option<&str>,
    retry_at: Option<DateTime<Utc>>,
) -> Result<(), DbError> {
    let state = match (error, retry_at) {
        (None, _) => "delivered",
        (Some(_), Some(_)) => "pending",
        (Some(_), None) => "failed",
    };
    sqlx::query(
        "UPDATE alert_deliveries SET state = $2, response_status = $3, last_error = $4,
             next_attempt_at = COALESCE($5, next_attempt_at), lease_until = NULL,
             delivered_at = CASE WHEN $2 = 'delivered' THEN now() END
         WHERE id = $1",
    )
    .bind(id)
    .bind(state)
    .bind(response_status)
    .bind(error)
    .bind(retry_at)
    .execute(pool)
    .await?;
    Ok(())
}

/// The earliest moment a pending delivery is due, if any.
pub async fn deliveries_next_due(pool: &PgPool) -> Result<Option<DateTime<Utc>>, DbError> {
    Ok(sqlx::query_scalar(
        "SELECT min(GREATEST(next_attempt_at, COALESCE(lease_until, next_attempt_at)))
         FROM alert_deliveries WHERE state = 'pending'",
    )
    .fetch_one(pool)
    .await?)
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct DeliveryRecord {
    pub id: i64,
    pub channel_id: Option<Uuid>,
    pub alert_id: Option<Uuid>,
    pub rule_name: Option<String>,
    pub event: Option<String>,
    pub node_id: Option<String>,
    pub status: String,
    pub state: String,
    pub attempts: i32,
    pub response_status: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
}

const DELIVERY_COLUMNS: &str = "id, channel_id, alert_id, notification->>'rule_name' AS rule_name, \
     notification->>'event' AS event, notification->>'node_id' AS node_id, status, state, attempts, \
     response_status, last_error, created_at, \
     CASE WHEN state = 'pending' THEN next_attempt_at END AS next_attempt_at, delivered_at";

pub async fn delivery_list(
    pool: &PgPool,
    org_id: &str,
    channel_id: Uuid,
    limit: i64,
) -> Result<Vec<DeliveryRecord>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {DELIVERY_COLUMNS} FROM alert_deliveries
         WHERE org_id = $1 AND channel_id = $2 ORDER BY id DESC LIMIT $3"
    )))
    .bind(org_id)
    .bind(channel_id)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

pub async fn delivery_get(pool: &PgPool, id: i64) -> Result<Option<DeliveryRecord>, DbError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {DELIVERY_COLUMNS} FROM alert_deliveries WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await?)
}

/// Insert one delivery and return its id (the channel test).
pub async fn delivery_insert_one(pool: &PgPool, row: &DeliveryNew) -> Result<i64, DbError> {
    Ok(sqlx::query_scalar(
        "INSERT INTO alert_deliveries (org_id, channel_id, alert_id, status, notification,
             attempts, lease_until)
         VALUES ($1, $2, $3, $4, $5, 1, now() + interval '60 seconds') RETURNING id",
    )
    .bind(&row.org_id)
    .bind(row.channel_id)
    .bind(row.alert_id)
    .bind(&row.status)
    .bind(&row.notification)
    .fetch_one(pool)
    .await?)
}

/// Dead letters received in the last `secs` seconds (all orgs).
pub async fn dead_letters_recent(pool: &PgPool, secs: i64) -> Result<i64, DbError> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM dead_letters WHERE received_at > now() - make_interval(secs => $1)",
    )
    .bind(secs as f64)
    .fetch_one(pool)
    .await?)
}

/// Forget resolved alerts and finished deliveries older than `days`.
pub async fn alerts_prune(pool: &PgPool, days: i64) -> Result<u64, DbError> {
    let a = sqlx::query(
        "DELETE FROM alerts WHERE state = 'resolved' AND resolved_at < now() - make_interval(days => $1::int)",
    )
    .bind(days)
    .execute(pool)
    .await?
    .rows_affected();
    let d = sqlx::query(
        "DELETE FROM alert_deliveries WHERE state <> 'pending' AND created_at < now() - make_interval(days => $1::int)",
    )
    .bind(days)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(a + d)
}
