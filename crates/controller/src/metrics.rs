//! The controller's Prometheus metrics: one [`Metrics`], held in
//! `AppState::metrics` (an `Arc`) and handed to the tasks, rendered at
//! `/metrics` (see `ritma_runtime::metrics` for the text format and access).
//!
//! Naming: `ritma_` prefix, base units (`_seconds`, `_bytes`), counters end
//! in `_total` (prometheus-client appends it: register counters without it).
//! Labels only take values from a fixed set the code chooses (route
//! templates, statuses, reasons): never a node id, org id or raw path, so an
//! anonymous client cannot grow the series.
//!
//! Adding a metric, e.g. alert deliveries by outcome:
//! 1. a field: `pub alert_deliveries: Family<OutcomeLabel, Counter>,`
//!    (a label struct deriving `EncodeLabelSet`, or a plain `Counter`/`Gauge`);
//! 2. register it in [`Metrics::new`]:
//!    `registry.register("ritma_alert_deliveries", "Alert deliveries by outcome", m.alert_deliveries.clone());`
//! 3. count where it happens, one line:
//!    `state.metrics.alert_deliveries.get_or_create(&OutcomeLabel::new("sent")).inc();`
//! 4. add it to deploy/grafana and deploy/prometheus when operators should see it.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::AtomicU64;

/// How often the JetStream consumer's state is sampled.
pub const CONSUMER_SAMPLE_EVERY: Duration = Duration::from_secs(5);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

