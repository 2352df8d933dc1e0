//! The ingest workers' write path: one transaction per batch, set-based
//! statements (UNNEST), idempotent on redelivery:
//! - heartbeats update the node row only when their sequence is newer;
//! - summaries are keyed by (node, seq): a batch inserts them plainly, and
//!   a batch that repeats a stored summary is committed again with
//!   ON CONFLICT DO NOTHING (see `summaries::Redelivery`), and the hourly
//!   rollups are summed in the controller (see `summaries`);
//! - dead letters are keyed by their stream sequence.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, Transaction};

use ritma_protocol::SloCount;

use crate::DbError;
use crate::outbox::{NodeChange, StatusTransition, changes_record, transitions_record};

mod summaries;

use summaries::Redelivery;

/// Where a message claims to come from (its subject).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub stream_seq: i64,
    pub subject: String,
    pub org_id: String,
    pub tenant_id: String,
    pub node_id: String,
}

#[derive(Debug, Clone)]
pub struct HeartbeatRow {
    pub origin: Origin,
    pub seq: i64,
    pub sent_at: DateTime<Utc>,
    /// When the broker stored the message (its JetStream timestamp): the
    /// node's deadlines count from here, not from the commit, so an ingest
    /// running behind never makes a node look late. None: the commit time.
    pub received_at: Option<DateTime<Utc>>,
    /// `ok`, `degraded` or `stopping`.
    pub health: String,
    pub agent_version: String,
    pub interval_secs: i32,
    pub policy_version: Option<String>,
    pub last_policy_sync_at: Option<DateTime<Utc>>,
    pub last_evidence_batch_at: Option<DateTime<Utc>>,
    pub key_id: Option<String>,
    pub slo_counters: serde_json::Value,
    pub host_os: String,
    pub host_kernel: String,
    pub host_arch: String,
    pub host_cpus: i32,
    pub host_memory_bytes: i64,
    pub host_uptime_secs: i64,
    pub spool_depth: i64,
    pub spool_dropped: i64,
    /// Why the node refused the policy it was served (None: it did not).
    pub policy_rejected: Option<String>,
}

#[derive(Debug, Clone)]
pub struct PeriodRow {
    pub origin: Origin,
    pub seq: i64,
    pub sent_at: DateTime<Utc>,
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct SloRow {
    pub period: PeriodRow,
    pub counts: Vec<SloCount>,
}

#[derive(Debug, Clone)]
pub struct UsageRow {
    pub period: PeriodRow,
    pub decisions: i64,
    pub dig_files: i64,
    pub storage_bytes: i64,
    pub snapshot_exports: i64,
}

#[derive(Debug, Clone)]
pub struct EnforcementRow {
    pub period: PeriodRow,
    pub allow: i64,
    pub deny: i64,
    pub throttle: i64,
    pub isolate: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterRow {
    pub stream_seq: i64,
    /// The org token of its subject (what the dead-letter budget is kept by).
    pub org_id: String,
    pub subject: String,
    pub reason: String,
    pub detail: String,
    pub content: DeadLetterContent,
}

/// At most this much of a refused message's body is kept (table and stream).
pub const DEAD_LETTER_BODY_MAX: usize = 4096;
/// At most this many of its headers, each value at most this long.
pub const DEAD_LETTER_HEADERS_MAX: usize = 32;
pub const DEAD_LETTER_HEADER_VALUE_MAX: usize = 256;

/// What is kept of a refused message: its headers (`{name: [values]}`,
/// bounded), the first [`DEAD_LETTER_BODY_MAX`] bytes of its body and the
/// body's original size.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeadLetterContent {
    pub headers: Option<serde_json::Value>,
    pub body: Vec<u8>,
    pub body_size: i64,
}

impl DeadLetterContent {
    /// Keep the bounded part of a message's body.
    pub fn of_body(body: &[u8]) -> Self {
        Self {
            headers: None,
            body: body[..body.len().min(DEAD_LETTER_BODY_MAX)].to_vec(),
            body_size: i64::try_from(body.len()).unwrap_or(i64::MAX),
        }
    }
}

/// Where the ingest's refused messages go: which are kept (a per-org
/// budget) and what is kept of them.
pub trait DeadLetterSink: Sync {
    fn keep(&self, org: &str) -> bool;
    fn content(&self, stream_seq: i64) -> DeadLetterContent;
}

/// Keeps every dead letter, without content (tools and tests).
pub struct KeepAllDeadLetters;

impl DeadLetterSink for KeepAllDeadLetters {
    fn keep(&self, _org: &str) -> bool {
        true
    }

