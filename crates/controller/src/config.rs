//! Controller settings, from flags or `RITMA_*` environment variables.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

/// Offline deadline = `RITMA_OFFLINE_INTERVALS` x interval + this grace. The
/// promise is "offline within 3 x interval + 2 s": the grace takes 1 s of
/// those 2, the reconciler's tick and commit the rest.
pub const DEFAULT_OFFLINE_GRACE_SECS: i32 = 1;
/// The reconciler's tick: a due-scan on two partial indexes, cheap when
/// nothing is due, so it runs often and adds little to the deadline.
pub const DEFAULT_RECONCILE_MS: u64 = 200;
/// After the broker reports a node's last connection closed, this long for
/// a reconnect before the node is marked offline: "offline within 1 s plus
/// this grace".
pub const DEFAULT_OFFLINE_BROKER_GRACE_MS: u64 = 1500;
/// This many status changes within the window make a node flapping ...
pub const DEFAULT_FLAPPING_TRANSITIONS: i32 = 6;
/// ... and this long without one makes it steady again.
pub const DEFAULT_FLAPPING_WINDOW_SECS: i32 = 600;
/// Ingest budgets (see README.md, "Fair share"): a node sends about one
/// message every few seconds, so 100/s with a burst of 1,000 is far above any
/// daemon (including a spool replay of 1,000 messages) ...
pub const DEFAULT_INGEST_NODE_RATE: u32 = 100;
pub const DEFAULT_INGEST_NODE_BURST: u32 = 1_000;
/// ... an org gets at most about a third of one controller's measured ingest
/// (60-70k msg/s on 2 cores) ...
pub const DEFAULT_INGEST_ORG_RATE: u32 = 20_000;
pub const DEFAULT_INGEST_ORG_BURST: u32 = 100_000;
/// ... and invalid messages are kept (dead-letter table and stream) at this pace per org.
pub const DEFAULT_INGEST_DEAD_LETTER_RATE: u32 = 20;
pub const DEFAULT_INGEST_DEAD_LETTER_BURST: u32 = 200;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "ritma-controller",
    about = "Ritma node controller: enrollment, ingest, API"
)]
pub struct Config {
    /// PostgreSQL URL.
    #[arg(long, env = "RITMA_DATABASE_URL")]
    pub database_url: String,
    /// NATS URLs the controller connects to (comma-separated).
    #[arg(long, env = "RITMA_NATS_URL", value_delimiter = ',')]
    pub nats_urls: Vec<String>,
    /// NATS URLs handed to nodes at enrollment (default: the controller's own).
    #[arg(long, env = "RITMA_PUBLIC_NATS_URLS", value_delimiter = ',')]
    pub public_nats_urls: Vec<String>,
    /// CA bundle (PEM) of the bus servers' certificates. The controller
    /// verifies the bus against it (and only it; TLS is then required), and
    /// hands it to nodes at enrollment, which pin it for their bus connection.
    #[arg(long, env = "RITMA_NATS_CA_FILE")]
    pub nats_ca_file: Option<PathBuf>,
    /// Folder with the operator, system and controller account keys.
    #[arg(long, env = "RITMA_NATS_KEYS_DIR")]
    pub nats_keys_dir: PathBuf,
    /// 32-byte master key (64 hex characters) that encrypts org account keys at rest.
    #[arg(long, env = "RITMA_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<String>,
    /// File holding the master key (instead of RITMA_MASTER_KEY).
    #[arg(long, env = "RITMA_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
    /// Bearer token that grants admin access to the API.
    #[arg(long, env = "RITMA_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// File holding the admin token (instead of RITMA_ADMIN_TOKEN).
    #[arg(long, env = "RITMA_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// The console's service token: the only credential that may ask for the
    /// console's bus credential (`POST /api/console/bus-credential`). Unset:
    /// that route refuses everyone.
    #[arg(long, env = "RITMA_CONSOLE_SERVICE_TOKEN", hide_env_values = true)]
    pub console_service_token: Option<String>,
    /// File holding the console's service token (instead of RITMA_CONSOLE_SERVICE_TOKEN).
    #[arg(long, env = "RITMA_CONSOLE_SERVICE_TOKEN_FILE")]
    pub console_service_token_file: Option<PathBuf>,
    /// Lifetime of the console's bus credential; the console renews it before expiry.
    #[arg(long, env = "RITMA_CONSOLE_BUS_TTL_SECS", default_value_t = 3600)]
    pub console_bus_ttl_secs: i64,
    /// A separate listener for `/metrics` only (e.g. `127.0.0.1:9464` or a
    /// cluster-internal address). Unset: no separate listener.
    #[arg(long, env = "RITMA_METRICS_ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    /// Bearer token `/metrics` requires, on the separate listener and on the
    /// API's port. Unset: the API's port refuses `/metrics` (404) and the
    /// separate listener, if any, answers without a token.
    #[arg(long, env = "RITMA_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
    /// File holding the metrics token (instead of RITMA_METRICS_TOKEN).
    #[arg(long, env = "RITMA_METRICS_TOKEN_FILE")]
    pub metrics_token_file: Option<PathBuf>,
    /// Where the REST API listens.
    #[arg(long, env = "RITMA_API_LISTEN", default_value = "127.0.0.1:8080")]
    pub api_listen: SocketAddr,
    /// Ingest workers pulling from the durable consumer.
    #[arg(long, env = "RITMA_WORKERS", default_value_t = 2)]
    pub workers: usize,
    /// Most messages per ingest batch (one transaction).
    #[arg(long, env = "RITMA_BATCH_SIZE", default_value_t = 1000)]
    pub batch_size: usize,
    /// Longest wait to fill a batch, in milliseconds (sets publish → commit
    /// latency at low rates; at high rates batches fill before it).
    #[arg(long, env = "RITMA_BATCH_WAIT_MS", default_value_t = 20)]
    pub batch_wait_ms: u64,
    /// A node is offline after this many missed intervals ...
    #[arg(long, env = "RITMA_OFFLINE_INTERVALS", default_value_t = 3)]
    pub offline_intervals: i32,
    /// ... plus this grace, in seconds.
    #[arg(long, env = "RITMA_OFFLINE_GRACE_SECS", default_value_t = DEFAULT_OFFLINE_GRACE_SECS)]
    pub offline_grace_secs: i32,
    /// How often offline detection runs, in milliseconds.
    #[arg(long, env = "RITMA_RECONCILE_MS", default_value_t = DEFAULT_RECONCILE_MS)]
    pub reconcile_ms: u64,
    /// Mark a node offline as soon as the broker reports its last connection
    /// closed (heartbeat deadlines stay as the backstop) ...
    #[arg(long, env = "RITMA_OFFLINE_FROM_BROKER", default_value_t = true, action = clap::ArgAction::Set)]
    pub offline_from_broker: bool,
    /// ... after this grace for a reconnect, in milliseconds.
    #[arg(long, env = "RITMA_OFFLINE_BROKER_GRACE_MS", default_value_t = DEFAULT_OFFLINE_BROKER_GRACE_MS)]
    pub offline_broker_grace_ms: u64,
    /// A node with this many status changes within the flapping window is
    /// shown as `flapping` instead of publishing each (below 2: off) ...
    #[arg(long, env = "RITMA_FLAPPING_TRANSITIONS", default_value_t = DEFAULT_FLAPPING_TRANSITIONS)]
    pub flapping_transitions: i32,
    /// ... the window, in seconds; as long without a change ends flapping.
    #[arg(long, env = "RITMA_FLAPPING_WINDOW_SECS", default_value_t = DEFAULT_FLAPPING_WINDOW_SECS)]
    pub flapping_window_secs: i32,
    /// Lifetime of node bus credentials; nodes refresh before expiry.
    #[arg(long, env = "RITMA_NODE_JWT_TTL_SECS", default_value_t = 3600)]
    pub node_jwt_ttl_secs: i64,
    /// Heartbeat interval suggested to nodes at enrollment.
    #[arg(long, env = "RITMA_DEFAULT_HEARTBEAT_SECS", default_value_t = 10)]
    pub default_heartbeat_secs: u32,
    /// Seconds before JetStream redelivers a message no worker acked.
    #[arg(long, env = "RITMA_ACK_WAIT_SECS", default_value_t = 30)]
    pub ack_wait_secs: u64,
    /// `production` or `development`. Production refuses unsafe settings.
    #[arg(long, env = "RITMA_ENVIRONMENT", default_value = "production")]
    pub environment: String,
    /// Development only: trust `x-user-id`, `x-org-id`, `x-roles` headers.
    #[arg(long, env = "RITMA_DEV_HEADER_AUTH", default_value_t = false)]
    pub dev_header_auth: bool,
    /// OpenID Connect issuer whose access tokens the API accepts.
    #[arg(long, env = "RITMA_OIDC_ISSUER")]
    pub oidc_issuer: Option<String>,
    /// Audience the access tokens must carry.
    #[arg(long, env = "RITMA_OIDC_AUDIENCE")]
    pub oidc_audience: Option<String>,
    /// JWKS URL (default: from the issuer's discovery document).
    #[arg(long, env = "RITMA_OIDC_JWKS_URL")]
    pub oidc_jwks_url: Option<String>,
    /// Claim holding org memberships: `{"org": ["role", ...]}` or `["org:role", ...]`.
    #[arg(long, env = "RITMA_OIDC_ROLES_CLAIM", default_value = "ritma_roles")]
    pub oidc_roles_claim: String,
    /// JetStream replicas for the streams (3 on a NATS cluster).
    #[arg(long, env = "RITMA_STREAM_REPLICAS", default_value_t = 1)]
    pub stream_replicas: usize,
    /// Refused enrollment or credential attempts one source IP may make at once ...
    #[arg(long, env = "RITMA_ENROLL_FAILURES_BURST", default_value_t = 10)]
    pub enroll_failures_burst: u32,
    /// ... and how many more it gets per minute after that (then 429).
    #[arg(long, env = "RITMA_ENROLL_FAILURES_PER_MIN", default_value_t = 10)]
    pub enroll_failures_per_min: u32,
    /// API requests per second one bearer credential may make (0: unlimited) ...
    #[arg(long, env = "RITMA_API_RATE_PER_CREDENTIAL", default_value_t = 50)]
    pub api_rate_per_credential: u32,
    /// ... with this burst on top, then 429 with `Retry-After`.
    #[arg(long, env = "RITMA_API_BURST_PER_CREDENTIAL", default_value_t = 200)]
    pub api_burst_per_credential: u32,
    /// API requests per second one source address may make (0: unlimited) ...
    #[arg(long, env = "RITMA_API_RATE_PER_ADDRESS", default_value_t = 100)]
    pub api_rate_per_address: u32,
    /// ... with this burst on top.
    #[arg(long, env = "RITMA_API_BURST_PER_ADDRESS", default_value_t = 400)]
    pub api_burst_per_address: u32,
    /// Controllers serving the API behind one load balancer: each enforces
    /// this share of every request and failure budget above, so the
    /// deployment as a whole allows the documented rates.
    #[arg(long, env = "RITMA_API_REPLICAS", default_value_t = 1)]
    pub api_replicas: u32,
    /// Proxies (the console, a reverse proxy) whose `X-Forwarded-For` names the
    /// client: comma-separated IP addresses or CIDR ranges.
    #[arg(long, env = "RITMA_API_TRUSTED_PROXIES", value_delimiter = ',')]
    pub api_trusted_proxies: Vec<crate::api::ratelimit::IpRange>,
    /// A node whose applied policy differs from its assignment this long is drifted.
    #[arg(long, env = "RITMA_POLICY_DRIFT_GRACE_SECS", default_value_t = 300)]
    pub policy_drift_grace_secs: i32,
    /// How often the fleet reconciler (drift, key expiry, registry sync) runs.
    #[arg(long, env = "RITMA_FLEET_RECONCILE_MS", default_value_t = 2000)]
    pub fleet_reconcile_ms: u64,
    /// How long a connector dry run may take on the node.
    #[arg(long, env = "RITMA_DRY_RUN_TIMEOUT_SECS", default_value_t = 20)]
    pub dry_run_timeout_secs: u64,
    /// Connector dry runs one node may be asked for at once ...
    #[arg(long, env = "RITMA_DRY_RUNS_BURST", default_value_t = 5)]
    pub dry_runs_burst: u32,
    /// ... and how many more per minute after that (then 429).
    #[arg(long, env = "RITMA_DRY_RUNS_PER_MIN", default_value_t = 6)]
    pub dry_runs_per_min: u32,
    /// How long a command to a node stays valid (seconds, at most 600): a
    /// node refuses it after that, and any copy of it at any time.
    #[arg(long, env = "RITMA_COMMAND_TTL_SECS", default_value_t = 60)]
    pub command_ttl_secs: i64,
    /// The `ritma_cloud` key registry; unset: keys are governed here only.
    #[arg(long, env = "RITMA_CLOUD_URL")]
    pub ritma_cloud_url: Option<String>,
    #[arg(long, env = "RITMA_CLOUD_TOKEN", hide_env_values = true)]
    pub ritma_cloud_token: Option<String>,
    /// How often keys are pulled from `ritma_cloud`.
    #[arg(long, env = "RITMA_CLOUD_SYNC_SECS", default_value_t = 60)]
    pub ritma_cloud_sync_secs: u64,
    /// The `billing_daemon`; unset: estimates come from the price table.
    #[arg(long, env = "RITMA_BILLING_DAEMON_URL")]
    pub billing_daemon_url: Option<String>,
    /// How long an invoice draft from the billing daemon is reused.
    #[arg(long, env = "RITMA_BILLING_CACHE_SECS", default_value_t = 300)]
    pub billing_cache_secs: u64,
    /// JSON price table for estimates (see deploy/price-table.json); unset: built-in list prices.
    #[arg(long, env = "RITMA_PRICE_TABLE_FILE")]
    pub price_table_file: Option<PathBuf>,
    /// Raw telemetry summaries are kept this many days ...
    #[arg(long, env = "RITMA_TELEMETRY_RAW_DAYS", default_value_t = 14)]
    pub telemetry_raw_days: i32,
    /// ... and their hourly rollups this many.
    #[arg(long, env = "RITMA_TELEMETRY_ROLLUP_DAYS", default_value_t = 400)]
    pub telemetry_rollup_days: i32,
    /// The central telemetry stream keeps messages this long (seconds) ...
    #[arg(long, env = "RITMA_TELEMETRY_STREAM_MAX_AGE_SECS", default_value_t = 7 * 24 * 3600)]
    pub telemetry_stream_max_age_secs: u64,
    /// ... and at most this many bytes (0: no limit), dropping its oldest ...
    #[arg(long, env = "RITMA_TELEMETRY_STREAM_MAX_BYTES", default_value_t = ritma_bus::streams::DEFAULT_MAX_BYTES)]
    pub telemetry_stream_max_bytes: i64,
    /// ... and at most this many per subject (one node's one kind; 0: no limit).
    #[arg(long, env = "RITMA_TELEMETRY_STREAM_MAX_MSGS_PER_SUBJECT", default_value_t = ritma_bus::streams::DEFAULT_MAX_MSGS_PER_SUBJECT)]
    pub telemetry_stream_max_msgs_per_subject: i64,
    /// The dead-letter stream keeps messages this long (seconds) ...
    #[arg(long, env = "RITMA_DEAD_LETTER_STREAM_MAX_AGE_SECS", default_value_t = 14 * 24 * 3600)]
    pub dead_letter_stream_max_age_secs: u64,
    /// ... at most this many bytes (0: no limit) ...
    #[arg(long, env = "RITMA_DEAD_LETTER_STREAM_MAX_BYTES", default_value_t = ritma_bus::streams::DEFAULT_DEAD_LETTER_MAX_BYTES)]
    pub dead_letter_stream_max_bytes: i64,
    /// ... and at most this many messages (0: no limit), dropping its oldest.
    #[arg(long, env = "RITMA_DEAD_LETTER_STREAM_MAX_MSGS", default_value_t = ritma_bus::streams::DEFAULT_DEAD_LETTER_MAX_MSGS)]
    pub dead_letter_stream_max_msgs: i64,
    /// Rows of the `dead_letters` table older than this many days are deleted.
    #[arg(long, env = "RITMA_DEAD_LETTER_RETENTION_DAYS", default_value_t = 14)]
    pub dead_letter_retention_days: i32,
    /// Node status history older than this many days is deleted.
    #[arg(
        long,
        env = "RITMA_STATUS_HISTORY_RETENTION_DAYS",
        default_value_t = 90
    )]
    pub status_history_retention_days: i32,
    /// Messages per second the ingest takes from one node (0: unlimited) ...
    #[arg(long, env = "RITMA_INGEST_NODE_RATE", default_value_t = DEFAULT_INGEST_NODE_RATE)]
    pub ingest_node_rate: u32,
    /// ... with this burst; the excess is acked, counted per org, not written.
    #[arg(long, env = "RITMA_INGEST_NODE_BURST", default_value_t = DEFAULT_INGEST_NODE_BURST)]
    pub ingest_node_burst: u32,
    /// Messages per second the ingest takes from one org (0: unlimited) ...
    #[arg(long, env = "RITMA_INGEST_ORG_RATE", default_value_t = DEFAULT_INGEST_ORG_RATE)]
    pub ingest_org_rate: u32,
    /// ... with this burst.
    #[arg(long, env = "RITMA_INGEST_ORG_BURST", default_value_t = DEFAULT_INGEST_ORG_BURST)]
    pub ingest_org_burst: u32,
    /// Dead letters per second kept for one org (table and stream; 0: unlimited) ...
    #[arg(long, env = "RITMA_INGEST_DEAD_LETTER_RATE", default_value_t = DEFAULT_INGEST_DEAD_LETTER_RATE)]
    pub ingest_dead_letter_rate: u32,
    /// ... with this burst; the excess is acked and counted, not kept.
    #[arg(long, env = "RITMA_INGEST_DEAD_LETTER_BURST", default_value_t = DEFAULT_INGEST_DEAD_LETTER_BURST)]
    pub ingest_dead_letter_burst: u32,
    /// The controller URL nodes use, for the node config template.
    #[arg(long, env = "RITMA_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// The local UTLD socket nodes use (config template).
    #[arg(long, env = "RITMA_UTLD_SOCKET", default_value = "/run/utld/utld.sock")]
    pub utld_socket: String,
    /// The UTLD TLS listen address nodes use (config template).
    #[arg(long, env = "RITMA_UTLD_TLS_ADDR", default_value = "0.0.0.0:8443")]
    pub utld_tls_addr: String,
    /// Where nodes report usage over HTTP when billing is on (config template).
    #[arg(long, env = "RITMA_UTLD_USAGE_HTTP_URL")]
    pub utld_usage_http_url: Option<String>,
    #[command(flatten)]
    pub alerts: crate::alerts::AlertSettings,
    #[command(flatten)]
    pub bulk: crate::bulk::BulkSettings,
}

