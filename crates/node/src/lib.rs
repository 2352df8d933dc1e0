//! `ritma-node`, the node daemon: keeps its own NKey identity, enrolls once,
//! publishes heartbeats and SLO, usage and enforcement summaries through a
//! disk spool to its own JetStream subjects, refreshes its bus credential
//! before it expires, and listens for commands.

pub mod bus_link;
pub mod commands;
pub mod compliance;
pub mod config;
pub mod connectors;
pub mod controller_client;
pub mod diagnose;
pub mod emitter;
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
use std::time::Duration;

use chrono::Utc;
use nkeys::KeyPair;
use ritma_bus::connect::SharedJwt;
use ritma_protocol::NodeHealth;
use ritma_protocol::enrollment::RegisterRequest;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

pub use config::{Args, NodeConfig};

use crate::bus_link::BusLink;
use crate::controller_client::ControllerClient;
use crate::emitter::Emitter;
use crate::identity::Identity;
use crate::recorder::Recorder;
use crate::sender::{Sender, SpoolGauge};
use crate::seq::SeqCounter;
use crate::spool::{Spool, SpoolEntry};

pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The daemon's default log filter: the bus client's own lines (one per
/// reconnect attempt, at INFO) are left out; [`bus_link`] says at WARN,
/// naming the address, when the bus cannot be reached.
pub const DEFAULT_LOG_FILTER: &str = "info,async_nats=warn";

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

    /// A new bus credential from the controller (pinning its control key
    /// if none is pinned yet); returns the bus addresses it handed out.
    async fn refresh(&mut self, shutdown: &CancellationToken) -> anyhow::Result<Vec<String>> {
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
        Ok(reply.nats_urls)
    }

    /// The bus addresses: the configuration's first, else the latest the
    /// controller handed out.
    fn bus_urls(&self) -> Vec<String> {
        if self.config.nats_urls.is_empty() {
            self.identity.nats_urls.clone()
        } else {
            self.config.nats_urls.clone()
        }
    }

    async fn bus_connect(&self) -> anyhow::Result<BusLink> {
        let urls = self.bus_urls();
        let tls = transport::bus_tls(
            self.config.ca_file.as_deref(),
            self.identity.bus_ca_pem.as_deref(),
            &self.config.state_dir,
        )?;
        transport::nats_urls_check(&urls, &tls, self.config.allow_plaintext)?;
        let spec = bus_link::LinkSpec {
            name: format!("ritma-node/{}", self.identity.node_id),
            jwt: self.jwt.clone(),
            key: self.key.clone(),
            inbox_prefix: self.identity.inbox_prefix.clone(),
            tls,
        };
        Ok(BusLink::connect(spec, urls).await?)
    }

    /// Keep the addresses the controller hands out, and move to them when
    /// the bus is lost and the configuration names none.
    async fn bus_follow(&mut self, link: &mut BusLink, handed_out: Vec<String>) {
        if handed_out.is_empty() || !self.config.nats_urls.is_empty() {
            return;
        }
        if handed_out != self.identity.nats_urls {
            self.identity.nats_urls = handed_out.clone();
            if let Err(e) = identity::identity_save(&self.config.state_dir, &self.identity) {
                tracing::warn!(error = %e, "could not keep the bus's new addresses");
            }
        }
        if link.urls() == handed_out.as_slice() || link.down_for().is_none() {
            return;
        }
        let tls = transport::bus_tls(
            self.config.ca_file.as_deref(),
            self.identity.bus_ca_pem.as_deref(),
            &self.config.state_dir,
        );
        let checked = tls.map_err(anyhow::Error::from).and_then(|tls| {
            transport::nats_urls_check(&handed_out, &tls, self.config.allow_plaintext)
                .map_err(anyhow::Error::from)
        });
        if let Err(e) = checked {
            tracing::error!(error = %e, "the controller's bus addresses are refused here");
            return;
        }
        if let Err(e) = link.move_to(handed_out).await {
            tracing::error!(error = %e, "could not connect to the bus's new addresses");
        }
    }

    fn heartbeat_secs(&self) -> u32 {
        self.config
            .heartbeat_secs
            .unwrap_or(self.identity.heartbeat_secs)
            .clamp(1, 3600)
    }

    fn command_handler(
        &self,
        link: &BusLink,
        refresh_now: Arc<Notify>,
        policy_now: Arc<Notify>,
    ) -> commands::CommandHandler {
        commands::CommandHandler {
            bus: link.watch(),
            subject: self.identity.scope().commands_wildcard(),
            refresh_now,
            policy_now,
            recorder: self.recorder.clone(),
            compliance: self.compliance.clone(),
            org: self.identity.org_id.clone(),
            node: self.identity.node_id.clone(),
            pinned: self.pinned.clone(),
            replay: commands::ReplayGuard::open(self.config.state_dir.join("commands_seen.json")),
            config: Arc::new(self.config.clone()),
        }
    }

    fn policy_sync(&self) -> Option<policy_sync::PolicySync> {
        Some(policy_sync::PolicySync {
            client: self.client.clone()?,
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
        })
    }

    /// Refresh the bus credential at two thirds of its lifetime or when
    /// asked, and ask the controller where the bus is when it is lost.
    async fn keep_credential_and_bus(
        &mut self,
        link: &mut BusLink,
        refresh_now: Arc<Notify>,
        shutdown: &CancellationToken,
    ) {
        let mut lost = LostBus::new(self.heartbeat_secs());
        loop {
            let left = (self.jwt_expires_at - Utc::now().timestamp()).max(0) as u64;
            let wait = Duration::from_secs((left * 2 / 3).max(5));
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(wait) => {}
                _ = refresh_now.notified() => {}
                _ = tokio::time::sleep(LostBus::CHECK_EVERY) => {
                    if !lost.ask_controller(link.down_for()) {
                        continue;
                    }
                    tracing::warn!(bus = %link.urls().join(", "), "the bus is unreachable; asking the controller for its current addresses");
                }
            }
            match self.refresh(shutdown).await {
                Ok(urls) => {
                    tracing::info!("bus credential refreshed");
                    self.bus_follow(link, urls).await;
                }
                Err(_) if shutdown.is_cancelled() => break,
                Err(e) => {
                    tracing::error!(error = %e, "credential refresh refused; the node cannot stay on the bus");
                    tokio::time::sleep(Duration::from_secs(30)).await;
                }
            }
        }
    }

    pub async fn run(mut self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut link = self.bus_connect().await?;
        let (outbox, tx, gauge) = self.open_outbox(&link)?;
        let emitter = self.telemetry_emitter(tx, gauge.clone())?;
        let (refresh_now, policy_now) = (Arc::new(Notify::new()), Arc::new(Notify::new()));

        let mut tasks = tokio::task::JoinSet::new();
        if let Some(addr) = self.config.metrics_listen {
            let jwt = self.jwt.clone();
            tasks.spawn(metrics::serve(
                addr,
                gauge,
                link.watch(),
                jwt,
                shutdown.clone(),
            ));
        }
        tasks.spawn(
            self.command_handler(&link, refresh_now.clone(), policy_now.clone())
                .run(),
        );
        tasks.spawn(emitter.clone().run(
            Duration::from_secs(u64::from(self.config.summary_secs)),
            self.config.demo_decisions_per_sec,
            shutdown.clone(),
        ));
        if let Some(sync) = self.policy_sync() {
            tasks.spawn(policy_sync_reporting(
                sync,
                emitter.clone(),
                policy_now,
                shutdown.clone(),
            ));
        }

        self.keep_credential_and_bus(&mut link, refresh_now, &shutdown)
            .await;

        tasks.abort_all();
        stop_gracefully(emitter, outbox, &link).await;
        Ok(())
    }

    /// The spool and its sender: every message goes to disk first and on
    /// to the bus when it is there (nothing is lost while it is not).
    fn open_outbox(
        &self,
        link: &BusLink,
    ) -> anyhow::Result<(Outbox, mpsc::Sender<SpoolEntry>, Arc<SpoolGauge>)> {
        let spool = Spool::open(
            &self.config.state_dir.join("spool"),
            self.config.spool_max_bytes,
        )?;
        let (tx, rx) = mpsc::channel::<SpoolEntry>(1024);
        let gauge = Arc::new(SpoolGauge::default());
        let stop = CancellationToken::new();
        let sender = Sender::new(
            spool,
            link.watch(),
            self.identity.scope(),
            rx,
            gauge.clone(),
        );
        let task = tokio::spawn(sender.run(stop.clone(), Duration::from_secs(3)));
        Ok((Outbox { task, stop }, tx, gauge))
    }

    /// Heartbeats and summaries, numbered in order across restarts.
    fn telemetry_emitter(
        &self,
        tx: mpsc::Sender<SpoolEntry>,
        gauge: Arc<SpoolGauge>,
    ) -> anyhow::Result<Emitter> {
        Ok(Emitter {
            tx,
            seq: SeqCounter::open(&self.config.state_dir.join("seq"))?,
            facts: emitter::HeartbeatFacts {
                node_id: self.identity.node_id.clone(),
                interval_secs: self.heartbeat_secs(),
                key_id: self.config.key_id.clone(),
                hostname: host::hostname(),
                recorder: self.recorder.clone(),
                policy: self.policy.clone(),
                gauge,
            },
            compliance: self.compliance.clone(),
        })
    }
}

