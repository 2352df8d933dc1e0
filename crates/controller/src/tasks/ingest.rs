//! Ingest workers: pull a batch from the durable consumer, decode and
//! validate every message, commit the batch in one transaction, send refused
//! messages to the dead-letter stream, then ack. Nothing is acked before its
//! commit, so a crash anywhere means redelivery, which the writes absorb.
//!
//! Pulling and committing overlap: pullers fill one queue of batches that
//! every committing worker takes from, so the next batch is pulled while the
//! current ones commit (one after the other, the cores sat idle while a
//! worker waited on the bus or on its commit), and a batch pulled ahead goes
//! to whichever worker is free first, never waiting behind one slow commit.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer::PullConsumer};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use ritma_bus::streams::{ack_sequence_and_time, ack_stream_sequence};
use ritma_db::ingest::{
    AdmittedClaims, DEAD_LETTER_HEADER_VALUE_MAX, DEAD_LETTER_HEADERS_MAX, DeadLetterContent,
    DeadLetterRow, DeadLetterSink, EnforcementRow, HeartbeatRow, IngestBatch, OfflinePolicy,
    Origin, PeriodRow, SloRow, UsageRow, heartbeats_coalesce, ingest_commit,
};
use ritma_protocol::{NodeSubject, Telemetry, subjects};
use sqlx::PgPool;
use tokio::sync::{Mutex, Notify, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::backoff;
use super::budget::{Budgets, subject_keys};

/// Why a batch was not committed and acked (it is nakked and redelivered).
#[derive(Debug, thiserror::Error)]
enum BatchError {
    #[error("a delivered message has no JetStream ack subject")]
    NoAckSubject,
    #[error("database: {0}")]
    Database(#[from] ritma_db::DbError),
    #[error("dead-letter stream: {0}")]
    DeadLetter(#[from] async_nats::jetstream::context::PublishError),
}

/// Counters shared with `/readyz` and the metrics endpoint.
#[derive(Default)]
pub struct IngestStats {
    pub batches: AtomicU64,
    pub messages: AtomicU64,
    pub dead_letters: AtomicU64,
    pub db_failures: AtomicU64,
    pub db_ok: AtomicBool,
}

/// A batch is closed this long after its pull request expired on the
/// server: by then the request's deliveries have almost always arrived.
const PULL_SETTLE: Duration = Duration::from_millis(5);
/// Deliveries of the request that still arrive up to this long after its
/// expiry (scheduling or network slack) are not dropped: they join the
/// worker's next batch. Anything later is redelivered after the ack wait,
/// and the idempotent writes absorb it.
const PULL_EXPIRY_MARGIN: Duration = Duration::from_secs(1);

/// Late deliveries of closed pull requests, for the worker's next batch.
struct Stragglers {
    tx: mpsc::UnboundedSender<jetstream::Message>,
    rx: mpsc::UnboundedReceiver<jetstream::Message>,
}

impl Stragglers {
    fn new() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self { tx, rx }
    }
}

/// Batches pulled and not yet taken by a worker.
type BatchQueue = mpsc::Receiver<Vec<jetstream::Message>>;

/// Pulls batches from the durable consumer into the workers' queue.
struct BatchPuller {
    consumer: PullConsumer,
    batch_size: usize,
    batch_wait: Duration,
    stragglers: Stragglers,
}

#[derive(Clone)]
pub struct IngestWorker {
    pub consumer: PullConsumer,
    pub js: jetstream::Context,
    pub pool: PgPool,
    pub batch_size: usize,
    pub batch_wait: Duration,
    pub policy: OfflinePolicy,
    pub stats: Arc<IngestStats>,
    pub outbox_wake: Arc<Notify>,
    /// Shared by the workers: nodes already found active.
    pub admitted: Arc<AdmittedClaims>,
    /// Per-node and per-org budgets (fair share), shared with the API.
    pub budgets: Arc<Budgets>,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Tells the console which orgs' rollups grew.
    pub rollup_cue: Arc<super::rollup_cue::RollupCue>,
}

fn clamp_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// What is kept of a message's headers in a dead letter: `{name: [values]}`,
/// at most [`DEAD_LETTER_HEADERS_MAX`] names, each value cut to
/// [`DEAD_LETTER_HEADER_VALUE_MAX`] bytes (on a character boundary).
pub fn headers_json(headers: Option<&async_nats::HeaderMap>) -> Option<serde_json::Value> {
    let headers = headers?;
    let mut names: Vec<_> = headers.iter().collect();
    names.sort_by(|a, b| AsRef::<str>::as_ref(a.0).cmp(AsRef::<str>::as_ref(b.0)));
    let map: serde_json::Map<String, serde_json::Value> = names
        .into_iter()
        .take(DEAD_LETTER_HEADERS_MAX)
        .map(|(name, values)| {
            let values = values
                .iter()
                .take(DEAD_LETTER_HEADERS_MAX)
                .map(|v| serde_json::Value::String(cut(v.as_str(), DEAD_LETTER_HEADER_VALUE_MAX)))
                .collect();
            (
                cut(name.as_ref(), DEAD_LETTER_HEADER_VALUE_MAX),
                serde_json::Value::Array(values),
            )
        })
        .collect();
    Some(serde_json::Value::Object(map))
}

fn cut(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// Turn one message into a row of the batch, or a dead letter with its
/// reason. `received_at` is the broker's timestamp of the message.
pub fn classify(
    stream_seq: i64,
    received_at: Option<DateTime<Utc>>,
    subject: &str,
    headers: Option<&async_nats::HeaderMap>,
    body: &[u8],
    batch: &mut IngestBatch,
) {
    let dead = |reason: &str, detail: String| DeadLetterRow {
        stream_seq,
        org_id: cut(subject_keys(subject).0, 64),
        subject: subject.chars().take(256).collect(),
        reason: reason.into(),
        detail: detail.chars().take(1000).collect(),
        content: DeadLetterContent {
            headers: headers_json(headers),
            ..DeadLetterContent::of_body(body)
        },
    };
    let (scope, kind) = match NodeSubject::parse_telemetry(subject) {
        Ok(x) => x,
        Err(e) => return batch.dead_letters.push(dead("bad_subject", e.to_string())),
    };
    let message = match Telemetry::decode(kind, body) {
        Ok(m) => m,
        Err(e) => return batch.dead_letters.push(dead(e.reason(), e.to_string())),
    };
    if message.node_id() != &scope.node {
        return batch.dead_letters.push(dead(
            "node_mismatch",
            format!(
                "body names node {} but the subject is node {}",
                message.node_id(),
                scope.node
            ),
        ));
    }
    let origin = Origin {
        stream_seq,
        subject: subject.to_owned(),
        org_id: scope.org.into(),
        tenant_id: scope.tenant.into(),
        node_id: scope.node.into(),
    };
    // The origin moves into its row (one message, one row): no copies.
    let period = |origin, seq: u64, sent_at, start, end| PeriodRow {
        origin,
        seq: clamp_i64(seq),
        sent_at,
        period_start: start,
        period_end: end,
    };
    match message {
        Telemetry::Heartbeat(h) => batch
            .heartbeats
            .push(heartbeat_row(origin, received_at, *h)),
        Telemetry::Slo(s) => batch.slo.push(SloRow {
            period: period(origin, s.seq, s.sent_at, s.period_start, s.period_end),
            counts: s.counts,
        }),
        Telemetry::Usage(u) => batch.usage.push(UsageRow {
            period: period(origin, u.seq, u.sent_at, u.period_start, u.period_end),
            decisions: clamp_i64(u.decisions),
            dig_files: clamp_i64(u.dig_files),
            storage_bytes: clamp_i64(u.storage_bytes),
            snapshot_exports: clamp_i64(u.snapshot_exports),
        }),
        Telemetry::Events(e) => batch.events.push(EnforcementRow {
            period: period(origin, e.seq, e.sent_at, e.period_start, e.period_end),
            allow: clamp_i64(e.allow),
            deny: clamp_i64(e.deny),
            throttle: clamp_i64(e.throttle),
            isolate: clamp_i64(e.isolate),
        }),
    }
}

/// The batch's messages by stream sequence, for dead letters found at
/// commit (unknown nodes), and the budgets that decide which are kept.
struct BatchSink<'a> {
    messages: &'a [jetstream::Message],
    budgets: &'a Budgets,
}

impl DeadLetterSink for BatchSink<'_> {
    fn keep(&self, org: &str) -> bool {
        self.budgets.gate().keep_dead_letter(org)
    }

    fn content(&self, stream_seq: i64) -> DeadLetterContent {
        // Rare (a claim of a node that is not there): a scan of the batch.
        self.messages
            .iter()
            .find(|m| stream_sequence(m) == Some(stream_seq))
            .map(|m| DeadLetterContent {
                headers: headers_json(m.headers.as_ref()),
                ..DeadLetterContent::of_body(&m.payload)
            })
            .unwrap_or_default()
    }
}

impl BatchPuller {
    /// Pull batches until shutdown or until the workers are gone.
    async fn run(
        mut self,
        batches: mpsc::Sender<Vec<jetstream::Message>>,
        shutdown: CancellationToken,
    ) {
        let mut failures = 0u32;
        while !shutdown.is_cancelled() {
            // Room in the queue first, then the pull: batches held unacked
            // ahead of the workers never exceed the queue's capacity.
            let slot = tokio::select! {
                _ = shutdown.cancelled() => break,
                slot = batches.reserve() => match slot {
                    Ok(slot) => slot,
                    Err(_) => break,
                },
            };
            let messages = tokio::select! {
                _ = shutdown.cancelled() => break,
                m = self.pull() => m,
            };
            match messages {
                Ok(m) if m.is_empty() => {}
                Ok(m) => {
                    failures = 0;
                    slot.send(m);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "pull from JetStream failed");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(backoff(failures.min(5))) => {}
                    }
                    failures += 1;
                }
            }
        }
    }

    async fn pull(&mut self) -> Result<Vec<jetstream::Message>, String> {
        let stragglers = &mut self.stragglers;
        let mut out = Vec::with_capacity(self.batch_size.min(1024));
        while let Ok(m) = stragglers.rx.try_recv() {
            out.push(m);
        }
        if out.len() >= self.batch_size {
            return Ok(out);
        }
        let mut batch = match self
            .consumer
            .batch()
            .max_messages(self.batch_size - out.len())
            .expires(self.batch_wait)
            .messages()
            .await
        {
            Ok(b) => b,
            // Late deliveries in hand still make a batch; the request is
            // retried on the next pull.
            Err(_) if !out.is_empty() => return Ok(out),
            Err(e) => return Err(e.to_string()),
        };
        // The batch ends at the server's expiry status, but nats-server 2.9
        // was seen not to send it when a request expired part-filled under
        // load (a direct probe gets the 408 from 2.9.10 and 2.15.1 alike):
        // the client would wait out its own guard (expiry + 5 s) with those
        // messages in hand, uncommitted (publish → commit p99 was 5 s at any
        // rate). So the batch is closed just after the request expired on
        // the server, and whatever it still delivers is picked up in the
        // background for the next batch instead of holding this one.
        let expired = tokio::time::Instant::now() + self.batch_wait;
        loop {
            match tokio::time::timeout_at(expired + PULL_SETTLE, batch.next()).await {
                Ok(Some(Ok(m))) => out.push(m),
                Ok(Some(Err(e))) => {
                    if out.is_empty() {
                        return Err(e.to_string());
                    }
                    break;
                }
                Ok(None) => break,
                Err(_) => {
                    let late = stragglers.tx.clone();
                    tokio::spawn(async move {
                        while let Ok(Some(Ok(m))) =
                            tokio::time::timeout_at(expired + PULL_EXPIRY_MARGIN, batch.next())
                                .await
                        {
                            if late.send(m).is_err() {
                                break;
                            }
                        }
                    });
                    break;
                }
            }
        }
        Ok(out)
    }
}

