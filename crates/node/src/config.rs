//! Daemon settings: flags, `RITMA_*` environment variables, or a TOML file
//! (`--config`); flags and environment win over the file.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Parser;
use serde::Deserialize;

#[derive(Debug, Clone, Parser, Default)]
#[command(
    name = "ritma-node",
    about = "Ritma node daemon: enrolls once, then publishes heartbeats and summaries to the bus"
)]
pub struct Args {
    /// TOML file with any of the settings below (snake_case keys).
    #[arg(long, env = "RITMA_NODE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Controller base URL, e.g. http://controller:8080.
    #[arg(long, env = "RITMA_NODE_CONTROLLER_URL")]
    pub controller_url: Option<String>,
    /// NATS servers, comma-separated. When set they win over the URLs the
    /// controller handed out at enrollment (kept in identity.json), so a bus
    /// that moved is reached without enrolling again.
    #[arg(long, env = "RITMA_NODE_NATS_URLS", value_delimiter = ',')]
    pub nats_urls: Vec<String>,
    /// Org the node enrolls in (checked against the token's org).
    #[arg(long, env = "RITMA_NODE_ORG_ID")]
    pub org_id: Option<String>,
    /// Tenant the node enrolls in (checked against the token's tenant).
    #[arg(long, env = "RITMA_NODE_TENANT_ID")]
    pub tenant_id: Option<String>,
    /// Enrollment token; needed only for the first start.
    #[arg(long, env = "RITMA_ENROLL_TOKEN", hide_env_values = true)]
    pub enroll_token: Option<String>,
    /// State folder: identity.json, the spool, the sequence counter.
    #[arg(long, env = "RITMA_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Where the node's NKey seed is kept (default: <state>/node.nk).
    #[arg(long, env = "RITMA_KEYSTORE_PATH")]
    pub keystore_path: Option<PathBuf>,
    /// The signing key this node uses, reported for key governance.
    #[arg(long, env = "RITMA_KEY_ID")]
    pub key_id: Option<String>,
    /// Node id to ask for (default: derived from hostname and key).
    #[arg(long, env = "RITMA_NODE_ID")]
    pub node_id: Option<String>,
    /// Heartbeat interval in seconds (default: what the controller suggests).
    #[arg(long, env = "RITMA_HEARTBEAT_SECS")]
    pub heartbeat_secs: Option<u32>,
    /// Summary period in seconds for SLO, usage and enforcement summaries.
    #[arg(long, env = "RITMA_SUMMARY_SECS")]
    pub summary_secs: Option<u32>,
    /// Labels, `key=value,key=value`.
    #[arg(long, env = "RITMA_NODE_LABELS")]
    pub labels: Option<String>,
    /// Spool bound in bytes (default 64 MiB).
    #[arg(long, env = "RITMA_SPOOL_MAX_BYTES")]
    pub spool_max_bytes: Option<u64>,
    /// Seconds between policy syncs (besides the controller's push).
    #[arg(long, env = "RITMA_POLICY_SYNC_SECS")]
    pub policy_sync_secs: Option<u32>,
    /// Keep the cached policy and apply no change (a maintenance freeze);
    /// the console shows the node as drifted until it is released.
    #[arg(long, env = "RITMA_POLICY_HOLD")]
    pub policy_hold: bool,
    /// Append compliance events (JSON lines) to this file.
    #[arg(long, env = "UTLD_COMPLIANCE_INDEX")]
    pub compliance_index: Option<PathBuf>,
    /// Move this node to a new key (the old one is revoked at the broker), then exit.
    #[arg(long)]
    pub rekey: bool,
    /// CA bundle (PEM) this node trusts for the controller's HTTPS and the
    /// bus's TLS, instead of the system's roots (for the bus it wins over the
    /// CA pinned at enrollment).
    #[arg(long, env = "RITMA_NODE_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// Development only: accept plaintext (http://, nats://) controller and
    /// bus addresses that are not loopback.
    #[arg(long, env = "RITMA_NODE_ALLOW_PLAINTEXT")]
    pub allow_plaintext: bool,
    /// Demo only: generate synthetic enforcement decisions at this rate per second.
    #[arg(long, env = "RITMA_DEMO_DECISIONS_PER_SEC")]
    pub demo_decisions_per_sec: Option<u32>,
    /// A local `/metrics` endpoint (e.g. `127.0.0.1:9465`); off when unset.
    #[arg(long, env = "RITMA_NODE_METRICS_ADDR")]
    pub metrics_listen: Option<std::net::SocketAddr>,
    #[command(subcommand)]
    pub command: Option<NodeCommand>,
}