/// The spool's sender task and how to stop it.
struct Outbox {
    task: tokio::task::JoinHandle<()>,
    stop: CancellationToken,
}

/// Policy sync that reports a new policy version at once (a heartbeat), not
/// at the next beat.
async fn policy_sync_reporting(
    sync: policy_sync::PolicySync,
    emitter: Emitter,
    now: Arc<Notify>,
    stop: CancellationToken,
) {
    let beat = || {
        let emitter = emitter.clone();
        async move { emitter.emit_heartbeat(NodeHealth::Ok).await }
    };
    sync.run(now, stop, beat).await
}

/// Graceful stop: the last summaries and a heartbeat that says so, then the
/// spool sent on as far as the bus takes it.
async fn stop_gracefully(emitter: Emitter, outbox: Outbox, link: &BusLink) {
    emitter.emit_summaries().await;
    emitter.emit_heartbeat(NodeHealth::Stopping).await;
    drop(emitter);
    outbox.stop.cancel();
    let _ = outbox.task.await;
    let _ = link.client_now().flush().await;
}

/// When to ask the controller where the bus is: once no server has
/// answered for about an interval (jittered, so a fleet does not ask at
/// once after a bus restart), then with a back-off while that changes nothing.
struct LostBus {
    first_after: Duration,
    next_after: Duration,
}

