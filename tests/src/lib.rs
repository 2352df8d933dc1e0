//! Test harness: a real nats-server started from `nats/server.conf` on a
//! free port, a fresh PostgreSQL database per test, and the controller
//! running in-process on port 0. Nodes are real daemons, in-process.

// A test harness: a panic here is a failed assertion.
#![allow(clippy::unwrap_used)]

pub mod alert_sinks;
pub mod bulk;
pub mod oidc;
pub mod prom;
pub mod replicas;
pub mod standins;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_nats::ServerError;
use nkeys::KeyPair;
use ritma_bus::BusKeys;
use ritma_controller::{Config, Controller};
use ritma_devstack::{NatsServer, NatsServerSpec};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";
pub const MASTER_KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

/// The server the fresh test databases are created on.
pub fn postgres_admin_url() -> String {
    std::env::var("RITMA_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RITMA_TEST_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
}

/// Test databases are named `ritma_test_<unix seconds>_<random>`; those older
/// than this are left over from earlier runs (no run lasts this long) and are
/// dropped, so the disk does not fill up run after run.
const TEST_DATABASE_MAX_AGE_SECS: u64 = 3 * 3600;

/// Create an empty database and return its URL.
pub async fn fresh_database() -> anyhow::Result<String> {
    static SWEPT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    let admin = postgres_admin_url();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let name = format!(
        "ritma_test_{now}_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let pool = PgPool::connect(&admin).await?;
    SWEPT
        .get_or_init(|| drop_stale_test_databases(&pool, now))
        .await;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&pool)
        .await?;
    pool.close().await;
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    Ok(format!("{base}/{name}"))
}

/// A fresh database with every migration applied (e.g. for a console
/// without a controller: its sessions live there).
pub async fn migrated_database() -> anyhow::Result<String> {
    let url = fresh_database().await?;
    let pool = PgPool::connect(&url).await?;
    ritma_db::migrate(&pool).await?;
    pool.close().await;
    Ok(url)
}

async fn drop_stale_test_databases(pool: &PgPool, now: u64) {
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'ritma\\_test\\_%'")
            .fetch_all(pool)
            .await
            .unwrap_or_default();
    for name in names {
        let created = name
            .strip_prefix("ritma_test_")
            .and_then(|rest| rest.split('_').next())
            .and_then(|secs| secs.parse::<u64>().ok());
        // Names without a timestamp belong to older harnesses: not ours to judge.
        if created.is_some_and(|at| at + TEST_DATABASE_MAX_AGE_SECS < now) {
            let drop = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
            if let Err(e) = sqlx::query(sqlx::AssertSqlSafe(drop)).execute(pool).await {
                tracing::warn!(%name, error = %e, "could not drop a stale test database");
            }
        }
    }
}

pub struct RunningController {
    pub api_url: String,
    shutdown: CancellationToken,
    handle: JoinHandle<anyhow::Result<()>>,
}

impl RunningController {
    /// Graceful stop.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.handle.await;
    }

    /// Abrupt stop, as a crash: nothing in flight is finished or acked.
    pub async fn kill(self) {
        self.handle.abort();
        let _ = self.handle.await;
    }
}

pub struct TestStack {
    pub dir: tempfile::TempDir,
    pub keys: BusKeys,
    pub nats: NatsServer,
    pub database_url: String,
    pub pool: PgPool,
    pub controller: Option<RunningController>,
    pub http: reqwest::Client,
}