/// One-shot commands instead of running the daemon.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum NodeCommand {
    /// Write a diagnostic bundle (versions, configuration without secrets,
    /// spool state, recent errors) as JSON, to a file or stdout.
    Diagnose {
        /// Where to write it (default: stdout).
        #[arg(long)]
        out: Option<PathBuf>,
        /// The daemon's log file to take recent errors from.
        #[arg(long)]
        log: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    controller_url: Option<String>,
    nats_urls: Option<Vec<String>>,
    org_id: Option<String>,
    tenant_id: Option<String>,
    enroll_token: Option<String>,
    state_dir: Option<PathBuf>,
    keystore_path: Option<PathBuf>,
    key_id: Option<String>,
    node_id: Option<String>,
    heartbeat_secs: Option<u32>,
    summary_secs: Option<u32>,
    labels: Option<BTreeMap<String, String>>,
    spool_max_bytes: Option<u64>,
    policy_sync_secs: Option<u32>,
    policy_hold: Option<bool>,
    compliance_index: Option<PathBuf>,
    metrics_listen: Option<std::net::SocketAddr>,
    ca_file: Option<PathBuf>,
    allow_plaintext: Option<bool>,
}

/// Resolved settings.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub controller_url: Option<String>,
    /// Configured NATS servers (empty: the enrollment's).
    pub nats_urls: Vec<String>,
    pub org_id: Option<String>,
    pub tenant_id: Option<String>,
    pub enroll_token: Option<String>,
    pub state_dir: PathBuf,
    pub keystore_path: PathBuf,
    pub key_id: Option<String>,
    pub node_id: Option<String>,
    pub heartbeat_secs: Option<u32>,
    pub summary_secs: u32,
    pub labels: BTreeMap<String, String>,
    pub spool_max_bytes: u64,
    pub demo_decisions_per_sec: u32,
    pub rekey: bool,
    pub policy_sync_secs: u32,
    pub policy_hold: bool,
    pub compliance_index: Option<PathBuf>,
    pub metrics_listen: Option<std::net::SocketAddr>,
    pub ca_file: Option<PathBuf>,
    pub allow_plaintext: bool,
}

impl NodeConfig {
    pub fn resolve(args: Args) -> anyhow::Result<Self> {
        let file: FileConfig = match &args.config {
            Some(path) => toml::from_str(
                &std::fs::read_to_string(path)
                    .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?,
            )
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
            None => FileConfig::default(),
        };
        let mut labels = file.labels.unwrap_or_default();
        if let Some(raw) = args.labels {
            for pair in raw.split(',').filter(|p| !p.trim().is_empty()) {
                let (k, v) = pair
                    .split_once('=')
                    .ok_or_else(|| anyhow::anyhow!("label {pair:?} must be key=value"))?;
                labels.insert(k.trim().to_owned(), v.trim().to_owned());
            }
        }
        let state_dir = args
            .state_dir
            .or(file.state_dir)
            .unwrap_or_else(|| PathBuf::from("/var/lib/ritma-node"));
        let keystore_path = args
            .keystore_path
            .or(file.keystore_path)
            .unwrap_or_else(|| state_dir.join("node.nk"));
        Ok(Self {
            controller_url: args.controller_url.or(file.controller_url),
            nats_urls: Some(args.nats_urls)
                .filter(|u| !u.is_empty())
                .or(file.nats_urls)
                .unwrap_or_default()
                .into_iter()
                .map(|u| u.trim().to_owned())
                .filter(|u| !u.is_empty())
                .collect(),
            org_id: args.org_id.or(file.org_id),
            tenant_id: args.tenant_id.or(file.tenant_id),
            enroll_token: args.enroll_token.or(file.enroll_token),
            state_dir,
            keystore_path,
            key_id: args.key_id.or(file.key_id),
            node_id: args.node_id.or(file.node_id),
            heartbeat_secs: args.heartbeat_secs.or(file.heartbeat_secs),
            summary_secs: args
                .summary_secs
                .or(file.summary_secs)
                .unwrap_or(60)
                .clamp(1, 86_400),
            labels,
            spool_max_bytes: args
                .spool_max_bytes
                .or(file.spool_max_bytes)
                .unwrap_or(64 << 20),
            demo_decisions_per_sec: args.demo_decisions_per_sec.unwrap_or(0),
            rekey: args.rekey,
            policy_sync_secs: args
                .policy_sync_secs
                .or(file.policy_sync_secs)
                .unwrap_or(300)
                .clamp(5, 86_400),
            policy_hold: args.policy_hold || file.policy_hold.unwrap_or(false),
            compliance_index: args.compliance_index.or(file.compliance_index),
            metrics_listen: args.metrics_listen.or(file.metrics_listen),
            ca_file: args.ca_file.or(file.ca_file),
            allow_plaintext: args.allow_plaintext || file.allow_plaintext.unwrap_or(false),
        })
    }
}