impl LostBus {
    const CHECK_EVERY: Duration = Duration::from_secs(2);
    const MAX_BACKOFF: Duration = Duration::from_secs(300);

    fn new(heartbeat_secs: u32) -> Self {
        let jitter = 1.0 + rand::random::<f64>() * 0.5;
        let first = Duration::from_secs_f64(f64::from(heartbeat_secs.max(4)) * jitter);
        Self {
            first_after: first,
            next_after: first,
        }
    }

    /// Whether to ask now, given how long the bus has been unreachable.
    fn ask_controller(&mut self, down_for: Option<Duration>) -> bool {
        match down_for {
            None => {
                self.next_after = self.first_after;
                false
            }
            Some(down) if down >= self.next_after => {
                self.next_after = (down + self.next_after).min(down + Self::MAX_BACKOFF);
                true
            }
            Some(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_bus_is_asked_about_after_an_interval_then_with_back_off() {
        let mut lost = LostBus {
            first_after: Duration::from_secs(5),
            next_after: Duration::from_secs(5),
        };
        let s = Duration::from_secs;
        assert!(!lost.ask_controller(None));
        assert!(!lost.ask_controller(Some(s(4))));
        assert!(lost.ask_controller(Some(s(5))));
        // Not again until the back-off (twice as long) has passed.
        assert!(!lost.ask_controller(Some(s(7))));
        assert!(lost.ask_controller(Some(s(10))));
        assert!(!lost.ask_controller(Some(s(19))));
        assert!(lost.ask_controller(Some(s(20))));
        // Reconnected: the next loss is asked about after an interval again.
        assert!(!lost.ask_controller(None));
        assert!(lost.ask_controller(Some(s(5))));
        // The back-off is bounded.
        let mut long = LostBus {
            first_after: s(5),
            next_after: s(10_000),
        };
        assert!(long.ask_controller(Some(s(10_000))));
        assert_eq!(long.next_after, s(10_300));
    }
}