impl IngestWorker {
    /// Start `workers` committing workers and as many pullers, sharing one
    /// queue of up to `workers` batches pulled ahead.
    pub fn spawn(self, workers: usize, tasks: &mut JoinSet<()>, shutdown: &CancellationToken) {
        let workers = workers.max(1);
        let (tx, rx) = mpsc::channel(workers);
        let queue = Arc::new(Mutex::new(rx));
        for _ in 0..workers {
            let puller = BatchPuller {
                consumer: self.consumer.clone(),
                batch_size: self.batch_size,
                batch_wait: self.batch_wait,
                stragglers: Stragglers::new(),
            };
            tasks.spawn(puller.run(tx.clone(), shutdown.clone()));
            tasks.spawn(self.clone().run(queue.clone(), shutdown.clone()));
        }
    }

    async fn run(self, queue: Arc<Mutex<BatchQueue>>, shutdown: CancellationToken) {
        let mut failures = 0u32;
        loop {
            let waited_at = tokio::time::Instant::now();
            let next = async { queue.lock().await.recv().await };
            let messages = tokio::select! {
                _ = shutdown.cancelled() => break,
                m = next => match m {
                    Some(m) => m,
                    None => break,
                },
            };
            let wait_ms = waited_at.elapsed().as_secs_f64() * 1000.0;
            let started = tokio::time::Instant::now();
            match self.process(&messages).await {
                Ok(()) => {
                    self.metrics
                        .ingest_commit_seconds
                        .observe(started.elapsed().as_secs_f64());
                    self.metrics
                        .ingest_batch_messages
                        .observe(messages.len() as f64);
                    self.metrics.ingest_database_ok.set(1);
                    tracing::debug!(
                        messages = messages.len(),
                        wait_ms,
                        process_ms = started.elapsed().as_secs_f64() * 1000.0,
                        "batch committed and acked"
                    );
                    failures = 0;
                    self.stats.db_ok.store(true, Ordering::Relaxed);
                }
                Err(e) => {
                    failures += 1;
                    self.stats.db_ok.store(false, Ordering::Relaxed);
                    self.stats.db_failures.fetch_add(1, Ordering::Relaxed);
                    self.metrics.ingest_commit_failures.inc();
                    self.metrics.ingest_database_ok.set(0);
                    let delay = backoff(failures);
                    tracing::warn!(error = %e, ?delay, "batch not committed; will be redelivered");
                    for m in &messages {
                        let _ = m.ack_with(AckKind::Nak(Some(delay))).await;
                    }
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
        // Batches pulled ahead and not committed go back to the consumer at
        // once (a nak), not after the ack wait, for the other controllers.
        while let Ok(batch) = queue.lock().await.try_recv() {
            for m in &batch {
                let _ = m.ack_with(AckKind::Nak(None)).await;
            }
        }
    }

    async fn process(&self, messages: &[jetstream::Message]) -> Result<(), BatchError> {
        // Budgets first, before any decoding: a message over its node's or
        // org's budget costs only this lookup and its ack. The lock is held
        // for the lookups only, not for the decoding (workers decode in
        // parallel).
        let mut admitted = Vec::with_capacity(messages.len());
        {
            let mut gate = self.budgets.gate();
            for m in messages {
                let (seq, at) = m
                    .reply
                    .as_deref()
                    .and_then(ack_sequence_and_time)
                    .ok_or(BatchError::NoAckSubject)?;
                let (org, node) = subject_keys(m.subject.as_str());
                if gate.admit(org, node) {
                    admitted.push((m, seq, at));
                }
            }
        }
        let mut batch = IngestBatch::default();
        for (m, seq, at) in admitted {
            classify(
                clamp_i64(seq),
                at.map(DateTime::from_timestamp_nanos),
                m.subject.as_str(),
                m.headers.as_ref(),
                &m.payload,
                &mut batch,
            );
        }
        if !batch.dead_letters.is_empty() {
            let mut gate = self.budgets.gate();
            batch
                .dead_letters
                .retain(|dl| gate.keep_dead_letter(&dl.org_id));
        }
        batch.heartbeats = heartbeats_coalesce(std::mem::take(&mut batch.heartbeats));
        let sink = BatchSink {
            messages,
            budgets: &self.budgets,
        };
        // The orgs whose hourly rollups this batch grows (usage, enforcement).
        let rolled_up: std::collections::BTreeSet<String> = batch
            .usage
            .iter()
            .map(|r| &r.period.origin.org_id)
            .chain(batch.events.iter().map(|r| &r.period.origin.org_id))
            .cloned()
            .collect();
        let outcome = ingest_commit(&self.pool, batch, self.policy, &self.admitted, &sink).await?;
        if !outcome.transitions.is_empty() {
            self.outbox_wake.notify_one();
        }
        // Keep what the table keeps of each refused message on the dead-letter
        // stream too (idempotent by stream sequence), before acking it: its
        // headers, reason, original size and the first 4 KiB of its body.
        // Published together, then the acks awaited together.
        let mut acks = Vec::with_capacity(outcome.dead_letters.len());
        for dl in &outcome.dead_letters {
            let mut headers = async_nats::HeaderMap::new();
            if let Some(serde_json::Value::Object(original)) = &dl.content.headers {
                for (name, values) in original {
                    // The stream's own headers are not replayed from the original.
                    if name.starts_with("Nats-") {
                        continue;
                    }
                    for v in values.as_array().into_iter().flatten() {
                        if let (Ok(n), Some(v)) =
                            (async_nats::HeaderName::try_from(name.as_str()), v.as_str())
                        {
                            headers.append(n, v.replace(['\r', '\n'], " ").as_str());
                        }
                    }
                }
            }
            headers.insert("Nats-Msg-Id", format!("dlq:{}", dl.stream_seq).as_str());
            headers.insert("Ritma-Reason", dl.reason.as_str());
            headers.insert(
                "Ritma-Detail",
                dl.detail.replace(['\r', '\n'], " ").as_str(),
            );
            headers.insert("Ritma-Subject", dl.subject.as_str());
            headers.insert("Ritma-Org", dl.org_id.as_str());
            headers.insert("Ritma-Stream-Seq", dl.stream_seq.to_string().as_str());
            headers.insert(
                "Ritma-Original-Size",
                dl.content.body_size.to_string().as_str(),
            );
            let ack = self
                .js
                .publish_with_headers(
                    subjects::dead_letter(&dl.reason),
                    headers,
                    dl.content.body.clone().into(),
                )
                .await?;
            acks.push(ack);
            tracing::debug!(reason = %dl.reason, subject = %dl.subject, detail = %dl.detail, "dead letter");
        }
        for ack in acks {
            ack.await?;
        }
        for m in messages {
            if let Err(e) = m.ack().await {
                // The commit stands; a redelivery will be absorbed.
                tracing::warn!(error = %e, "ack failed after commit");
            }
        }
        if !rolled_up.is_empty() {
            self.rollup_cue.touched(rolled_up);
        }
        self.stats.batches.fetch_add(1, Ordering::Relaxed);
        self.stats
            .messages
            .fetch_add(messages.len() as u64, Ordering::Relaxed);
        self.stats
            .dead_letters
            .fetch_add(outcome.dead_letters.len() as u64, Ordering::Relaxed);
        let m = &self.metrics;
        m.ingest_messages.inc_by(messages.len() as u64);
        let rows = |kind| {
            m.ingest_rows
                .get_or_create(&crate::metrics::KindLabel::new(kind))
        };
        rows("heartbeat").inc_by(outcome.heartbeats_applied);
        rows("summary").inc_by(outcome.summaries_inserted);
        for dl in &outcome.dead_letters {
            m.dead_letter(&dl.reason);
        }
        for t in &outcome.transitions {
            m.transition(&t.to);
        }
        Ok(())
    }
}

fn stream_sequence(m: &jetstream::Message) -> Option<i64> {
    ack_stream_sequence(m.reply.as_deref()?).map(clamp_i64)
}

fn heartbeat_row(
    origin: Origin,
    received_at: Option<DateTime<Utc>>,
    h: ritma_protocol::Heartbeat,
) -> HeartbeatRow {
    HeartbeatRow {
        origin,
        seq: clamp_i64(h.seq),
        sent_at: h.sent_at,
        received_at,
        health: serde_json::to_value(h.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| "ok".into()),
        agent_version: h.agent_version,
        interval_secs: i32::try_from(h.interval_secs).unwrap_or(i32::MAX),
        policy_version: h.policy_version,
        last_policy_sync_at: h.last_policy_sync_at,
        last_evidence_batch_at: h.last_evidence_batch_at,
        key_id: h.key_id,
        slo_counters: serde_json::to_value(&h.slo_counters).unwrap_or_default(),
        host_os: h.host.os,
        host_kernel: h.host.kernel,
        host_arch: h.host.arch,
        host_cpus: i32::try_from(h.host.cpus).unwrap_or(i32::MAX),
        host_memory_bytes: clamp_i64(h.host.memory_bytes),
        host_uptime_secs: clamp_i64(h.host.uptime_secs),
        spool_depth: clamp_i64(h.spool.depth),
        spool_dropped: clamp_i64(h.spool.dropped),
        policy_rejected: h.policy_rejected,
    }
}