impl TestStack {
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tune: impl Fn(&mut Config)) -> anyhow::Result<Self> {
        Self::start_on(fresh_database().await?, tune).await
    }

    /// A stack whose database is `database_url` (e.g. a private
    /// [`ritma_devstack::PostgresServer`] a test stops and restarts).
    pub async fn start_on(
        database_url: String,
        tune: impl Fn(&mut Config),
    ) -> anyhow::Result<Self> {
        init_logging();
        let dir = tempfile::tempdir()?;
        let keys = BusKeys::load_or_create(&dir.path().join("keys"))?;
        let nats = NatsServer::start(NatsServerSpec {
            data_dir: &dir.path().join("nats"),
            keys: &keys,
            port: 0,
            name: "ritma-test",
            cluster: None,
            tls: None,
        })
        .await?;
        let pool = PgPool::connect(&database_url).await?;
        let mut stack = Self {
            dir,
            keys,
            nats,
            database_url,
            pool,
            controller: None,
            http: reqwest::Client::new(),
        };
        stack.controller = Some(stack.start_controller(&tune).await?);
        Ok(stack)
    }

    pub fn config(&self) -> Config {
        let mut c = Config::new(
            self.database_url.clone(),
            vec![self.nats.url.clone()],
            self.dir.path().join("keys"),
        );
        c.master_key = Some(MASTER_KEY.into());
        c.admin_token = Some(ADMIN_TOKEN.into());
        c.reconcile_ms = 200;
        c.offline_grace_secs = 1;
        c.ack_wait_secs = 3;
        // Tests make many refused attempts on purpose; the limiter's own test tunes this down.
        c.enroll_failures_burst = 10_000;
        // Likewise for API budgets (their test sets them).
        c.api_rate_per_credential = 0;
        c.api_rate_per_address = 0;
        // Tests send far more per node than a node does (thousands of
        // messages from one node at once): the ingest's fair-share budgets
        // and the stream's per-subject bound are off, except in the tests of
        // those (noisy_neighbour, ingest_limits), which set the defaults back.
        c.ingest_node_rate = 0;
        c.ingest_org_rate = 0;
        c.ingest_dead_letter_rate = 0;
        c.telemetry_stream_max_msgs_per_subject = 0;
        // Tests flip nodes on and off on purpose; flapping (which would then
        // hold back their transitions) is on only in its own test.
        c.flapping_transitions = 0;
        c
    }

    /// The production defaults of the ingest's budgets and stream bounds
    /// (which `config` turns off for other tests).
    pub fn production_limits(c: &mut Config) {
        let d = Config::new(String::new(), vec![], PathBuf::new());
        c.ingest_node_rate = d.ingest_node_rate;
        c.ingest_node_burst = d.ingest_node_burst;
        c.ingest_org_rate = d.ingest_org_rate;
        c.ingest_org_burst = d.ingest_org_burst;
        c.ingest_dead_letter_rate = d.ingest_dead_letter_rate;
        c.ingest_dead_letter_burst = d.ingest_dead_letter_burst;
        c.telemetry_stream_max_msgs_per_subject = d.telemetry_stream_max_msgs_per_subject;
    }

    pub async fn start_controller(
        &self,
        tune: &impl Fn(&mut Config),
    ) -> anyhow::Result<RunningController> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        self.start_controller_on(listener, tune).await
    }

    /// Stop the controller gracefully; returns the address it listened on.
    pub async fn stop_controller(&mut self) -> String {
        let addr = self.api_url().trim_start_matches("http://").to_owned();
        if let Some(running) = self.controller.take() {
            running.stop().await;
        }
        addr
    }

    /// Start the controller on `addr` (where it listened before), with the
    /// stack's current settings (e.g. the bus's new URL).
    pub async fn start_controller_at(&mut self, addr: &str) -> anyhow::Result<()> {
        let mut bound = tokio::net::TcpListener::bind(addr).await;
        for _ in 0..50 {
            if bound.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            bound = tokio::net::TcpListener::bind(addr).await;
        }
        self.controller = Some(self.start_controller_on(bound?, &|_| {}).await?);
        Ok(())
    }

    async fn start_controller_on(
        &self,
        listener: tokio::net::TcpListener,
        tune: &impl Fn(&mut Config),
    ) -> anyhow::Result<RunningController> {
        let mut config = self.config();
        tune(&mut config);
        let api_url = format!("http://{}", listener.local_addr()?);
        let controller = Controller::build(config).await?;
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(controller.run(listener, shutdown.clone()));
        Ok(RunningController {
            api_url,
            shutdown,
            handle,
        })
    }

    pub fn api_url(&self) -> String {
        self.controller
            .as_ref()
            .map(|c| c.api_url.clone())
            .unwrap_or_default()
    }

    /// An admin API call; returns status and JSON body (Null when empty).
    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.api_url()))
            .bearer_auth(ADMIN_TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("API reachable");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn create_org(&self, org: &str) {
        let (status, body) = self
            .api(
                reqwest::Method::POST,
                "/api/orgs",
                Some(json!({ "id": org })),
            )
            .await;
        assert_eq!(status, 201, "create org: {body}");
    }

    pub async fn create_token(&self, org: &str, tenant: &str, max_uses: i32) -> String {
        let (status, body) = self
            .api(
                reqwest::Method::POST,
                &format!("/api/orgs/{org}/enrollment-tokens"),
                Some(json!({ "tenant_id": tenant, "max_uses": max_uses })),
            )
            .await;
        assert_eq!(status, 201, "create token: {body}");
        body["token"].as_str().expect("token secret").to_owned()
    }

    /// Enroll with a fresh key through the API, as a node would.
    pub async fn enroll_raw(&self, token: &str, node_id: &str) -> (u16, Value, KeyPair) {
        let key = KeyPair::new_user();
        let resp = self
            .http
            .post(format!("{}/api/nodes/register", self.api_url()))
            .json(&json!({
                "token": token, "public_key": key.public_key(), "hostname": node_id,
                "agent_version": "test", "node_id": node_id,
            }))
            .send()
            .await
            .expect("API reachable");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null), key)
    }

    /// Enroll `id` in `org`/`tenant` with a one-use token and connect it to
    /// the bus as that node: its connection, the enrollment reply, its key.
    pub async fn enroll_connected(
        &self,
        org: &str,
        tenant: &str,
        id: &str,
    ) -> (BusUser, Value, KeyPair) {
        let token = self.create_token(org, tenant, 1).await;
        let (status, reply, key) = self.enroll_raw(&token, id).await;
        assert_eq!(status, 200, "{reply}");
        let copy = KeyPair::from_seed(&key.seed().unwrap()).unwrap();
        (self.connect_node(&reply, key).await.unwrap(), reply, copy)
    }

    /// Connect to the bus as an enrolled node would, collecting server errors.
    pub async fn connect_node(&self, reply: &Value, key: KeyPair) -> anyhow::Result<BusUser> {
        BusUser::connect(
            &self.nats.url,
            reply["jwt"].as_str().unwrap_or_default(),
            key,
            reply["inbox_prefix"].as_str(),
        )
        .await
    }

    /// Start a real daemon in-process.
    pub async fn spawn_daemon(
        &self,
        token: Option<&str>,
        state_dir: PathBuf,
        heartbeat_secs: u32,
        summary_secs: u32,
    ) -> anyhow::Result<DaemonHandle> {
        self.spawn_daemon_with(token, state_dir, heartbeat_secs, summary_secs, |_| {})
            .await
    }

    /// Start a real daemon in-process, with further settings.
    pub async fn spawn_daemon_with(
        &self,
        token: Option<&str>,
        state_dir: PathBuf,
        heartbeat_secs: u32,
        summary_secs: u32,
        tune: impl FnOnce(&mut ritma_node::Args),
    ) -> anyhow::Result<DaemonHandle> {
        let mut args = ritma_node::Args {
            controller_url: Some(self.api_url()),
            enroll_token: token.map(str::to_owned),
            state_dir: Some(state_dir.clone()),
            heartbeat_secs: Some(heartbeat_secs),
            summary_secs: Some(summary_secs),
            ..Default::default()
        };
        tune(&mut args);
        let config = ritma_node::NodeConfig::resolve(args)?;
        let shutdown = CancellationToken::new();
        let daemon = ritma_node::Daemon::build(config, &shutdown).await?;
        let node_id = daemon.identity().node_id.to_string();
        let recorder = daemon.recorder.clone();
        let handle = tokio::spawn(daemon.run(shutdown.clone()));
        Ok(DaemonHandle {
            node_id,
            state_dir,
            shutdown,
            handle,
            recorder,
        })
    }

    /// Connect as a user of the controller account (sees the central stream).
    pub async fn controller_bus(&self) -> anyhow::Result<async_nats::Client> {
        Ok(ritma_bus::connect::connect_as(
            std::slice::from_ref(&self.nats.url),
            "test-observer",
            self.keys.controller_user_jwt()?,
            &self.keys.controller_user,
        )
        .await?)
    }

    /// Wait until `f` returns Some, polling.
    pub async fn eventually<T, F, Fut>(&self, what: &str, timeout: Duration, mut f: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let start = std::time::Instant::now();
        loop {
            if let Some(v) = f().await {
                return v;
            }
            assert!(
                start.elapsed() < timeout,
                "timed out after {timeout:?} waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn node_status(&self, node: &str) -> Option<String> {
        sqlx::query_scalar("SELECT status FROM nodes WHERE id = $1")
            .bind(node)
            .fetch_optional(&self.pool)
            .await
            .ok()
            .flatten()
    }

    /// Wait (up to `timeout`) until `node`'s stored status is `status`.
    pub async fn wait_status(&self, node: &str, status: &str, timeout: Duration) {
        self.eventually(&format!("{node} {status}"), timeout, || async {
            (self.node_status(node).await.as_deref() == Some(status)).then_some(())
        })
        .await;
    }

    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_one(&self.pool)
            .await
            .expect("count query")
    }

    /// Every telemetry message of `node` on the central stream, in stream
    /// order: (kind, node sequence). A copy the node re-sent after a lost ack
    /// (the stream keeps it, the ingest absorbs it) is left out after its
    /// original.
    pub async fn node_stream(&self, node: &str) -> Vec<(String, u64)> {
        let bus = self.controller_bus().await.unwrap();
        let mut stream = async_nats::jetstream::new(bus)
            .get_stream(ritma_bus::streams::TELEMETRY_STREAM)
            .await
            .unwrap();
        let state = stream.info().await.unwrap().state.clone();
        let mut out = Vec::new();
        for s in state.first_sequence..=state.last_sequence {
            let Ok(msg) = stream.get_raw_message(s).await else {
                continue;
            };
            let subject = msg.subject.to_string();
            if !subject.contains(&format!(".node.{node}.")) {
                continue;
            }
            let v: Value = serde_json::from_slice(&msg.payload).unwrap();
            let kind = subject.rsplit('.').next().unwrap().to_string();
            let message = (kind, v["seq"].as_u64().unwrap());
            if !out.contains(&message) {
                out.push(message);
            }
        }
        out
    }
}