impl KindLabel {
    pub fn new(kind: &str) -> Self {
        Self { kind: kind.into() }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutboxLabel {
    pub outbox: String,
}

/// What became of one attempt to deliver an alert notification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryOutcome {
    Delivered,
    /// Failed; tried again later.
    Retry,
    /// Failed for good (permanent error or out of attempts).
    Failed,
}

impl DeliveryOutcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Retry => "retry",
            Self::Failed => "failed",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub method: String,
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteStatusLabel {
    pub method: String,
    pub route: String,
    pub status: String,
}

/// Node status values a transition may name; anything else counts as `other`.
const STATUSES: [&str; 6] = [
    "unseen",
    "online",
    "degraded",
    "stale",
    "offline",
    "decommissioned",
];
/// Dead-letter reasons longer than this, or with other characters than
/// `[a-z0-9_]`, count as `other` (reasons are the code's, but a label must
/// stay bounded whatever a future reason looks like).
const REASON_MAX: usize = 40;

fn histogram(buckets: impl Iterator<Item = f64>) -> Histogram {
    Histogram::new(buckets)
}

pub struct Metrics {
    registry: Arc<Registry>,
    /// Telemetry messages committed and acked by the ingest.
    pub ingest_messages: Counter,
    /// Rows the ingest committed, by kind (`heartbeat`, `summary`).
    pub ingest_rows: Family<KindLabel, Counter>,
    /// Messages per committed batch.
    pub ingest_batch_messages: Histogram,
    /// Time to commit (and ack) one batch.
    pub ingest_commit_seconds: Histogram,
    /// Batches whose commit failed (redelivered later).
    pub ingest_commit_failures: Counter,
    /// 1 while the last batch committed, 0 after a failure.
    pub ingest_database_ok: Gauge,
    /// Messages refused into the dead-letter table and stream, by reason.
    pub dead_letters: Family<ReasonLabel, Counter>,
    /// The ingest consumer's messages not yet delivered.
    pub consumer_pending: Gauge,
    /// Delivered to the controller and not yet acked.
    pub consumer_ack_pending: Gauge,
    /// Messages redelivered at least once.
    pub consumer_redelivered: Gauge,
    /// How far (seconds) the ingest watermark is behind the clock.
    pub reconciler_lag_seconds: Gauge<f64, AtomicU64>,
    /// Node status transitions committed, by the status entered.
    pub state_transitions: Family<KindLabel, Counter>,
    /// API requests by method, route template and status.
    pub api_requests: Family<RouteStatusLabel, Counter>,
    /// API request latency by method and route template.
    pub api_request_seconds: Family<RouteLabel, Histogram>,
    /// Alert delivery attempts by outcome.
    pub alert_deliveries: Family<OutcomeLabel, Counter>,
    /// Rows waiting in each outbox (sampled).
    pub outbox_backlog: Family<OutboxLabel, Gauge>,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let m = Self {
            registry: Arc::new(Registry::default()),
            ingest_messages: Counter::default(),
            ingest_rows: Family::default(),
            ingest_batch_messages: histogram(exponential_buckets(1.0, 2.0, 12)),
            ingest_commit_seconds: histogram(exponential_buckets(0.001, 2.0, 14)),
            ingest_commit_failures: Counter::default(),
            ingest_database_ok: Gauge::default(),
            dead_letters: Family::default(),
            consumer_pending: Gauge::default(),
            consumer_ack_pending: Gauge::default(),
            consumer_redelivered: Gauge::default(),
            reconciler_lag_seconds: Gauge::default(),
            state_transitions: Family::default(),
            api_requests: Family::default(),
            api_request_seconds: Family::new_with_constructor(|| {
                histogram(exponential_buckets(0.0005, 2.0, 14))
            }),
            alert_deliveries: Family::default(),
            outbox_backlog: Family::default(),
        };
        let r = &mut registry;
        r.register(
            "ritma_ingest_messages",
            "Telemetry messages committed and acked",
            m.ingest_messages.clone(),
        );
        r.register(
            "ritma_ingest_rows",
            "Rows committed by the ingest, by kind",
            m.ingest_rows.clone(),
        );
        r.register(
            "ritma_ingest_batch_messages",
            "Messages per committed ingest batch",
            m.ingest_batch_messages.clone(),
        );
        r.register_with_unit(
            "ritma_ingest_commit_duration",
            "Time to commit and ack one ingest batch",
            Unit::Seconds,
            m.ingest_commit_seconds.clone(),
        );
        r.register(
            "ritma_ingest_commit_failures",
            "Ingest batches not committed (redelivered later)",
            m.ingest_commit_failures.clone(),
        );
        r.register(
            "ritma_ingest_database_ok",
            "1 while the last ingest batch committed, 0 after a failure",
            m.ingest_database_ok.clone(),
        );
        r.register(
            "ritma_dead_letters",
            "Messages refused into the dead-letter table and stream, by reason",
            m.dead_letters.clone(),
        );
        r.register(
            "ritma_jetstream_consumer_pending_messages",
            "Ingest consumer: messages not yet delivered",
            m.consumer_pending.clone(),
        );
        r.register(
            "ritma_jetstream_consumer_ack_pending_messages",
            "Ingest consumer: delivered and not yet acked",
            m.consumer_ack_pending.clone(),
        );
        r.register(
            "ritma_jetstream_consumer_redelivered_messages",
            "Ingest consumer: messages redelivered at least once",
            m.consumer_redelivered.clone(),
        );
        r.register_with_unit(
            "ritma_reconciler_lag",
            "How far the ingest watermark is behind the clock",
            Unit::Seconds,
            m.reconciler_lag_seconds.clone(),
        );
        r.register(
            "ritma_state_transitions",
            "Node status transitions committed, by the status entered",
            m.state_transitions.clone(),
        );
        r.register(
            "ritma_api_requests",
            "API requests by method, route template and status",
            m.api_requests.clone(),
        );
        r.register_with_unit(
            "ritma_api_request_duration",
            "API request latency by method and route template",
            Unit::Seconds,
            m.api_request_seconds.clone(),
        );
        r.register(
            "ritma_alert_deliveries",
            "Alert delivery attempts by outcome (delivered, retry, failed)",
            m.alert_deliveries.clone(),
        );
        r.register(
            "ritma_outbox_backlog_rows",
            "Rows waiting in each outbox (state_changes, audit, alert_inbox, alert_deliveries)",
            m.outbox_backlog.clone(),
        );
        let info: prometheus_client::metrics::info::Info<Vec<(String, String)>> =
            prometheus_client::metrics::info::Info::new(vec![(
                "version".to_owned(),
                env!("CARGO_PKG_VERSION").to_owned(),
            )]);
        r.register("ritma_controller_build", "Controller build", info);
        Self {
            registry: Arc::new(registry),
            ..m
        }
    }

    pub fn registry(&self) -> Arc<Registry> {
        self.registry.clone()
    }

    /// A committed status transition (ingest or reconciler).
    pub fn transition(&self, to: &str) {
        let kind = if STATUSES.contains(&to) { to } else { "other" };
        self.state_transitions
            .get_or_create(&KindLabel::new(kind))
            .inc();
    }

    /// A dead letter kept (by reason).
    pub fn dead_letter(&self, reason: &str) {
        let bounded = reason.len() <= REASON_MAX
            && reason
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        let reason = if bounded { reason } else { "other" };
        self.dead_letters
            .get_or_create(&ReasonLabel {
                reason: reason.into(),
            })
            .inc();
    }

    /// One alert delivery attempt.
    pub fn alert_delivery(&self, outcome: DeliveryOutcome) {
        self.alert_deliveries
            .get_or_create(&OutcomeLabel {
                outcome: outcome.as_str().into(),
            })
            .inc();
    }