impl Config {
    /// The flapping rule these settings give.
    pub fn flap_policy(&self) -> ritma_db::flapping::FlapPolicy {
        ritma_db::flapping::FlapPolicy {
            transitions: self.flapping_transitions,
            window_secs: self.flapping_window_secs,
        }
    }

    /// Settings with defaults, for tests and the dev stack.
    pub fn new(database_url: String, nats_urls: Vec<String>, nats_keys_dir: PathBuf) -> Self {
        Self {
            database_url,
            nats_urls,
            public_nats_urls: vec![],
            nats_ca_file: None,
            nats_keys_dir,
            master_key: None,
            master_key_file: None,
            admin_token: None,
            admin_token_file: None,
            console_service_token: None,
            console_service_token_file: None,
            console_bus_ttl_secs: 3600,
            api_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            metrics_listen: None,
            metrics_token: None,
            metrics_token_file: None,
            workers: 2,
            batch_size: 1000,
            batch_wait_ms: 20,
            offline_intervals: 3,
            offline_grace_secs: DEFAULT_OFFLINE_GRACE_SECS,
            reconcile_ms: DEFAULT_RECONCILE_MS,
            offline_from_broker: true,
            offline_broker_grace_ms: DEFAULT_OFFLINE_BROKER_GRACE_MS,
            flapping_transitions: DEFAULT_FLAPPING_TRANSITIONS,
            flapping_window_secs: DEFAULT_FLAPPING_WINDOW_SECS,
            node_jwt_ttl_secs: 3600,
            default_heartbeat_secs: 10,
            stream_replicas: 1,
            ack_wait_secs: 30,
            enroll_failures_burst: 10,
            enroll_failures_per_min: 10,
            api_rate_per_credential: 50,
            api_burst_per_credential: 200,
            api_rate_per_address: 100,
            api_burst_per_address: 400,
            api_replicas: 1,
            api_trusted_proxies: vec![],
            environment: "development".into(),
            dev_header_auth: false,
            oidc_issuer: None,
            oidc_audience: None,
            oidc_jwks_url: None,
            oidc_roles_claim: "ritma_roles".into(),
            policy_drift_grace_secs: 300,
            fleet_reconcile_ms: 2000,
            dry_run_timeout_secs: 20,
            dry_runs_burst: 5,
            dry_runs_per_min: 6,
            command_ttl_secs: 60,
            ritma_cloud_url: None,
            ritma_cloud_token: None,
            ritma_cloud_sync_secs: 60,
            billing_daemon_url: None,
            billing_cache_secs: 300,
            price_table_file: None,
            telemetry_raw_days: 14,
            telemetry_rollup_days: 400,
            telemetry_stream_max_age_secs: 7 * 24 * 3600,
            telemetry_stream_max_bytes: ritma_bus::streams::DEFAULT_MAX_BYTES,
            telemetry_stream_max_msgs_per_subject: ritma_bus::streams::DEFAULT_MAX_MSGS_PER_SUBJECT,
            dead_letter_stream_max_age_secs: 14 * 24 * 3600,
            dead_letter_stream_max_bytes: ritma_bus::streams::DEFAULT_DEAD_LETTER_MAX_BYTES,
            dead_letter_stream_max_msgs: ritma_bus::streams::DEFAULT_DEAD_LETTER_MAX_MSGS,
            dead_letter_retention_days: 14,
            status_history_retention_days: 90,
            ingest_node_rate: DEFAULT_INGEST_NODE_RATE,
            ingest_node_burst: DEFAULT_INGEST_NODE_BURST,
            ingest_org_rate: DEFAULT_INGEST_ORG_RATE,
            ingest_org_burst: DEFAULT_INGEST_ORG_BURST,
            ingest_dead_letter_rate: DEFAULT_INGEST_DEAD_LETTER_RATE,
            ingest_dead_letter_burst: DEFAULT_INGEST_DEAD_LETTER_BURST,
            public_url: None,
            utld_socket: "/run/utld/utld.sock".into(),
            utld_tls_addr: "0.0.0.0:8443".into(),
            utld_usage_http_url: None,
            alerts: crate::alerts::AlertSettings::default(),
            bulk: crate::bulk::BulkSettings::default(),
        }
    }
}

/// A secret given inline or as a file path.
pub fn read_secret(
    inline: Option<&str>,
    file: Option<&PathBuf>,
    what: &str,
) -> anyhow::Result<String> {
    match (inline, file) {
        (Some(v), _) if !v.trim().is_empty() => Ok(v.trim().to_owned()),
        (_, Some(path)) => Ok(std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading {what} from {}: {e}", path.display()))?
            .trim()
            .to_owned()),
        _ => anyhow::bail!("{what} is not set"),
    }
}
