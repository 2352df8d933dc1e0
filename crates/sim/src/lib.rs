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

use std::collections::{BTreeMap, BinaryHeap};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream;
use chrono::Utc;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use nkeys::KeyPair;
use ritma_bus::connect::{ConnectSpec, SharedJwt};
use ritma_protocol::enrollment::{RegisterRequest, RegisterResponse};
use ritma_protocol::{
    EnforcementSummary, Heartbeat, HostFacts, IdError, NodeHealth, NodeId, NodeSubject, OrgId,
    SCHEMA_VERSION, SloCount, SloSummary, SpoolStats, Telemetry, TelemetryKind, TenantId,
    UsageReport,
};
use tokio::sync::mpsc;
use tokio::time::Instant;

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

/// What a simulated node needs to publish.
#[derive(Clone)]
pub struct SimNode {
    pub scope: NodeSubject,
    /// Own credentials: the node's key and JWT.
    pub creds: Option<(Arc<KeyPair>, String)>,
}

/// How the connections authenticate when nodes share them.
#[derive(Clone)]
pub struct SharedCreds {
    pub jwt: String,
    pub key: Arc<KeyPair>,
}

#[derive(Clone)]
pub struct RunConfig {
    pub nats_urls: Vec<String>,
    pub shared: Option<SharedCreds>,
    pub nodes_per_connection: usize,
    pub heartbeat: Option<Duration>,
    pub summary: Option<Duration>,
    pub summaries: SummaryMix,
    pub duration: Duration,
    pub window: usize,
    /// Print progress every this often (None: quiet).
    pub progress: Option<Duration>,
    /// Each acked publish: (stream sequence, when it was sent), for latency measurement.
    pub ack_sink: Option<mpsc::UnboundedSender<(u64, Instant)>>,
    /// Keep connections open (without sending) for this long after the run.
    pub linger: Duration,
    /// First sequence number minus one (a later run over the same nodes
    /// must start above the earlier one's, or its messages are duplicates).
    pub seq_base: u64,
}

#[derive(Default)]
pub struct Counters {
    pub sent: AtomicU64,
    pub acked: AtomicU64,
    pub failed: AtomicU64,
    pub connected: AtomicU64,
    pub connect_failed: AtomicU64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct SimReport {
    pub nodes: usize,
    pub connections: u64,
    pub connect_failed: u64,
    pub enroll_secs: f64,
    pub connect_secs: f64,
    pub run_secs: f64,
    pub sent: u64,
    pub acked: u64,
    pub failed: u64,
    pub sent_per_sec: f64,
    pub acked_per_sec: f64,
}

impl std::fmt::Display for SimReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "nodes {} on {} connections ({} failed to connect); enroll {:.1}s, connect {:.1}s; \
             ran {:.1}s: sent {}, acked {}, failed {}; {:.0} msg/s sent, {:.0} msg/s acked",
            self.nodes,
            self.connections,
            self.connect_failed,
            self.enroll_secs,
            self.connect_secs,
            self.run_secs,
            self.sent,
            self.acked,
            self.failed,
            self.sent_per_sec,
            self.acked_per_sec
        )
    }
}

/// A thin admin client for the few calls the simulator makes.
#[derive(Clone)]
pub struct Api {
    pub url: String,
    pub token: String,
    pub http: reqwest::Client,
}

impl Api {
    pub fn new(url: &str, token: &str) -> Result<Self, SimError> {
        Ok(Self {
            url: url.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(64)
                .timeout(Duration::from_secs(30))
                .build()?,
        })
    }

