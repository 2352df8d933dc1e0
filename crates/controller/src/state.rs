//! What every request handler shares: the database pool, the bus, the
//! limits and settings. Built once by the controller (`lib.rs`), cloned into
//! each request (everything inside is shared by `Arc` or is a handle).

use std::sync::Arc;

use sqlx::PgPool;

use crate::accounts::Accounts;
use crate::api::ratelimit;
use crate::auth::oidc::OidcVerifier;
use crate::tasks::ingest::IngestStats;

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub accounts: Arc<Accounts>,
    /// Org control keys: they sign commands, rulepack revisions and assignments.
    pub control: Arc<crate::trust::ControlKeys>,
    /// The bus CA bundle nodes pin at enrollment (`RITMA_NATS_CA_FILE`).
    pub bus_ca_pem: Option<Arc<str>>,
    /// The operator's break-glass token (every org); None disables it.
    pub admin_token: Option<Arc<str>>,
    pub oidc: Option<Arc<OidcVerifier>>,
    /// Development only (refused in production): trust x-user-id/x-org-id/x-roles.
    pub dev_header_auth: bool,
    pub public_nats_urls: Arc<Vec<String>>,
    pub node_jwt_ttl_secs: i64,
    pub default_heartbeat_secs: u32,
    pub stats: Arc<IngestStats>,
    /// Prometheus metrics (see `crate::metrics`: one line to count).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The bearer token `/metrics` requires on this port; None: refused here.
    pub metrics_token: Option<Arc<str>>,
    /// The ingest's per-node and per-org budgets and their counters.
    pub budgets: Arc<crate::tasks::budget::Budgets>,
    pub nats: async_nats::Client,
    pub enroll_limiter: Arc<ratelimit::FailureLimiter>,
    pub request_limiter: Arc<ratelimit::RequestLimiter>,
    /// Connector dry runs per node.
    pub dry_run_limiter: Arc<ratelimit::KeyedLimiter>,
    pub fleet: Arc<crate::fleet::Fleet>,
    /// The console's service token (`RITMA_CONSOLE_SERVICE_TOKEN`): the only
    /// credential that may ask for the console's bus credential.
    pub console_token: Option<Arc<str>>,
    /// Lifetime of the console's bus credential.
    pub console_bus_ttl_secs: i64,
    pub alerting: Arc<Alerting>,
    pub bulk: crate::bulk::BulkSettings,
    /// Wakes the bulk worker (a job was created).
    pub bulk_wake: Arc<tokio::sync::Notify>,
}

/// Alerting's settings and the wake-ups of its background tasks.
pub struct Alerting {
    pub settings: crate::alerts::AlertSettings,
    /// Wakes the evaluator (a new rule, a silence ended).
    pub evaluate: Arc<tokio::sync::Notify>,
    /// Wakes the delivery worker.
    pub deliver: Arc<tokio::sync::Notify>,
}
