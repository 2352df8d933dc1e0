//! `ritma-node`, the node daemon: keeps its own NKey identity, enrolls once,
//! publishes heartbeats and SLO, usage and enforcement summaries through a
//! disk spool to its own JetStream subjects, refreshes its bus credential
//! before it expires, and listens for commands.

pub mod commands;
pub mod compliance;
pub mod config;
pub mod connectors;
pub mod controller_client;
pub mod diagnose;
pub mod host;
pub mod identity;
pub mod metrics;
pub mod policy;
pub mod policy_sync;
pub mod recorder;
pub mod sender;
pub mod seq;
pub mod spool;
pub mod transport;
pub mod trust;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::Utc;
use nkeys::KeyPair;
use ritma_bus::connect::{self, SharedJwt};
use ritma_protocol::enrollment::RegisterRequest;
use ritma_protocol::{
    EnforcementSummary, Heartbeat, NodeHealth, SCHEMA_VERSION, SloSummary, SpoolStats, Telemetry,
    UsageReport,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use config::{Args, NodeConfig};

use crate::controller_client::ControllerClient;
use crate::identity::Identity;
use crate::recorder::{Decision, Recorder};
use crate::sender::{Sender, SpoolGauge};
use crate::seq::SeqCounter;
use crate::spool::{Spool, SpoolEntry};

pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

pub struct Daemon {
    config: NodeConfig,
    identity: Identity,
    key: Arc<KeyPair>,
    jwt: SharedJwt,
    jwt_expires_at: i64,
    client: Option<Arc<ControllerClient>>,
    pub recorder: Arc<Recorder>,
    policy: Arc<policy::PolicyStore>,
    compliance: Arc<compliance::ComplianceIndex>,
    pinned: Arc<trust::PinnedKey>,
}

/// Ask again while the controller is unreachable; give up on a refusal.
async fn with_retry<T, F, Fut>(
    what: &str,
    shutdown: &CancellationToken,
    mut f: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, controller_client::ClientError>>,
{
    let mut delay = Duration::from_millis(500);
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if e.is_permanent() => anyhow::bail!("{what}: {e}"),
            Err(e) => {
                tracing::warn!(error = %e, "{what} failed; retrying in {delay:?}");
                tokio::select! {
                    _ = shutdown.cancelled() => anyhow::bail!("{what}: stopped"),
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
    }
}

fn jwt_expiry(jwt: &str) -> i64 {
    ritma_bus::jwt::decode_verified(jwt)
        .ok()
        .and_then(|c| c.exp)
        .unwrap_or(0)
}

impl Daemon {
    /// Load or create the identity, enrolling on first start.
    pub async fn build(config: NodeConfig, shutdown: &CancellationToken) -> anyhow::Result<Self> {
        identity::state_dir_prepare(&config.state_dir)?;
        let key = identity::key_load_or_create(&config.keystore_path)?;
        if let Some(url) = &config.controller_url {
            transport::controller_url_check(url, config.allow_plaintext)?;
        }
        let client = config
            .controller_url
            .as_deref()
            .map(|url| ControllerClient::new(url, config.ca_file.as_deref()))
            .transpose()?;
        let (identity, jwt) = match identity::identity_load(&config.state_dir)? {
            Some(id) => {
                tracing::info!(node = %id.node_id, "identity loaded; not enrolling again");
                let cached = std::fs::read_to_string(config.state_dir.join("credentials.jwt"))
                    .unwrap_or_default();
                (id, cached.trim().to_owned())
            }
            None => {
                let client = client.as_ref().ok_or_else(|| {
                    anyhow::anyhow!("first start: RITMA_NODE_CONTROLLER_URL is required to enroll")
                })?;
                let token = config.enroll_token.clone().ok_or_else(|| {
                    anyhow::anyhow!("first start: RITMA_ENROLL_TOKEN is required to enroll")
                })?;
                let hostname = host::hostname();
                let request = RegisterRequest {
                    token,
                    public_key: key.public_key(),
                    hostname: hostname.clone(),
                    labels: config.labels.clone(),
                    capabilities: vec!["heartbeat".into(), "summaries".into(), "spool".into()],
                    agent_version: AGENT_VERSION.into(),
                    node_id: config
                        .node_id
                        .clone()
                        .map(ritma_protocol::NodeId::new)
                        .transpose()?,
                };
                let reply =
                    with_retry("enrollment", shutdown, || client.register(&request)).await?;
                for (want, got, what) in [
                    (config.org_id.as_deref(), reply.org_id.as_str(), "org"),
                    (
                        config.tenant_id.as_deref(),
                        reply.tenant_id.as_str(),
                        "tenant",
                    ),
                ] {
                    if let Some(want) = want
                        && want != got
                    {
                        tracing::warn!(
                            "configured {what} {want} differs from the token's {got}; using {got}"
                        );
                    }
                }
                // Everything the node acts on later is signed by this key.
                if !ritma_protocol::trust::is_control_key(&reply.control_key) {
                    anyhow::bail!(
                        "the controller at {} sent no valid org control key at enrollment \
                         ({:?}); this daemon acts only on signed commands and policies: \
                         upgrade the controller",
                        config.controller_url.as_deref().unwrap_or_default(),
                        reply.control_key
                    );
                }
                let identity = Identity {
                    node_id: reply.node_id,
                    org_id: reply.org_id,
                    tenant_id: reply.tenant_id,
                    public_key: key.public_key(),
                    controller_url: config.controller_url.clone().unwrap_or_default(),
                    nats_urls: reply.nats_urls,
                    inbox_prefix: reply.inbox_prefix,
                    heartbeat_secs: reply.heartbeat_secs,
                    enrolled_at: Utc::now(),
                    control_key: reply.control_key,
                    bus_ca_pem: reply.bus_ca_pem,
                };
                identity::identity_save(&config.state_dir, &identity)?;
                tracing::info!(node = %identity.node_id, org = %identity.org_id, tenant = %identity.tenant_id, "enrolled");
                (identity, reply.jwt)
            }
        };
        let client = match client {
            Some(c) => Some(c),
            None if !identity.controller_url.is_empty() => {
                transport::controller_url_check(&identity.controller_url, config.allow_plaintext)?;
                Some(ControllerClient::new(
                    &identity.controller_url,
                    config.ca_file.as_deref(),
                )?)
            }
            None => None,
        }
        .map(Arc::new);
        let mut daemon = Self {
            pinned: Arc::new(trust::PinnedKey::new(
                identity.org_id.clone(),
                identity.control_key.clone(),
                config.state_dir.clone(),
            )),
            policy: Arc::new(policy::PolicyStore::open(&config.state_dir)),
            compliance: Arc::new(compliance::ComplianceIndex::new(
                config.compliance_index.clone(),
            )),
            jwt_expires_at: jwt_expiry(&jwt),
            jwt: SharedJwt::new(jwt),
            config,
            identity,
            key: Arc::new(key),
            client,
            recorder: Arc::new(Recorder::default()),
        };
        daemon.save_jwt();
        // A node enrolled before control keys existed pins its org's key
        // from the refresh (it acts on no command or policy until then).
        if daemon.jwt_expires_at - Utc::now().timestamp() < 60
            || daemon.identity.control_key.is_empty()
        {
            daemon.refresh(shutdown).await?;
        }
        Ok(daemon)
    }

    /// Re-key: make a new NKey, have the controller move the node to it
    /// (proven by the current key), then keep the new seed. The old key is
    /// revoked at the broker by the controller.
    pub async fn rekey(&mut self) -> anyhow::Result<()> {
        let client = self
            .client
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("no controller URL to re-key with"))?;
        let new_key = KeyPair::new_user();
        let reply = client
            .rekey(&self.identity.node_id, &self.key, &new_key.public_key())
            .await?;
        let path = &self.config.keystore_path;
        let previous = path.with_extension("nk.previous");
        std::fs::copy(path, &previous)?;
        ritma_bus::creds::write_private(path, &new_key.seed()?)?;
        self.identity.public_key = new_key.public_key();
        identity::identity_save(&self.config.state_dir, &self.identity)?;
        self.key = Arc::new(new_key);
        self.jwt.set(reply.jwt);
        self.jwt_expires_at = reply.jwt_expires_at.timestamp();
        self.save_jwt();
        let _ = std::fs::remove_file(previous);
        tracing::info!(node = %self.identity.node_id, "re-keyed");
        Ok(())
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    fn save_jwt(&self) {
        let path = self.config.state_dir.join("credentials.jwt");
        if let Err(e) = ritma_bus::creds::write_private(&path, &self.jwt.get()) {
            tracing::warn!(error = %e, "could not cache the bus credential");
        }
    }

    async fn refresh(&mut self, shutdown: &CancellationToken) -> anyhow::Result<()> {
        let client = self
            .client
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("no controller URL to refresh credentials from"))?;
        let reply = with_retry("credential refresh", shutdown, || {
            client.refresh(&self.identity.node_id, &self.key)
        })
        .await?;
        self.jwt.set(reply.jwt);
        self.jwt_expires_at = reply.jwt_expires_at.timestamp();
        self.save_jwt();
        if self.pinned.adopt_if_unpinned(&reply.control_key) {
            self.identity.control_key = reply.control_key;
        }
        Ok(())
    }

    pub async fn run(mut self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let scope = self.identity.scope();
        // The configuration wins over what enrollment handed out.
        let urls = if self.config.nats_urls.is_empty() {
            self.identity.nats_urls.clone()
        } else {
            self.config.nats_urls.clone()
        };
        let tls = transport::bus_tls(
            self.config.ca_file.as_deref(),
            self.identity.bus_ca_pem.as_deref(),
            &self.config.state_dir,
        )?;
        transport::nats_urls_check(&urls, &tls, self.config.allow_plaintext)?;
        let nats = connect::connect_with_tls(
            connect::ConnectSpec {
                urls,
                name: format!("ritma-node/{}", self.identity.node_id),
                jwt: self.jwt.clone(),
                key: self.key.clone(),
                inbox_prefix: Some(self.identity.inbox_prefix.clone()),
                retry_initial: true,
            },
            &tls,
        )
        .await?;
        let js = async_nats::jetstream::new(nats.clone());
        let spool = Spool::open(
            &self.config.state_dir.join("spool"),
            self.config.spool_max_bytes,
        )?;
        let seq = SeqCounter::open(&self.config.state_dir.join("seq"))?;
        let (tx, rx) = mpsc::channel::<SpoolEntry>(1024);
        let gauge = Arc::new(SpoolGauge::default());
        let interval = self
            .config
            .heartbeat_secs
            .unwrap_or(self.identity.heartbeat_secs)
            .clamp(1, 3600);

        let sender_stop = CancellationToken::new();
        let sender = tokio::spawn(
            Sender::new(spool, js, scope.clone(), rx, gauge.clone())
                .run(sender_stop.clone(), Duration::from_secs(3)),
        );
        let emitter = Emitter {
            tx,
            seq,
            node: self.identity.node_id.clone(),
        };
        let mut tasks = tokio::task::JoinSet::new();
        if let Some(addr) = self.config.metrics_listen {
            tasks.spawn(metrics::serve(
                addr,
                gauge.clone(),
                nats.clone(),
                self.jwt.clone(),
                shutdown.clone(),
            ));
        }

        // Commands for this node.
        let commands = nats.subscribe(scope.commands_wildcard()).await?;
        let refresh_now = Arc::new(tokio::sync::Notify::new());
        let policy_now = Arc::new(tokio::sync::Notify::new());
        tasks.spawn(
            commands::CommandHandler {
                nats: nats.clone(),
                refresh_now: refresh_now.clone(),
                policy_now: policy_now.clone(),
                recorder: self.recorder.clone(),
                compliance: self.compliance.clone(),
                org: self.identity.org_id.clone(),
                node: self.identity.node_id.clone(),
                pinned: self.pinned.clone(),
                replay: commands::ReplayGuard::open(
                    self.config.state_dir.join("commands_seen.json"),
                ),
                config: Arc::new(self.config.clone()),
            }
            .run(commands),
        );

        // Heartbeats and summaries.
        let loop_stop = shutdown.clone();
        let recorder = self.recorder.clone();
        let key_id = self.config.key_id.clone();
        let summary_every = Duration::from_secs(u64::from(self.config.summary_secs));
        let demo_rate = self.config.demo_decisions_per_sec;
        let hostname = host::hostname();
        let node_id = self.identity.node_id.clone();
        let heartbeat = {
            let gauge = gauge.clone();
            let policy = self.policy.clone();
            move |status: NodeHealth, seq: u64| {
                let applied = policy.applied();
                Heartbeat {
                    v: SCHEMA_VERSION,
                    node_id: node_id.clone(),
                    seq,
                    sent_at: Utc::now(),
                    status,
                    agent_version: AGENT_VERSION.into(),
                    interval_secs: interval,
                    policy_version: applied.version,
                    last_policy_sync_at: applied.synced_at,
                    policy_rejected: applied.rejected,
                    last_evidence_batch_at: None,
                    key_id: key_id.clone(),
                    slo_counters: recorder.totals(),
                    host: host::host_facts(&hostname),
                    spool: SpoolStats {
                        depth: gauge.depth.load(Ordering::Relaxed),
                        dropped: gauge.dropped.load(Ordering::Relaxed),
                    },
                }
            }
        };
        let heartbeat_loop = {
            let emitter = emitter.clone();
            let heartbeat = heartbeat.clone();
            let recorder = self.recorder.clone();
            let compliance = self.compliance.clone();
            async move {
                let mut next_summary = tokio::time::Instant::now() + summary_every;
                let mut demo_tick = tokio::time::interval(Duration::from_millis(
                    1000 / u64::from(demo_rate.max(1)),
                ));
                loop {
                    emitter.emit_heartbeat(&heartbeat, NodeHealth::Ok).await;
                    recorder.slo("daemon", "heartbeat", "emitted");
                    // Jitter of ±10% spreads a fleet's heartbeats over time.
                    let jitter = 0.9 + rand::random::<f64>() * 0.2;
                    let wait = Duration::from_secs_f64(f64::from(interval) * jitter);
                    let until = tokio::time::Instant::now() + wait;
                    loop {
                        tokio::select! {
                            _ = loop_stop.cancelled() => return,
                            _ = tokio::time::sleep_until(until) => break,
                            _ = tokio::time::sleep_until(next_summary) => {
                                emitter.emit_summaries(&recorder, &compliance).await;
                                next_summary += summary_every;
                            }
                            _ = demo_tick.tick(), if demo_rate > 0 => demo_decision(&recorder),
                        }
                    }
                }
            }
        };
        tasks.spawn(heartbeat_loop);

        // Policy: at start, when told, and periodically.
        if let Some(client) = self.client.clone() {
            let sync = policy_sync::PolicySync {
                client,
                key: self.key.clone(),
                org: self.identity.org_id.clone(),
                node: self.identity.node_id.clone(),
                pinned: self.pinned.clone(),
                store: self.policy.clone(),
                compliance: self.compliance.clone(),
                hold: self.config.policy_hold,
                // Follow signed CA bundles only when the bus CA is the one
                // pinned at enrollment (a configured file wins).
                bus_ca: self
                    .config
                    .ca_file
                    .is_none()
                    .then(|| std::sync::Mutex::new(self.identity.bus_ca_pem.clone())),
                every: Duration::from_secs(u64::from(self.config.policy_sync_secs)),
            };
            let emitter = emitter.clone();
            let heartbeat = heartbeat.clone();
            let stop = shutdown.clone();
            tasks.spawn(async move {
                sync.run(policy_now, stop, || async {
                    // Report the new version at once, not at the next beat.
                    emitter.emit_heartbeat(&heartbeat, NodeHealth::Ok).await;
                })
                .await;
            });
        }

        // Credential refresh: at two thirds of the lifetime, or when asked.
        loop {
            let left = (self.jwt_expires_at - Utc::now().timestamp()).max(0) as u64;
            let wait = Duration::from_secs((left * 2 / 3).max(5));
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(wait) => {}
                _ = refresh_now.notified() => {}
            }
            if let Err(e) = self.refresh(&shutdown).await {
                if shutdown.is_cancelled() {
                    break;
                }
                tracing::error!(error = %e, "credential refresh refused; the node cannot stay on the bus");
                tokio::time::sleep(Duration::from_secs(30)).await;
            } else {
                tracing::info!("bus credential refreshed");
            }
        }

        // Graceful stop: a last heartbeat that says so, then flush.
        tasks.abort_all();
        emitter
            .emit_summaries(&self.recorder, &self.compliance)
            .await;
        emitter
            .emit_heartbeat(&heartbeat, NodeHealth::Stopping)
            .await;
        drop(emitter);
        sender_stop.cancel();
        let _ = sender.await;
        let _ = nats.flush().await;
        Ok(())
    }
}

fn demo_decision(recorder: &Recorder) {
    let r: f64 = rand::random();
    let d = if r < 0.90 {
        Decision::Allow
    } else if r < 0.97 {
        Decision::Deny
    } else if r < 0.99 {
        Decision::Throttle
    } else {
        Decision::Isolate
    };
    recorder.decision(d);
    recorder.slo(
        "enforcer",
        "decide",
        if d == Decision::Allow {
            "allow"
        } else {
            "restrict"
        },
    );
    if rand::random::<f64>() < 0.05 {
        recorder.dig_files(1, 4096 + (rand::random::<u64>() % 65_536));
    }
}

/// Builds messages with the next sequence numbers and queues them for the sender.
#[derive(Clone)]
struct Emitter {
    tx: mpsc::Sender<SpoolEntry>,
    seq: SeqCounter,
    node: ritma_protocol::NodeId,
}

impl Emitter {
    async fn emit(&self, message: Telemetry) {
        let entry = SpoolEntry {
            kind: message.kind(),
            seq: message.seq(),
            body: String::from_utf8(message.encode()).unwrap_or_default(),
        };
        if self.tx.send(entry).await.is_err() {
            tracing::warn!("sender stopped; message not queued");
        }
    }

    async fn emit_heartbeat(
        &self,
        build: &impl Fn(NodeHealth, u64) -> Heartbeat,
        status: NodeHealth,
    ) {
        match self.seq.next() {
            Ok(seq) => {
                self.emit(Telemetry::Heartbeat(Box::new(build(status, seq))))
                    .await
            }
            Err(e) => tracing::error!(error = %e, "sequence counter unavailable"),
        }
    }

    async fn emit_summaries(&self, recorder: &Recorder, compliance: &compliance::ComplianceIndex) {
        let period = recorder.take_period();
        let start = period.start.unwrap_or_else(Utc::now);
        let end = Utc::now();
        let (Ok(s1), Ok(s2), Ok(s3)) = (self.seq.next(), self.seq.next(), self.seq.next()) else {
            tracing::error!("sequence counter unavailable");
            return;
        };
        let now = Utc::now();
        self.emit(Telemetry::Slo(SloSummary {
            v: SCHEMA_VERSION,
            node_id: self.node.clone(),
            seq: s1,
            sent_at: now,
            period_start: start,
            period_end: end,
            counts: period.slo_counts(),
        }))
        .await;
        self.emit(Telemetry::Usage(UsageReport {
            v: SCHEMA_VERSION,
            node_id: self.node.clone(),
            seq: s2,
            sent_at: now,
            period_start: start,
            period_end: end,
            decisions: period.decisions(),
            dig_files: period.dig_files,
            storage_bytes: period.storage_bytes,
            snapshot_exports: period.snapshot_exports,
        }))
        .await;
        compliance.append(
            self.node.as_str(),
            "enforcement_summary",
            serde_json::json!({
                "period_start": start, "period_end": end, "allow": period.allow,
                "deny": period.deny, "throttle": period.throttle, "isolate": period.isolate,
            }),
        );
        self.emit(Telemetry::Events(EnforcementSummary {
            v: SCHEMA_VERSION,
            node_id: self.node.clone(),
            seq: s3,
            sent_at: now,
            period_start: start,
            period_end: end,
            allow: period.allow,
            deny: period.deny,
            throttle: period.throttle,
            isolate: period.isolate,
        }))
        .await;
    }
}