    async fn post(
        &self,
        what: &'static str,
        path: &str,
        body: &serde_json::Value,
        ok: &[u16],
    ) -> Result<serde_json::Value, SimError> {
        let resp = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        if !ok.contains(&status) {
            return Err(SimError::Api {
                what,
                status,
                body: text.chars().take(500).collect(),
            });
        }
        Ok(serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
    }

    /// Create the org unless it exists.
    pub async fn org_ensure(&self, org: &OrgId) -> Result<(), SimError> {
        self.post(
            "create org",
            "/api/orgs",
            &serde_json::json!({ "id": org.as_str() }),
            &[200, 201, 409],
        )
        .await
        .map(|_| ())
    }

    /// An enrollment token for `max_uses` nodes; returns its secret.
    pub async fn token_create(
        &self,
        org: &OrgId,
        tenant: &TenantId,
        max_uses: usize,
    ) -> Result<String, SimError> {
        let max_uses = i32::try_from(max_uses)
            .map_err(|_| SimError::Config("too many nodes for one token".into()))?;
        let body = self
            .post(
                "create token",
                &format!("/api/orgs/{org}/enrollment-tokens"),
                &serde_json::json!({ "tenant_id": tenant.as_str(), "max_uses": max_uses,
                                     "labels": { "sim": "true" } }),
                &[200, 201],
            )
            .await?;
        body["token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| SimError::Api {
                what: "create token",
                status: 201,
                body: "no token in the answer".into(),
            })
    }

    /// Register one node with its own fresh key, as the daemon does.
    pub async fn register(
        &self,
        token: &str,
        node: &NodeId,
    ) -> Result<(RegisterResponse, KeyPair), SimError> {
        let key = KeyPair::new_user();
        let req = RegisterRequest {
            token: token.to_owned(),
            public_key: key.public_key(),
            hostname: node.to_string(),
            labels: BTreeMap::new(),
            capabilities: vec![],
            agent_version: "ritma-sim".into(),
            node_id: Some(node.clone()),
        };
        let resp = self
            .http
            .post(format!("{}/api/nodes/register", self.url))
            .json(&req)
            .send()
            .await?;
        let status = resp.status().as_u16();
        if status != 200 && status != 201 {
            return Err(SimError::Api {
                what: "register node",
                status,
                body: resp.text().await.unwrap_or_default(),
            });
        }
        Ok((resp.json().await?, key))
    }
}

/// Enroll `n` nodes through the API with one token of `max_uses = n`.
/// Returns the nodes and the NATS URLs enrollment handed out.
pub async fn enroll(
    api: &Api,
    org: &OrgId,
    tenant: &TenantId,
    prefix: &str,
    n: usize,
    concurrency: usize,
    progress: bool,
) -> Result<(Vec<SimNode>, Vec<String>), SimError> {
    api.org_ensure(org).await?;
    let token = Arc::new(api.token_create(org, tenant, n.max(1)).await?);
    let ids = (0..n)
        .map(|i| NodeId::new(format!("{prefix}-{i}")))
        .collect::<Result<Vec<_>, _>>()?;
    let started = std::time::Instant::now();
    let done = Arc::new(AtomicU64::new(0));
    let mut results = futures::stream::iter(ids.into_iter().map(|id| {
        let api = api.clone();
        let token = token.clone();
        let done = done.clone();
        async move {
            let r = api.register(&token, &id).await;
            let d = done.fetch_add(1, Ordering::Relaxed) + 1;
            if progress && d.is_multiple_of(1000) {
                eprintln!(
                    "  enrolled {d}/{n} ({:.0}/s)",
                    d as f64 / started.elapsed().as_secs_f64()
                );
            }
            r
        }
    }))
    .buffer_unordered(concurrency.max(1));
    let mut nodes = Vec::with_capacity(n);
    let mut urls = vec![];
    while let Some(r) = results.next().await {
        let (reply, key) = r?;
        if urls.is_empty() {
            urls = reply.nats_urls.clone();
        }
        nodes.push(SimNode {
            scope: NodeSubject::new(reply.org_id, reply.tenant_id, reply.node_id),
            creds: Some((Arc::new(key), reply.jwt)),
        });
    }
    Ok((nodes, urls))
}