/// The `ritma` binary of this build (`ritma controller` runs the controller
/// exactly as deployed).
pub fn ritma_binary() -> PathBuf {
    workspace_binary(&["ritma-cli"], "ritma")
}

/// A binary of this workspace, built once per test process with the same
/// cargo, profile and target folder as the tests, so it is never stale.
/// `packages` are selected for the build (selecting the tests' own package
/// too gives dependencies the test build's features, reusing its artifacts).
pub fn workspace_binary(packages: &[&str], bin: &str) -> PathBuf {
    static BUILT: std::sync::Mutex<BTreeMap<String, PathBuf>> =
        std::sync::Mutex::new(BTreeMap::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(path) = built.get(bin) {
        return path.clone();
    }
    // <target>/<profile>/deps/<test binary>
    let exe = std::env::current_exe().expect("current exe");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>")
        .to_path_buf();
    let target_dir = profile_dir.parent().expect("target folder").to_path_buf();
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = std::process::Command::new(cargo);
    cmd.current_dir(&workspace).args(["build", "--quiet"]);
    for package in packages {
        cmd.args(["-p", package]);
    }
    cmd.args(["--bin", bin])
        .arg("--target-dir")
        .arg(&target_dir);
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    let status = cmd.status().expect("cargo runs");
    assert!(status.success(), "building the {bin} binary failed");
    let path = profile_dir.join(bin);
    assert!(path.exists(), "{} missing after the build", path.display());
    built.insert(bin.to_owned(), path.clone());
    path
}

/// The controller as a real child process (`ritma controller`), so a test can
/// SIGKILL it in the middle of a batch.
pub struct ControllerProcess {
    pub api_url: String,
    pub child: std::process::Child,
}

impl ControllerProcess {
    /// SIGKILL: no shutdown handler runs, nothing in flight is finished or acked.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ControllerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl TestStack {
    /// Start `ritma controller` as a child process on this stack (stop the
    /// in-process controller first). `env` adds or overrides RITMA_* settings.
    pub async fn spawn_controller_process(
        &self,
        env: &[(&str, String)],
    ) -> anyhow::Result<ControllerProcess> {
        let c = self.config();
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0")?;
            l.local_addr()?.port()
        };
        let api_url = format!("http://127.0.0.1:{port}");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("controller-process.log"))?;
        let mut cmd = std::process::Command::new(ritma_binary());
        cmd.arg("controller")
            .env("RITMA_DATABASE_URL", &c.database_url)
            .env("RITMA_NATS_URL", c.nats_urls.join(","))
            .env("RITMA_NATS_KEYS_DIR", &c.nats_keys_dir)
            .env("RITMA_MASTER_KEY", MASTER_KEY)
            .env("RITMA_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("RITMA_API_LISTEN", format!("127.0.0.1:{port}"))
            .env("RITMA_RECONCILE_MS", c.reconcile_ms.to_string())
            .env("RITMA_OFFLINE_GRACE_SECS", c.offline_grace_secs.to_string())
            .env("RITMA_ACK_WAIT_SECS", c.ack_wait_secs.to_string())
            // The stack's limits, as the in-process controller has them (a
            // process with the defaults would narrow the shared stream).
            .env("RITMA_INGEST_NODE_RATE", c.ingest_node_rate.to_string())
            .env("RITMA_INGEST_NODE_BURST", c.ingest_node_burst.to_string())
            .env("RITMA_INGEST_ORG_RATE", c.ingest_org_rate.to_string())
            .env("RITMA_INGEST_ORG_BURST", c.ingest_org_burst.to_string())
            .env(
                "RITMA_INGEST_DEAD_LETTER_RATE",
                c.ingest_dead_letter_rate.to_string(),
            )
            .env(
                "RITMA_INGEST_DEAD_LETTER_BURST",
                c.ingest_dead_letter_burst.to_string(),
            )
            .env(
                "RITMA_TELEMETRY_STREAM_MAX_MSGS_PER_SUBJECT",
                c.telemetry_stream_max_msgs_per_subject.to_string(),
            )
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(log);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let process = ControllerProcess {
            api_url: api_url.clone(),
            child: cmd.spawn()?,
        };
        let start = std::time::Instant::now();
        loop {
            if let Ok(r) = self.http.get(format!("{api_url}/readyz")).send().await
                && r.status().is_success()
            {
                return Ok(process);
            }
            anyhow::ensure!(
                start.elapsed() < Duration::from_secs(60),
                "controller process not ready; see controller-process.log"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

pub struct DaemonHandle {
    pub node_id: String,
    pub state_dir: PathBuf,
    pub shutdown: CancellationToken,
    pub handle: JoinHandle<anyhow::Result<()>>,
    pub recorder: Arc<ritma_node::recorder::Recorder>,
}

impl DaemonHandle {
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.handle.await?
    }
}

/// A bus connection that records the server's error events (permission
/// violations arrive asynchronously, not as publish errors).
pub struct BusUser {
    pub client: async_nats::Client,
    pub errors: mpsc::UnboundedReceiver<String>,
}

impl BusUser {
    pub async fn connect(
        url: &str,
        jwt: &str,
        key: KeyPair,
        inbox: Option<&str>,
    ) -> anyhow::Result<Self> {
        let (tx, errors) = mpsc::unbounded_channel();
        let key = Arc::new(key);
        let mut opts = async_nats::ConnectOptions::with_jwt(jwt.to_owned(), move |nonce| {
            let key = key.clone();
            async move { key.sign(&nonce).map_err(async_nats::AuthError::new) }
        })
        .event_callback(move |event| {
            let tx = tx.clone();
            async move {
                let text = match event {
                    async_nats::Event::ServerError(ServerError::Other(s)) => s,
                    async_nats::Event::ServerError(e) => e.to_string(),
                    async_nats::Event::Disconnected => "disconnected".into(),
                    async_nats::Event::ClientError(e) => e.to_string(),
                    _ => return,
                };
                let _ = tx.send(text.to_lowercase());
            }
        })
        .max_reconnects(Some(3))
        .connection_timeout(Duration::from_secs(2));
        if let Some(prefix) = inbox {
            opts = opts.custom_inbox_prefix(prefix);
        }
        Ok(Self {
            client: opts.connect(url).await?,
            errors,
        })
    }

    /// The next server error containing `needle`, within `timeout`.
    pub async fn expect_error(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.errors.recv()).await {
                Ok(Some(e)) if e.contains(needle) => return e,
                Ok(Some(_)) => continue,
                _ => panic!("no server error containing {needle:?} within {timeout:?}"),
            }
        }
    }
}

/// A valid telemetry body for `node`.
pub fn usage_body(node: &str, seq: u64, decisions: u64) -> Vec<u8> {
    let now = chrono::Utc::now();
    serde_json::to_vec(&json!({
        "v": 1, "node_id": node, "seq": seq, "sent_at": now,
        "period_start": now - chrono::Duration::seconds(10), "period_end": now,
        "decisions": decisions, "dig_files": 1, "storage_bytes": 10, "snapshot_exports": 0,
    }))
    .unwrap_or_default()
}

pub fn heartbeat_body(node: &str, seq: u64, interval: u32) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "v": 1, "node_id": node, "seq": seq, "sent_at": chrono::Utc::now(), "status": "ok",
        "agent_version": "test", "interval_secs": interval, "policy_version": null,
        "last_policy_sync_at": null, "last_evidence_batch_at": null, "key_id": null,
        "slo_counters": BTreeMap::<String, u64>::new(),
        "host": { "hostname": node, "os": "linux", "kernel": "6", "arch": "x86_64", "cpus": 1, "memory_bytes": 1, "uptime_secs": 1 },
    }))
    .unwrap_or_default()
}

/// Integrator credentials minted through the API with a locally made key
/// (the default scope: telemetry and state changes).
pub async fn integrator(stack: &TestStack, org: &str, tenant: Option<&str>) -> BusUser {
    integrator_including(stack, org, tenant, &[]).await
}

/// Integrator credentials that also read what `include` names (`commands`,
/// `audit`).
pub async fn integrator_including(
    stack: &TestStack,
    org: &str,
    tenant: Option<&str>,
    include: &[&str],
) -> BusUser {
    let key = nkeys::KeyPair::new_user();
    let (status, body) = stack
        .api(
            reqwest::Method::POST,
            &format!("/api/orgs/{org}/integrator-credentials"),
            Some(serde_json::json!({
                "public_key": key.public_key(), "tenant_id": tenant, "include": include,
            })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    BusUser::connect(&stack.nats.url, body["jwt"].as_str().unwrap(), key, None)
        .await
        .unwrap()
}