    fn content(&self, _stream_seq: i64) -> DeadLetterContent {
        DeadLetterContent::default()
    }
}

#[derive(Debug, Default)]
pub struct IngestBatch {
    pub heartbeats: Vec<HeartbeatRow>,
    pub slo: Vec<SloRow>,
    pub usage: Vec<UsageRow>,
    pub events: Vec<EnforcementRow>,
    pub dead_letters: Vec<DeadLetterRow>,
}

#[derive(Debug, Clone, Copy)]
pub struct OfflinePolicy {
    /// Offline after `intervals` x the node's heartbeat interval ...
    pub intervals: i32,
    /// ... plus this grace, from the controller's receive time.
    pub grace_secs: i32,
    /// When a node's liveness changes count as flapping.
    pub flapping: crate::flapping::FlapPolicy,
}

#[derive(Debug, Default)]
pub struct IngestOutcome {
    pub transitions: Vec<StatusTransition>,
    /// Every refused message, including those refused here (unknown node).
    pub dead_letters: Vec<DeadLetterRow>,
    pub heartbeats_applied: u64,
    pub summaries_inserted: u64,
}

/// A message's claim: the node, org and tenant its subject names.
type Claim<'a> = (&'a str, &'a str, &'a str);

impl Origin {
    fn claim(&self) -> Claim<'_> {
        (&self.node_id, &self.org_id, &self.tenant_id)
    }
}

/// Claims found to name an active node, remembered across batches (shared
/// by a controller's workers) while the admission epoch stays the same: a
/// batch then looks up only the nodes it has not seen, where it looked up
/// every node it mentions. The epoch moves whenever a node is decommissioned,
/// deleted or moved to another org or tenant (a trigger, see the migration
/// `node_admission_epoch`), and a worker that reads a new epoch forgets them
/// all. Read at the start of the batch's transaction, it gives the same
/// guarantee as the lookup did: a change committed before the batch began is
/// seen.
#[derive(Default)]
pub struct AdmittedClaims(Mutex<AdmittedAt>);

#[derive(Default)]
struct AdmittedAt {
    epoch: i64,
    /// Node id to its (org, tenant): a node id names one node.
    nodes: HashMap<String, (String, String)>,
}

/// A bound on what is remembered (about 100 bytes per node).
const ADMITTED_MAX: usize = 1_000_000;

impl AdmittedClaims {
    fn lock(&self) -> std::sync::MutexGuard<'_, AdmittedAt> {
        // A worker that panicked holding the lock left a consistent map.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The claims not known to be admitted at `epoch`.
    fn unknown<'a>(&self, epoch: i64, claims: &[Claim<'a>]) -> Vec<Claim<'a>> {
        let mut at = self.lock();
        if epoch > at.epoch {
            at.epoch = epoch;
            at.nodes.clear();
        }
        if epoch != at.epoch {
            return claims.to_vec();
        }
        claims
            .iter()
            .filter(|(node, org, tenant)| {
                at.nodes
                    .get(*node)
                    .is_none_or(|(o, t)| o != org || t != tenant)
            })
            .copied()
            .collect()
    }

    /// Remember claims found admitted by a lookup made at `epoch`.
    fn remember(&self, epoch: i64, admitted: impl Iterator<Item = (String, String, String)>) {
        let mut at = self.lock();
        if epoch != at.epoch {
            return;
        }
        for (node, org, tenant) in admitted {
            if at.nodes.len() >= ADMITTED_MAX {
                at.nodes.clear();
            }
            at.nodes.insert(node, (org, tenant));
        }
    }
}

async fn admission_epoch(tx: &mut Transaction<'_, Postgres>) -> Result<i64, DbError> {
    Ok(sqlx::query_scalar("SELECT epoch FROM node_admission_epoch")
        .fetch_one(tx.as_mut())
        .await?)
}