fn host(node: &NodeId) -> HostFacts {
    HostFacts {
        hostname: node.to_string(),
        os: "linux".into(),
        kernel: "6.1.0-sim".into(),
        arch: "x86_64".into(),
        cpus: 4,
        memory_bytes: 8 << 30,
        uptime_secs: 3600,
    }
}

/// One message body of `kind` for `node`, built with the protocol's types.
pub fn message(node: &NodeId, kind: TelemetryKind, seq: u64, interval_secs: u32) -> Vec<u8> {
    let now = Utc::now();
    let start = now - chrono::Duration::seconds(60);
    let m = match kind {
        TelemetryKind::Heartbeat => Telemetry::Heartbeat(Box::new(Heartbeat {
            v: SCHEMA_VERSION,
            node_id: node.clone(),
            seq,
            sent_at: now,
            status: NodeHealth::Ok,
            agent_version: "ritma-sim".into(),
            interval_secs: interval_secs.clamp(1, 3600),
            policy_version: Some("p1".into()),
            last_policy_sync_at: Some(start),
            last_evidence_batch_at: None,
            key_id: None,
            slo_counters: BTreeMap::from([("decisions".into(), seq)]),
            host: host(node),
            spool: SpoolStats::default(),
            policy_rejected: None,
        })),
        TelemetryKind::Usage => Telemetry::Usage(UsageReport {
            v: SCHEMA_VERSION,
            node_id: node.clone(),
            seq,
            sent_at: now,
            period_start: start,
            period_end: now,
            decisions: 1200 + seq % 100,
            dig_files: 3,
            storage_bytes: 1 << 20,
            snapshot_exports: 0,
        }),
        TelemetryKind::Events => Telemetry::Events(EnforcementSummary {
            v: SCHEMA_VERSION,
            node_id: node.clone(),
            seq,
            sent_at: now,
            period_start: start,
            period_end: now,
            allow: 1000,
            deny: 12,
            throttle: 3,
            isolate: 0,
        }),
        TelemetryKind::Slo => Telemetry::Slo(SloSummary {
            v: SCHEMA_VERSION,
            node_id: node.clone(),
            seq,
            sent_at: now,
            period_start: start,
            period_end: now,
            counts: vec![SloCount {
                component: "enforcer".into(),
                operation: "decide".into(),
                outcome: "ok".into(),
                count: 1000,
            }],
        }),
    };
    m.encode()
}

fn duration_secs(secs: f64) -> Option<Duration> {
    (secs > 0.0 && secs.is_finite()).then(|| Duration::from_secs_f64(secs))
}

/// Next due send of one node (min-heap by time).
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Due(std::cmp::Reverse<Instant>, usize, bool);

async fn connect(
    cfg: &RunConfig,
    group: &[SimNode],
    index: usize,
) -> Result<async_nats::Client, SimError> {
    let (key, jwt, inbox) = match (&group[0].creds, &cfg.shared) {
        (Some((key, jwt)), None) => (
            key.clone(),
            jwt.clone(),
            Some(group[0].scope.inbox_prefix()),
        ),
        (_, Some(shared)) => (shared.key.clone(), shared.jwt.clone(), None),
        (None, None) => return Err(SimError::Config("no credentials for a connection".into())),
    };
    let spec = ConnectSpec {
        urls: cfg.nats_urls.clone(),
        name: format!("ritma-sim-{index}"),
        jwt: SharedJwt::new(jwt),
        key,
        inbox_prefix: inbox,
        retry_initial: false,
    };
    ritma_bus::connect::connect(spec)
        .await
        .map_err(|e| SimError::Bus(e.to_string()))
}

