//! The ingest workers' write path: one transaction per batch, set-based
//! statements (UNNEST), idempotent on redelivery:
//! - heartbeats update the node row only when their sequence is newer;
//! - summaries are keyed by (node, seq): a batch inserts them plainly, and
//!   a batch that repeats a stored summary is committed again with
//!   ON CONFLICT DO NOTHING (see `summaries::Redelivery`), and the hourly
//!   rollups are summed in the controller (see `summaries`);
//! - dead letters are keyed by their stream sequence.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use ritma_protocol::SloCount;

use crate::DbError;
use crate::outbox::{StatusTransition, changes_record, transitions_record};

mod admission;
mod counters;
mod dead_letters;
mod heartbeats;
mod slo_labels;
mod summaries;

use admission::{admission_epoch, claims_refused};
use dead_letters::dead_letters_insert;
use heartbeats::heartbeats_apply;
use slo_labels::slo_labels_fold;
use summaries::Redelivery;

pub use admission::AdmittedClaims;
pub use counters::{OrgIngestCounts, OrgIngestHour, org_counters, org_counters_add};
pub use dead_letters::{
    DEAD_LETTER_BODY_MAX, DEAD_LETTER_HEADER_VALUE_MAX, DEAD_LETTER_HEADERS_MAX, DeadLetterContent,
    DeadLetterRow, DeadLetterSink, KeepAllDeadLetters, dead_letter_counts,
};
pub use heartbeats::heartbeats_coalesce;
pub use slo_labels::{SLO_LABELS_PER_NODE_HOUR, SLO_OTHER, SLO_OUTCOMES_PER_NODE_HOUR};

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