/// The claims of a batch that name no active node in that org and tenant.
/// Only these come back: reading every node's scope back (four strings per
/// node per batch) was an eighth of the controller's ingest CPU, to find
/// what is almost always nothing.
///
/// With `lock`, the claimed nodes' rows (the ones heartbeats update) are
/// locked in id order, so concurrent workers never deadlock, and the check
/// reads the locked rows. Nodes that only get summary rows are checked
/// without a lock (a row lock is a tuple write and a WAL record per node, and
/// summaries never update the node row).
async fn claims_refused(
    tx: &mut Transaction<'_, Postgres>,
    claims: &[Claim<'_>],
    lock: bool,
) -> Result<Vec<(String, String, String)>, DbError> {
    if claims.is_empty() {
        return Ok(vec![]);
    }
    // Joins on UNNEST, not `id = ANY($1)`: measured here, the planner ran
    // the ANY form as a sequential scan testing every row against the whole
    // array (10k nodes x 1000 ids: 15-20 s per batch under load), while the
    // join probes the primary key once per id.
    let sql = if lock {
        "SELECT c.node_id, c.org_id, c.tenant_id
         FROM UNNEST($1::text[], $2::text[], $3::text[]) AS c(node_id, org_id, tenant_id)
         LEFT JOIN (SELECT n.id, n.org_id, n.tenant_id, n.status
                    FROM (SELECT DISTINCT id FROM UNNEST($1::text[]) AS u(id)) u
                    JOIN nodes n ON n.id = u.id
                    ORDER BY n.id FOR UPDATE OF n) l ON l.id = c.node_id
         WHERE l.id IS NULL OR l.org_id <> c.org_id OR l.tenant_id <> c.tenant_id
            OR l.status = 'decommissioned'"
    } else {
        "SELECT c.node_id, c.org_id, c.tenant_id
         FROM UNNEST($1::text[], $2::text[], $3::text[]) AS c(node_id, org_id, tenant_id)
         WHERE NOT EXISTS (SELECT 1 FROM nodes n
                           WHERE n.id = c.node_id AND n.org_id = c.org_id
                             AND n.tenant_id = c.tenant_id AND n.status <> 'decommissioned')"
    };
    let refused = sqlx::query_as(sql)
        .bind(claims.iter().map(|c| c.0).collect::<Vec<_>>())
        .bind(claims.iter().map(|c| c.1).collect::<Vec<_>>())
        .bind(claims.iter().map(|c| c.2).collect::<Vec<_>>())
        .fetch_all(tx.as_mut())
        .await?;
    Ok(refused)
}

/// Commit one batch. Messages whose subject names a node that does not
/// exist in that org and tenant (or was decommissioned) become dead letters.
pub async fn ingest_commit(
    pool: &PgPool,
    batch: IngestBatch,
    policy: OfflinePolicy,
    admitted: &AdmittedClaims,
    sink: &dyn DeadLetterSink,
) -> Result<IngestOutcome, DbError> {
    match ingest_attempt(pool, &batch, policy, admitted, sink, Redelivery::Unexpected).await {
        Err(e) if e.is_unique_violation() => {
            ingest_attempt(pool, &batch, policy, admitted, sink, Redelivery::Absorbed).await
        }
        outcome => outcome,
    }
}

async fn ingest_attempt(
    pool: &PgPool,
    batch: &IngestBatch,
    policy: OfflinePolicy,
    admitted: &AdmittedClaims,
    sink: &dyn DeadLetterSink,
    redelivery: Redelivery,
) -> Result<IngestOutcome, DbError> {
    // Heartbeat nodes are claimed (and locked) first, every other node once.
    let mut updated: Vec<Claim> = batch.heartbeats.iter().map(|h| h.origin.claim()).collect();
    updated.sort_unstable();
    updated.dedup();
    let mut others: Vec<Claim> = batch
        .slo
        .iter()
        .map(|r| &r.period.origin)
        .chain(batch.usage.iter().map(|r| &r.period.origin))
        .chain(batch.events.iter().map(|r| &r.period.origin))
        .map(Origin::claim)
        .collect();
    others.sort_unstable();
    others.dedup();
    others.retain(|c| updated.binary_search(c).is_err());

    let mut tx = pool.begin().await?;
    let epoch = admission_epoch(&mut tx).await?;
    let mut refused = claims_refused(&mut tx, &updated, true).await?;
    let unknown = admitted.unknown(epoch, &others);
    let refused_others = claims_refused(&mut tx, &unknown, false).await?;
    refused.extend(refused_others);
    refused.sort_unstable();
    let is_refused = |claim: &Claim| {
        refused
            .binary_search_by(|(node, org, tenant)| {
                (node.as_str(), org.as_str(), tenant.as_str()).cmp(claim)
            })
            .is_ok()
    };
    admitted.remember(
        epoch,
        updated
            .iter()
            .chain(&unknown)
            .filter(|c| !is_refused(c))
            .map(|&(node, org, tenant)| (node.to_owned(), org.to_owned(), tenant.to_owned())),
    );
    let mut dead = batch.dead_letters.clone();
    let mut admit = |origin: &Origin| -> bool {
        let ok = !is_refused(&origin.claim());
        if !ok && sink.keep(&origin.org_id) {
            dead.push(DeadLetterRow {
                stream_seq: origin.stream_seq,
                org_id: origin.org_id.clone(),
                subject: origin.subject.clone(),
                reason: "unknown_node".into(),
                detail: format!(
                    "no active node {} in org {} tenant {}",
                    origin.node_id, origin.org_id, origin.tenant_id
                ),
                content: sink.content(origin.stream_seq),
            });
        }
        ok
    };
    let heartbeats: Vec<&HeartbeatRow> = batch
        .heartbeats
        .iter()
        .filter(|h| admit(&h.origin))
        .collect();
    let slo: Vec<&SloRow> = batch
        .slo
        .iter()
        .filter(|r| admit(&r.period.origin))
        .collect();
    let usage: Vec<&UsageRow> = batch
        .usage
        .iter()
        .filter(|r| admit(&r.period.origin))
        .collect();
    let events: Vec<&EnforcementRow> = batch
        .events
        .iter()
        .filter(|r| admit(&r.period.origin))
        .collect();

    let mut outcome = IngestOutcome::default();
    let folded = slo_labels_fold(&mut tx, &slo).await?;
    let slo: Vec<&SloRow> = folded.iter().collect();
    let (applied, transitions, changes) = heartbeats_apply(&mut tx, &heartbeats, policy).await?;
    outcome.heartbeats_applied = applied;
    outcome.summaries_inserted =
        summaries::all_insert(&mut tx, &slo, &usage, &events, redelivery).await?;
    dead_letters_insert(&mut tx, &dead).await?;
    let transitions =
        crate::flapping::transitions_gate(&mut tx, transitions, policy.flapping).await?;
    transitions_record(&mut tx, &transitions).await?;
    changes_record(&mut tx, &changes).await?;
    tx.commit().await?;
    outcome.transitions = transitions;
    outcome.dead_letters = dead;
    Ok(outcome)
}

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

async fn heartbeats_apply(
    tx: &mut Transaction<'_, Postgres>,
    rows: &[&HeartbeatRow],
    policy: OfflinePolicy,
) -> Result<(u64, Vec<StatusTransition>, Vec<NodeChange>), DbError> {
    if rows.is_empty() {
        return Ok((0, vec![], vec![]));
    }
    macro_rules! col {
        ($e:expr) => {
            rows.iter().map($e).collect::<Vec<_>>()
        };
    }
    let updated: Vec<HeartbeatApplied> = sqlx::query_as(
        "UPDATE nodes n SET
             status = i.new_status,
             status_changed_at = CASE WHEN i.new_status <> old.status THEN now() ELSE old.status_changed_at END,
             last_seen_at = i.seen_at,
             last_sent_at = i.sent_at,
             last_seq = i.seq,
             interval_secs = i.interval_secs,
             stale_after = CASE WHEN i.health = 'stopping' THEN NULL
                                ELSE i.seen_at + make_interval(secs => i.interval_secs * 2) END,
             offline_after = CASE WHEN i.health = 'stopping' THEN NULL
                                  ELSE i.seen_at + make_interval(secs => i.interval_secs * $20 + $21) END,
             agent_version = i.agent_version,
             policy_version = i.policy_version,
             last_policy_sync_at = i.last_policy_sync_at,
             last_evidence_batch_at = i.last_evidence_batch_at,
             key_id = i.key_id,
             key_warning = (SELECT k.status FROM signing_keys k
                            WHERE k.key_id = i.key_id AND k.org_id = n.org_id
                              AND k.status <> 'active'),
             slo_counters = i.slo_counters,
             host_os = i.host_os, host_kernel = i.host_kernel, host_arch = i.host_arch,
             host_cpus = i.host_cpus, host_memory_bytes = i.host_memory_bytes,
             host_uptime_secs = i.host_uptime_secs,
             spool_depth = i.spool_depth, spool_dropped = i.spool_dropped,
             policy_rejected = i.policy_rejected
         FROM (
             SELECT u.*, CASE u.health WHEN 'stopping' THEN 'offline'
                                       WHEN 'degraded' THEN 'degraded'
                                       ELSE 'online' END AS new_status,
                    -- The broker's receive time, never later than now (a
                    -- broker clock ahead of the database's gains nothing).
                    LEAST(now(), COALESCE(u.received_at, now())) AS seen_at
             FROM UNNEST($1::text[], $2::bigint[], $3::timestamptz[], $4::text[], $5::text[],
                         $6::int[], $7::text[], $8::timestamptz[], $9::timestamptz[], $10::text[],
                         $11::jsonb[], $12::text[], $13::text[], $14::text[], $15::int[],
                         $16::bigint[], $17::bigint[], $18::bigint[], $19::bigint[],
                         $22::timestamptz[], $23::text[])
                  AS u(node_id, seq, sent_at, health, agent_version, interval_secs, policy_version,
                       last_policy_sync_at, last_evidence_batch_at, key_id, slo_counters, host_os,
                       host_kernel, host_arch, host_cpus, host_memory_bytes, host_uptime_secs,
                       spool_depth, spool_dropped, received_at, policy_rejected)
         ) i, nodes old
         WHERE n.id = i.node_id AND old.id = n.id AND i.seq > n.last_seq
           AND n.status <> 'decommissioned'
         RETURNING n.id, n.org_id, n.tenant_id, old.status, n.status AS status_new, i.health,
                   old.policy_version, n.policy_version AS policy_version_new,
                   old.key_warning, n.key_warning AS key_warning_new, n.key_id,
                   old.policy_rejected, n.policy_rejected AS policy_rejected_new",
    )
    .bind(col!(|r| r.origin.node_id.clone()))
    .bind(col!(|r| r.seq))
    .bind(col!(|r| r.sent_at))
    .bind(col!(|r| r.health.clone()))
    .bind(col!(|r| r.agent_version.clone()))
    .bind(col!(|r| r.interval_secs))
    .bind(col!(|r| r.policy_version.clone()))
    .bind(col!(|r| r.last_policy_sync_at))
    .bind(col!(|r| r.last_evidence_batch_at))
    .bind(col!(|r| r.key_id.clone()))
    .bind(col!(|r| r.slo_counters.clone()))
    .bind(col!(|r| r.host_os.clone()))
    .bind(col!(|r| r.host_kernel.clone()))
    .bind(col!(|r| r.host_arch.clone()))
    .bind(col!(|r| r.host_cpus))
    .bind(col!(|r| r.host_memory_bytes))
    .bind(col!(|r| r.host_uptime_secs))
    .bind(col!(|r| r.spool_depth))
    .bind(col!(|r| r.spool_dropped))
    .bind(policy.intervals)
    .bind(policy.grace_secs)
    .bind(col!(|r| r.received_at))
    .bind(col!(|r| r.policy_rejected.clone()))
    .fetch_all(tx.as_mut())
    .await?;
    let applied = updated.len() as u64;
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

async fn dead_letters_insert(
    tx: &mut Transaction<'_, Postgres>,
    rows: &[DeadLetterRow],
) -> Result<(), DbError> {
    if rows.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO dead_letters (stream_seq, org_id, subject, reason, detail, headers, body, body_size)
         SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[],
                              $6::jsonb[], $7::bytea[], $8::bigint[])
         ON CONFLICT (stream_seq) DO NOTHING",
    )
    .bind(rows.iter().map(|r| r.stream_seq).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.org_id.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.subject.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.reason.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.detail.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.content.headers.clone()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.content.body.as_slice()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.content.body_size).collect::<Vec<_>>())
    .execute(tx.as_mut())
    .await?;
    Ok(())
}

