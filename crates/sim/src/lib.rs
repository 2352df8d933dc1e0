//! `ritma sim`: simulate a fleet of nodes against a real stack.
//!
//! - **Enrollment** goes through the controller's API exactly as a daemon's
//!   does: the org is created if missing, one enrollment token with
//!   `max_uses = N` is created, and every simulated node registers its own
//!   NKey public key with it (`POST /api/nodes/register`), getting back its
//!   own user JWT. No bulk enrollment path was needed: the API enrolls a few
//!   hundred nodes a second here (see `crates/bench/README.md`).
//! - **Connections**: with `--own-credentials` every simulated node uses its
//!   own JWT and seed on its own connection (a connection authenticates as
//!   one user, so it can only carry one node). Without it, nodes share
//!   connections (`--nodes-per-connection`) authenticated as the controller
//!   account's user from the stack's key folder; their messages go straight
//!   into the central stream, skipping the org-account service import hop
//!   (the subjects, bodies and ingest path are the same).
//! - **Traffic**: heartbeats every `--heartbeat-secs` and summaries every
//!   `--summary-secs` per node, start times spread over the interval, all
//!   published to JetStream as the node daemon publishes them, acks awaited
//!   in a window.
//!   Subjects and bodies come from `ritma-protocol` only.

mod api;
mod message;
mod model;
mod publish;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use nkeys::KeyPair;
use ritma_protocol::{IdError, OrgId, TenantId};

pub use api::{Api, enroll};
pub use message::message;
pub use model::{Counters, RunConfig, SharedCreds, SimNode, SimReport};
pub use publish::{run, run_with};

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("API call {what} answered {status}: {body}")]
    Api {
        what: &'static str,
        status: u16,
        body: String,
    },
    #[error("HTTP: {0}")]
    Http(#[from] reqwest::Error),
    #[error("bus: {0}")]
    Bus(String),
    #[error("invalid setting: {0}")]
    Config(String),
    #[error("invalid id: {0}")]
    Id(#[from] IdError),
}

/// Which summaries a node sends every `summary_secs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum SummaryMix {
    /// Usage reports only (one row each in `node_usage_reports`).
    Usage,
    /// Usage, enforcement and SLO summaries in turn.
    #[default]
    Mixed,
}

/// `ritma sim` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct SimArgs {
    /// Controller API URL (default: the dev stack's, from stack.json).
    #[arg(long, env = "RITMA_API_URL")]
    pub api_url: Option<String>,
    /// Admin token (default: the dev stack's).
    #[arg(long, env = "RITMA_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// NATS URL (default: what enrollment returns, else the dev stack's).
    #[arg(long, env = "RITMA_NATS_URL")]
    pub nats_url: Option<String>,
    /// Bus key folder, for shared connections (default: <data-dir>/keys).
    #[arg(long)]
    pub keys_dir: Option<PathBuf>,
    /// The dev stack folder (for stack.json and keys).
    #[arg(long, default_value = ".ritma/dev")]
    pub data_dir: PathBuf,
    #[arg(long, default_value = "sim")]
    pub org: String,
    #[arg(long, default_value = "load")]
    pub tenant: String,
    /// Simulated nodes.
    #[arg(long, short = 'n', default_value_t = 100)]
    pub nodes: usize,
    /// Each node with its own NKey and JWT, on its own connection.
    #[arg(long)]
    pub own_credentials: bool,
    /// Nodes per connection when credentials are shared.
    #[arg(long, default_value_t = 100)]
    pub nodes_per_connection: usize,
    /// Heartbeat interval per node, seconds (0: none).
    #[arg(long, default_value_t = 10.0)]
    pub heartbeat_secs: f64,
    /// Summary interval per node, seconds (0: none).
    #[arg(long, default_value_t = 60.0)]
    pub summary_secs: f64,
    #[arg(long, value_enum, default_value_t = SummaryMix::Mixed)]
    pub summaries: SummaryMix,
    /// How long to send, seconds.
    #[arg(long, default_value_t = 30.0)]
    pub duration_secs: f64,
    /// Concurrent enrollment calls.
    #[arg(long, default_value_t = 16)]
    pub enroll_concurrency: usize,
    /// Publishes awaiting their ack, per connection.
    #[arg(long, default_value_t = 512)]
    pub window: usize,
    /// Node id prefix (default: sim-<random>).
    #[arg(long)]
    pub prefix: Option<String>,
    /// Write the summary as JSON here too.
    #[arg(long)]
    pub json: Option<PathBuf>,
}
fn duration_secs(secs: f64) -> Option<Duration> {
    (secs > 0.0 && secs.is_finite()).then(|| Duration::from_secs_f64(secs))
}