/// One connection's sender: publishes its nodes' messages when due, keeps
/// up to `window` acks in flight.
async fn drive(
    js: jetstream::Context,
    group: Vec<SimNode>,
    cfg: RunConfig,
    counters: Arc<Counters>,
    start: Instant,
    end: Instant,
) {
    let mut heap = BinaryHeap::new();
    let mut seqs = vec![cfg.seq_base; group.len()];
    // Spread first sends over the interval, so the fleet is not in lockstep.
    let n = group.len().max(1) as f64;
    for (i, node) in group.iter().enumerate() {
        let jitter = (i as f64 + hash01(node.scope.node.as_str())) / n;
        if let Some(h) = cfg.heartbeat {
            heap.push(Due(std::cmp::Reverse(start + h.mul_f64(jitter)), i, true));
        }
        if let Some(s) = cfg.summary {
            heap.push(Due(std::cmp::Reverse(start + s.mul_f64(jitter)), i, false));
        }
    }
    let interval_secs = cfg.heartbeat.map_or(60, |h| h.as_secs().max(1) as u32);
    let mut inflight = FuturesUnordered::new();
    loop {
        let next = heap.peek().map(|d| d.0.0);
        let Some(next) = next.filter(|t| *t < end) else {
            break;
        };
        if inflight.len() >= cfg.window {
            if let Some(r) = inflight.next().await {
                settle(r, &counters, &cfg);
            }
            continue;
        }
        tokio::select! {
            biased;
            Some(r) = inflight.next(), if !inflight.is_empty() => {
                settle(r, &counters, &cfg);
                continue;
            }
            _ = tokio::time::sleep_until(next) => {}
        }
        let Some(Due(std::cmp::Reverse(at), i, is_heartbeat)) = heap.pop() else {
            break;
        };
        let node = &group[i];
        seqs[i] += 1;
        let seq = seqs[i];
        let kind = if is_heartbeat {
            TelemetryKind::Heartbeat
        } else {
            match (cfg.summaries, seq % 3) {
                (SummaryMix::Usage, _) | (SummaryMix::Mixed, 0) => TelemetryKind::Usage,
                (SummaryMix::Mixed, 1) => TelemetryKind::Events,
                _ => TelemetryKind::Slo,
            }
        };
        let every = if is_heartbeat {
            cfg.heartbeat
        } else {
            cfg.summary
        };
        if let Some(every) = every {
            heap.push(Due(std::cmp::Reverse(at + every), i, is_heartbeat));
        }
        let body = message(&node.scope.node, kind, seq, interval_secs);
        let sent_at = Instant::now();
        match js.publish(node.scope.telemetry(kind), body.into()).await {
            Ok(ack) => {
                counters.sent.fetch_add(1, Ordering::Relaxed);
                inflight.push(async move { (ack.await, sent_at) });
            }
            Err(e) => {
                counters.failed.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(error = %e, "publish failed");
            }
        }
    }
    while let Some(r) = inflight.next().await {
        settle(r, &counters, &cfg);
    }
}

type AckResult = (
    Result<jetstream::publish::PublishAck, jetstream::context::PublishError>,
    Instant,
);

fn settle(r: AckResult, counters: &Counters, cfg: &RunConfig) {
    match r {
        (Ok(ack), sent_at) => {
            counters.acked.fetch_add(1, Ordering::Relaxed);
            if let Some(sink) = &cfg.ack_sink {
                let _ = sink.send((ack.sequence, sent_at));
            }
        }
        (Err(e), _) => {
            counters.failed.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(error = %e, "publish not acked");
        }
    }
}

/// A stable number in [0, 1) from a string (spreads start times).
fn hash01(s: &str) -> f64 {
    let h = s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    (h % 10_000) as f64 / 10_000.0
}

/// Connect every group, run the traffic for `cfg.duration`, report.
pub async fn run(nodes: Vec<SimNode>, cfg: RunConfig) -> Result<SimReport, SimError> {
    let counters = Arc::new(Counters::default());
    run_with(nodes, cfg, counters).await
}