/// One org's ingest counters to add to the current hour.
#[derive(Debug, Clone, Default)]
pub struct OrgIngestCounts {
    pub org_id: String,
    pub accepted: u64,
    pub throttled_node: u64,
    pub throttled_org: u64,
    pub dead_letters_kept: u64,
    pub dead_letters_dropped: u64,
}

/// Add counters to `org_ingest_counters` (current UTC hour).
pub async fn org_counters_add(pool: &PgPool, rows: &[OrgIngestCounts]) -> Result<(), DbError> {
    if rows.is_empty() {
        return Ok(());
    }
    let n = |f: fn(&OrgIngestCounts) -> u64| {
        rows.iter()
            .map(|r| i64::try_from(f(r)).unwrap_or(i64::MAX))
            .collect::<Vec<_>>()
    };
    sqlx::query(
        "INSERT INTO org_ingest_counters
             (org_id, hour, accepted, throttled_node, throttled_org, dead_letters_kept, dead_letters_dropped)
         SELECT u.org_id, date_trunc('hour', now()), u.a, u.tn, u.torg, u.dk, u.dd
         FROM UNNEST($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[])
              AS u(org_id, a, tn, torg, dk, dd)
         ORDER BY u.org_id
         ON CONFLICT (org_id, hour) DO UPDATE SET
             accepted = org_ingest_counters.accepted + EXCLUDED.accepted,
             throttled_node = org_ingest_counters.throttled_node + EXCLUDED.throttled_node,
             throttled_org = org_ingest_counters.throttled_org + EXCLUDED.throttled_org,
             dead_letters_kept = org_ingest_counters.dead_letters_kept + EXCLUDED.dead_letters_kept,
             dead_letters_dropped = org_ingest_counters.dead_letters_dropped + EXCLUDED.dead_letters_dropped",
    )
    .bind(rows.iter().map(|r| r.org_id.as_str()).collect::<Vec<_>>())
    .bind(n(|r| r.accepted))
    .bind(n(|r| r.throttled_node))
    .bind(n(|r| r.throttled_org))
    .bind(n(|r| r.dead_letters_kept))
    .bind(n(|r| r.dead_letters_dropped))
    .execute(pool)
    .await?;
    Ok(())
}