    /// One API request; `route` is the matched template (or `unmatched`).
    pub fn api_request(&self, method: &str, route: &str, status: u16, took: Duration) {
        let method = match method {
            "GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS" => method,
            _ => "other",
        };
        self.api_requests
            .get_or_create(&RouteStatusLabel {
                method: method.into(),
                route: route.into(),
                status: status.to_string(),
            })
            .inc();
        self.api_request_seconds
            .get_or_create(&RouteLabel {
                method: method.into(),
                route: route.into(),
            })
            .observe(took.as_secs_f64());
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Counts every request of the router it wraps (`Router::layer`, so the
/// matched route template is known).
pub async fn track_requests(
    axum::extract::State(metrics): axum::extract::State<Arc<Metrics>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().as_str().to_owned();
    let started = std::time::Instant::now();
    let resp = next.run(req).await;
    metrics.api_request(&method, &route, resp.status().as_u16(), started.elapsed());
    resp
}

/// Samples the ingest consumer's pending, ack-pending and redelivered counts.
pub struct ConsumerSampler {
    pub js: jetstream::Context,
    pub metrics: Arc<Metrics>,
    pub consumer: Option<(
        jetstream::stream::Stream<()>,
        jetstream::consumer::PullConsumer,
    )>,
}

impl crate::tasks::periodic::Pass for ConsumerSampler {
    async fn pass(&mut self) {
        if self.consumer.is_none() {
            self.consumer = ritma_bus::streams::ingest_consumer(&self.js).await.ok();
        }
        let Some((_, handle)) = self.consumer.as_mut() else {
            return;
        };
        let metrics = &self.metrics;
        match handle.info().await {
            Ok(info) => {
                metrics
                    .consumer_pending
                    .set(i64::try_from(info.num_pending).unwrap_or(i64::MAX));
                metrics
                    .consumer_ack_pending
                    .set(i64::try_from(info.num_ack_pending).unwrap_or(i64::MAX));
                metrics
                    .consumer_redelivered
                    .set(i64::try_from(info.num_redelivered).unwrap_or(i64::MAX));
            }
            Err(e) => {
                tracing::debug!(error = %e, "consumer info unreadable; looked up again");
                self.consumer = None;
            }
        }
    }
}

/// How often the outbox backlogs are sampled.
pub const BACKLOG_SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// Samples the rows waiting in each outbox.
pub struct BacklogSampler {
    pub pool: sqlx::PgPool,
    pub metrics: Arc<Metrics>,
}

impl crate::tasks::periodic::Pass for BacklogSampler {
    async fn pass(&mut self) {
        match ritma_db::outbox::outbox_backlogs(&self.pool).await {
            Ok(b) => {
                for (outbox, rows) in [
                    ("state_changes", b.state_changes),
                    ("audit", b.audit),
                    ("alert_inbox", b.alert_inbox),
                    ("alert_deliveries", b.alert_deliveries),
                ] {
                    self.metrics
                        .outbox_backlog
                        .get_or_create(&OutboxLabel {
                            outbox: outbox.into(),
                        })
                        .set(rows);
                }
            }
            Err(e) => tracing::debug!(error = %e, "outbox backlogs unreadable; sampled again"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_conventions_and_labels_stay_bounded() {
        let m = Metrics::new();
        m.ingest_messages.inc();
        m.transition("offline");
        m.transition("something-new");
        m.dead_letter("schema_invalid");
        m.dead_letter("Not A Reason {}");
        m.alert_delivery(DeliveryOutcome::Retry);
        for i in 0..50 {
            m.api_request("BREW", "unmatched", 404, Duration::from_millis(i));
        }
        let text = ritma_runtime::metrics::render(&m.registry());
        assert!(text.contains("ritma_ingest_messages_total 1"), "{text}");
        assert!(text.contains("ritma_state_transitions_total{kind=\"offline\"} 1"));
        assert!(text.contains("ritma_state_transitions_total{kind=\"other\"} 1"));
        assert!(text.contains("ritma_dead_letters_total{reason=\"other\"} 1"));
        assert!(text.contains(
            "ritma_api_requests_total{method=\"other\",route=\"unmatched\",status=\"404\"} 50"
        ));
        assert!(text.contains("ritma_ingest_commit_duration_seconds_bucket"));
        assert!(text.contains("ritma_alert_deliveries_total{outcome=\"retry\"} 1"));
        assert!(text.contains("ritma_reconciler_lag_seconds "));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(line.starts_with("ritma_"), "{line}");
        }
    }
}