/// Where `ritma sim` finds a dev stack's settings.
#[derive(serde::Deserialize)]
struct StackFile {
    api_url: String,
    admin_token: String,
    nats_url: String,
}

/// The `ritma sim` command.
pub async fn main(args: SimArgs) -> Result<SimReport, SimError> {
    let stack: Option<StackFile> = std::fs::read_to_string(args.data_dir.join("stack.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let api_url = args
        .api_url
        .clone()
        .or_else(|| stack.as_ref().map(|s| s.api_url.clone()))
        .ok_or_else(|| SimError::Config("no --api-url and no stack.json".into()))?;
    let admin = args
        .admin_token
        .clone()
        .or_else(|| stack.as_ref().map(|s| s.admin_token.clone()))
        .ok_or_else(|| SimError::Config("no --admin-token and no stack.json".into()))?;
    let org = OrgId::new(args.org.clone())?;
    let tenant = TenantId::new(args.tenant.clone())?;
    let prefix = args
        .prefix
        .clone()
        .unwrap_or_else(|| format!("sim-{:06x}", rand_u32() & 0xff_ffff));
    let api = Api::new(&api_url, &admin)?;
    eprintln!("enrolling {} nodes through {api_url} ...", args.nodes);
    let started = std::time::Instant::now();
    let (mut nodes, urls) = enroll(
        &api,
        &org,
        &tenant,
        &prefix,
        args.nodes,
        args.enroll_concurrency,
        true,
    )
    .await?;
    let enroll_secs = started.elapsed().as_secs_f64();
    let nats_urls = match (&args.nats_url, urls.is_empty()) {
        (Some(u), _) => vec![u.clone()],
        (None, false) => urls,
        (None, true) => vec![
            stack
                .as_ref()
                .map(|s| s.nats_url.clone())
                .ok_or_else(|| SimError::Config("no NATS URL".into()))?,
        ],
    };
    let shared = if args.own_credentials {
        None
    } else {
        let dir = args
            .keys_dir
            .clone()
            .unwrap_or_else(|| args.data_dir.join("keys"));
        let keys = ritma_bus::BusKeys::load(&dir).map_err(|e| SimError::Bus(e.to_string()))?;
        let jwt = keys
            .controller_user_jwt()
            .map_err(|e| SimError::Bus(e.to_string()))?;
        let seed = keys
            .controller_user
            .seed()
            .map_err(|e| SimError::Bus(e.to_string()))?;
        let key = KeyPair::from_seed(&seed).map_err(|e| SimError::Bus(e.to_string()))?;
        for n in &mut nodes {
            n.creds = None;
        }
        Some(SharedCreds {
            jwt,
            key: Arc::new(key),
        })
    };
    eprintln!(
        "enrolled in {enroll_secs:.1}s; sending for {}s ...",
        args.duration_secs
    );
    let cfg = RunConfig {
        nats_urls,
        shared,
        nodes_per_connection: args.nodes_per_connection,
        heartbeat: duration_secs(args.heartbeat_secs),
        summary: duration_secs(args.summary_secs),
        summaries: args.summaries,
        duration: duration_secs(args.duration_secs).unwrap_or(Duration::from_secs(30)),
        window: args.window.max(1),
        progress: Some(Duration::from_secs(2)),
        ack_sink: None,
        linger: Duration::ZERO,
        seq_base: 0,
    };
    let mut report = run(nodes, cfg).await?;
    report.enroll_secs = enroll_secs;
    println!("{report}");
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report).unwrap_or_default();
        std::fs::write(path, text).map_err(|e| SimError::Config(e.to_string()))?;
    }
    Ok(report)
}

fn rand_u32() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32))
        .unwrap_or(0);
    t ^ std::process::id().rotate_left(16)
}