/// One hour of an org's ingest counters.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct OrgIngestHour {
    pub hour: DateTime<Utc>,
    pub accepted: i64,
    pub throttled_node: i64,
    pub throttled_org: i64,
    pub dead_letters_kept: i64,
    pub dead_letters_dropped: i64,
}

/// An org's ingest counters per hour since `from`, oldest first.
pub async fn org_counters(
    pool: &PgPool,
    org: &str,
    from: DateTime<Utc>,
) -> Result<Vec<OrgIngestHour>, DbError> {
    Ok(sqlx::query_as(
        "SELECT hour, accepted, throttled_node, throttled_org, dead_letters_kept, dead_letters_dropped
         FROM org_ingest_counters WHERE org_id = $1 AND hour >= $2 ORDER BY hour",
    )
    .bind(org)
    .bind(from)
    .fetch_all(pool)
    .await?)
}

/// Distinct (component, operation) labels one node may have in one hour of
/// SLO rollups; labels past the limit are folded into `other`/`other` ...
pub const SLO_LABELS_PER_NODE_HOUR: usize = 64;
/// ... and distinct outcomes, past which an outcome is folded into `other`.
pub const SLO_OUTCOMES_PER_NODE_HOUR: usize = 16;
pub const SLO_OTHER: &str = "other";