pub async fn run_with(
    nodes: Vec<SimNode>,
    cfg: RunConfig,
    counters: Arc<Counters>,
) -> Result<SimReport, SimError> {
    if nodes.is_empty() {
        return Err(SimError::Config("no nodes".into()));
    }
    let per = if cfg.shared.is_some() {
        cfg.nodes_per_connection.max(1)
    } else {
        1
    };
    let total = nodes.len();
    let groups: Vec<Vec<SimNode>> = nodes.chunks(per).map(<[SimNode]>::to_vec).collect();
    let connect_started = Instant::now();
    // Connect with bounded concurrency (a connect storm only measures the accept queue).
    let mut connecting = futures::stream::iter(groups.into_iter().enumerate().map(|(i, g)| {
        let cfg = cfg.clone();
        async move {
            let r = connect(&cfg, &g, i).await;
            (r, g)
        }
    }))
    .buffer_unordered(64);
    let mut clients = Vec::new();
    while let Some((r, g)) = connecting.next().await {
        match r {
            Ok(c) => {
                counters.connected.fetch_add(1, Ordering::Relaxed);
                clients.push((c, g));
            }
            Err(e) => {
                let failed = counters.connect_failed.fetch_add(1, Ordering::Relaxed);
                if failed < 5 {
                    tracing::warn!(error = %e, "connect failed");
                }
            }
        }
        let c = counters.connected.load(Ordering::Relaxed);
        if cfg.progress.is_some() && c > 0 && c.is_multiple_of(1000) {
            eprintln!("  connected {c}");
        }
    }
    drop(connecting);
    let connect_secs = connect_started.elapsed().as_secs_f64();
    let start = Instant::now();
    let end = start + cfg.duration;
    let mut tasks = tokio::task::JoinSet::new();
    let mut keep = Vec::with_capacity(clients.len());
    for (client, group) in clients {
        let js = jetstream::new(client.clone());
        keep.push(client);
        tasks.spawn(drive(js, group, cfg.clone(), counters.clone(), start, end));
    }
    let reporter = cfg.progress.map(|every| {
        let counters = counters.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            let mut last = (0u64, Instant::now());
            loop {
                tick.tick().await;
                let acked = counters.acked.load(Ordering::Relaxed);
                let rate = (acked - last.0) as f64 / last.1.elapsed().as_secs_f64();
                last = (acked, Instant::now());
                eprintln!(
                    "  {:>5.0}s sent {} acked {} failed {} ({rate:.0} acked/s)",
                    start.elapsed().as_secs_f64(),
                    counters.sent.load(Ordering::Relaxed),
                    acked,
                    counters.failed.load(Ordering::Relaxed),
                );
            }
        })
    });
    while tasks.join_next().await.is_some() {}
    let run_secs = start.elapsed().as_secs_f64();
    if let Some(r) = reporter {
        r.abort();
    }
    tokio::time::sleep(cfg.linger).await;
    for c in &keep {
        let _ = c.flush().await;
    }
    drop(keep);
    let sent = counters.sent.load(Ordering::Relaxed);
    let acked = counters.acked.load(Ordering::Relaxed);
    Ok(SimReport {
        nodes: total,
        connections: counters.connected.load(Ordering::Relaxed),
        connect_failed: counters.connect_failed.load(Ordering::Relaxed),
        enroll_secs: 0.0,
        connect_secs,
        run_secs,
        sent,
        acked,
        failed: counters.failed.load(Ordering::Relaxed),
        sent_per_sec: sent as f64 / run_secs.max(1e-9),
        acked_per_sec: acked as f64 / run_secs.max(1e-9),
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_decode_as_their_kind() {
        let node = NodeId::new("sim-1").unwrap_or_else(|_| unreachable!());
        for kind in TelemetryKind::ALL {
            let body = message(&node, kind, 7, 10);
            let decoded = Telemetry::decode(kind, &body);
            assert!(decoded.is_ok(), "{kind}: {decoded:?}");
        }
    }
}