#[derive(Default)]
struct LabelSet {
    pairs: std::collections::HashSet<(String, String)>,
    outcomes: std::collections::HashSet<String>,
}

/// Fold the labels of `counts` past the limits of `known` (which grows),
/// and merge rows that became equal.
fn fold_counts(counts: &mut Vec<SloCount>, known: &mut LabelSet) {
    let mut changed = false;
    for c in counts.iter_mut() {
        let pair = (c.component.clone(), c.operation.clone());
        let is_other = c.component == SLO_OTHER && c.operation == SLO_OTHER;
        if !is_other && !known.pairs.contains(&pair) {
            if known.pairs.len() < SLO_LABELS_PER_NODE_HOUR {
                known.pairs.insert(pair);
            } else {
                c.component = SLO_OTHER.into();
                c.operation = SLO_OTHER.into();
                changed = true;
            }
        }
        if c.outcome != SLO_OTHER && !known.outcomes.contains(&c.outcome) {
            if known.outcomes.len() < SLO_OUTCOMES_PER_NODE_HOUR {
                known.outcomes.insert(c.outcome.clone());
            } else {
                c.outcome = SLO_OTHER.into();
                changed = true;
            }
        }
    }
    if changed {
        let mut merged: Vec<SloCount> = Vec::with_capacity(counts.len());
        for c in counts.drain(..) {
            match merged.iter_mut().find(|m| {
                m.component == c.component && m.operation == c.operation && m.outcome == c.outcome
            }) {
                Some(m) => m.count = m.count.saturating_add(c.count),
                None => merged.push(c),
            }
        }
        *counts = merged;
    }
}

/// Bound the SLO labels per node and hour against what the rollups already
/// hold: a node inventing new component/operation labels (or outcomes)
/// cannot grow `slo_hourly` past the limits; the excess counts under
/// `other`.
async fn slo_labels_fold(
    tx: &mut Transaction<'_, Postgres>,
    rows: &[&SloRow],
) -> Result<Vec<SloRow>, DbError> {
    if rows.is_empty() {
        return Ok(vec![]);
    }
    let mut keys: Vec<(&str, DateTime<Utc>)> = rows
        .iter()
        .map(|r| {
            (
                r.period.origin.node_id.as_str(),
                crate::telemetry::rollup_hour(r.period.period_start),
            )
        })
        .collect();
    keys.sort_unstable();
    keys.dedup();
    // One worker at a time per node and hour (transaction-scoped advisory
    // locks, taken in one order by every worker), so concurrent batches
    // cannot each add up to the limit.
    sqlx::query(
        "SELECT count(pg_advisory_xact_lock(l.k)) FROM (
             SELECT DISTINCT hashtextextended(k.node_id || '|' || k.hour::text, 18) AS k
             FROM UNNEST($1::text[], $2::timestamptz[]) AS k(node_id, hour)
             ORDER BY 1) l",
    )
    .bind(keys.iter().map(|k| k.0).collect::<Vec<_>>())
    .bind(keys.iter().map(|k| k.1).collect::<Vec<_>>())
    .execute(tx.as_mut())
    .await?;
    let stored: Vec<(String, DateTime<Utc>, String, String, String)> = sqlx::query_as(
        "SELECT s.node_id, s.hour, s.component, s.operation, s.outcome
         FROM UNNEST($1::text[], $2::timestamptz[]) AS k(node_id, hour)
         JOIN slo_hourly s ON s.node_id = k.node_id AND s.hour = k.hour",
    )
    .bind(keys.iter().map(|k| k.0).collect::<Vec<_>>())
    .bind(keys.iter().map(|k| k.1).collect::<Vec<_>>())
    .fetch_all(tx.as_mut())
    .await?;
    let mut known: HashMap<(String, DateTime<Utc>), LabelSet> = HashMap::new();
    for (node, hour, component, operation, outcome) in stored {
        let set = known.entry((node, hour)).or_default();
        if !(component == SLO_OTHER && operation == SLO_OTHER) {
            set.pairs.insert((component, operation));
        }
        if outcome != SLO_OTHER {
            set.outcomes.insert(outcome);
        }
    }
    Ok(rows
        .iter()
        .map(|r| {
            let mut row = (*r).clone();
            let key = (
                row.period.origin.node_id.clone(),
                crate::telemetry::rollup_hour(row.period.period_start),
            );
            fold_counts(&mut row.counts, known.entry(key).or_default());
            row
        })
        .collect())
}

/// Dead letters by reason (for `/metrics`-style reporting and tests).
pub async fn dead_letter_counts(pool: &PgPool) -> Result<BTreeMap<String, i64>, DbError> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT reason, count(*) FROM dead_letters GROUP BY reason")
            .fetch_all(pool)
            .await?;
    Ok(rows.into_iter().collect())
}
