//! A private stack per benchmark run: nats-server from `nats/server.conf` on
//! free ports, a fresh database on the local PostgreSQL, and the controller
//! as its own process (this binary's hidden `controller` command), so its
//! memory and CPU can be read from /proc apart from the load generator's.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use nkeys::KeyPair;
use ritma_bus::BusKeys;
use ritma_devstack::{NatsServer, NatsServerSpec, PostgresServer};
use ritma_protocol::{NodeId, NodeSubject, OrgId, TenantId};
use ritma_sim::{Api, SharedCreds, SimNode};
use sqlx::PgPool;

pub const ADMIN_TOKEN: &str = "bench-admin-token-0123456789";
const MASTER_KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

pub fn postgres_admin_url() -> String {
    std::env::var("RITMA_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub struct Stack {
    pub dir: tempfile::TempDir,
    pub keys: BusKeys,
    /// The (first) nats-server.
    pub nats: NatsServer,
    /// The other members when the stack runs a cluster (`start_cluster`).
    pub peers: Vec<NatsServer>,
    pub database: String,
    #[allow(dead_code)]
    pub database_url: String,
    pub pool: PgPool,
    pub api_url: String,
    pub api: Api,
    controller: Option<Child>,
    /// Set when the run has a PostgreSQL of its own (`commit_timestamps`);
    /// stopped after the controller, on drop.
    private_postgres: Option<PostgresServer>,
}

#[derive(Clone, Copy)]
pub struct StackOptions {
    /// nats-servers routed into one cluster (one process cannot hold more
    /// sockets than its file limit).
    pub nats_servers: usize,
    /// A private PostgreSQL with `track_commit_timestamp = on`, so every
    /// row's commit instant can be read (`pg_xact_commit_timestamp(xmin)`);
    /// the machine's server cannot be restarted with it.
    pub commit_timestamps: bool,
}

impl Default for StackOptions {
    fn default() -> Self {
        Self {
            nats_servers: 1,
            commit_timestamps: false,
        }
    }
}

async fn private_postgres_with_commit_timestamps(
    dir: &std::path::Path,
    database: &str,
) -> anyhow::Result<PostgresServer> {
    let pg = PostgresServer::start(dir, database).await?;
    let admin = PgPool::connect(&pg.url).await?;
    sqlx::query("ALTER SYSTEM SET track_commit_timestamp = on")
        .execute(&admin)
        .await?;
    admin.close().await;
    pg.restart().await?;
    Ok(pg)
}

impl Stack {
    /// A stack whose org `bench` has `nodes` nodes inserted with SQL (10
    /// tenants; see [`Stack::nodes_bulk_insert`]), ids `node-0000001`...
    pub async fn start_with_bench_fleet(nodes: usize) -> anyhow::Result<Self> {
        let stack = Self::start(&[]).await?;
        stack
            .api
            .org_ensure(&ritma_protocol::OrgId::new("bench")?)
            .await?;
        eprintln!("inserting {nodes} nodes ...");
        stack.nodes_bulk_insert("bench", "node", nodes, 10).await?;
        Ok(stack)
    }

    /// Start everything; `env` is extra controller settings (`RITMA_*`).
    pub async fn start(env: &[(&str, String)]) -> anyhow::Result<Self> {
        Self::start_with(env, StackOptions::default()).await
    }

    pub async fn start_with(env: &[(&str, String)], options: StackOptions) -> anyhow::Result<Self> {
        let servers = options.nats_servers.max(1);
        let dir = tempfile::Builder::new().prefix("ritma-bench-").tempdir()?;
        let keys = BusKeys::load_or_create(&dir.path().join("keys"))?;
        let mut peers = if servers > 1 {
            ritma_devstack::nats::start_cluster(&dir.path().join("nats"), &keys, servers).await?
        } else {
            vec![
                NatsServer::start(NatsServerSpec {
                    data_dir: &dir.path().join("nats"),
                    keys: &keys,
                    port: 0,
                    name: "ritma-bench",
                    cluster: None,
                    tls: None,
                })
                .await?,
            ]
        };
        let nats = peers.remove(0);
        let nats_urls = std::iter::once(&nats)
            .chain(&peers)
            .map(|n| n.url.clone())
            .collect::<Vec<_>>()
            .join(",");
        let database = format!("ritma_bench_{}", uuid::Uuid::new_v4().simple());
        let (database_url, private_postgres) = if options.commit_timestamps {
            let pg =
                private_postgres_with_commit_timestamps(&dir.path().join("postgres"), &database)
                    .await?;
            (pg.url.clone(), Some(pg))
        } else {
            let admin = postgres_admin_url();
            let admin_pool = PgPool::connect(&admin).await?;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "CREATE DATABASE \"{database}\""
            )))
            .execute(&admin_pool)
            .await?;
            admin_pool.close().await;
            let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
            (format!("{base}/{database}"), None)
        };
        let port = ritma_devstack::ports::free_port()?;
        let api_url = format!("http://127.0.0.1:{port}");
        let exe = std::env::current_exe()?;
        // Outside the run's temporary folder, so it survives the run.
        let log = std::fs::File::create(std::env::temp_dir().join("ritma-bench-controller.log"))?;
        let mut cmd = Command::new(exe);
        cmd.arg("controller")
            .env("RITMA_DATABASE_URL", &database_url)
            .env("RITMA_NATS_URL", &nats_urls)
            .env("RITMA_NATS_KEYS_DIR", dir.path().join("keys"))
            .env("RITMA_MASTER_KEY", MASTER_KEY)
            .env("RITMA_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("RITMA_API_LISTEN", format!("127.0.0.1:{port}"))
            // The benchmarks measure the API's capacity, not its rate limits.
            .env("RITMA_API_RATE_PER_CREDENTIAL", "0")
            .env("RITMA_API_RATE_PER_ADDRESS", "0")
            // ... and one org's ingest ceiling, not the share an org gets
            // among others: the org budget is off (every load is one org).
            // The per-node budget stays on (its check is part of the cost
            // measured; no benchmark sends a node more than it allows).
            .env("RITMA_INGEST_ORG_RATE", "0")
            .env(
                "RITMA_LOG",
                std::env::var("RITMA_BENCH_CONTROLLER_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::null())
            .stderr(log);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let controller = cmd.spawn()?;
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(8)
            .connect(&database_url)
            .await?;
        let api = Api::new(&api_url, ADMIN_TOKEN)?;
        let stack = Self {
            dir,
            keys,
            nats,
            peers,
            database,
            database_url,
            pool,
            api_url,
            api,
            controller: Some(controller),
            private_postgres,
        };
        stack.wait_ready(Duration::from_secs(60)).await?;
        Ok(stack)
    }

    async fn wait_ready(&self, timeout: Duration) -> anyhow::Result<()> {
        let start = std::time::Instant::now();
        loop {
            if let Ok(r) = self
                .api
                .http
                .get(format!("{}/readyz", self.api_url))
                .send()
                .await
                && r.status().is_success()
            {
                return Ok(());
            }
            if start.elapsed() > timeout {
                anyhow::bail!(
                    "controller not ready after {timeout:?} (log: {})",
                    std::env::temp_dir()
                        .join("ritma-bench-controller.log")
                        .display()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub fn controller_pid(&self) -> Option<u32> {
        self.controller.as_ref().map(Child::id)
    }

    /// Messages the ingest workers committed and acked (from `/readyz`).
    pub async fn ingested(&self) -> anyhow::Result<u64> {
        let body: serde_json::Value = self
            .api
            .http
            .get(format!("{}/readyz", self.api_url))
            .send()
            .await?
            .json()
            .await?;
        body["ingest"]["messages"]
            .as_u64()
            .context("no ingest.messages in /readyz")
    }

    /// The controller account's user: unrestricted in the account that owns
    /// the central stream.
    pub fn shared_creds(&self) -> anyhow::Result<SharedCreds> {
        let key = KeyPair::from_seed(&self.keys.controller_user.seed()?)?;
        Ok(SharedCreds {
            jwt: self.keys.controller_user_jwt()?,
            key: Arc::new(key),
        })
    }

    pub async fn controller_bus(&self) -> anyhow::Result<async_nats::Client> {
        Ok(ritma_bus::connect::connect_as(
            std::slice::from_ref(&self.nats.url),
            "ritma-bench",
            self.keys.controller_user_jwt()?,
            &self.keys.controller_user,
        )
        .await?)
    }

    /// Every nats-server of the stack.
    pub fn nats_servers(&self) -> impl Iterator<Item = &NatsServer> {
        std::iter::once(&self.nats).chain(&self.peers)
    }

    /// A nats-server's `/varz`.
    pub async fn varz_of(&self, server: &NatsServer) -> anyhow::Result<serde_json::Value> {
        Ok(self
            .api
            .http
            .get(format!("http://127.0.0.1:{}/varz", server.monitor_port))
            .send()
            .await?
            .json()
            .await?)
    }

    /// Insert `n` nodes straight into the database (setup only), all in
    /// `org`; with `tenants > 1` they are spread over `t0..t<k>`, statuses,
    /// labels, versions and last-seen times vary.
    pub async fn nodes_bulk_insert(
        &self,
        org: &str,
        prefix: &str,
        n: usize,
        tenants: usize,
    ) -> anyhow::Result<Vec<SimNode>> {
        let chunk = 50_000usize;
        let mut from = 1usize;
        while from <= n {
            let to = (from + chunk - 1).min(n);
            sqlx::query(
                "INSERT INTO nodes (id, org_id, tenant_id, public_key, hostname, labels, status,
                                    interval_secs, agent_version, host_os, host_arch)
                 SELECT $1 || '-' || lpad(i::text, 7, '0'), $2,
                        CASE WHEN $5 > 1 THEN 't' || (i % $5) ELSE 'load' END,
                        'UBENCH' || $1 || i, 'host-' || i || '.example.net',
                        jsonb_build_object('env', CASE WHEN i % 3 = 0 THEN 'prod' ELSE 'staging' END,
                                           'rack', 'r' || (i % 50)),
                        (ARRAY['online','online','online','degraded','stale','offline','unseen'])[1 + i % 7],
                        10, 'v' || (i % 5), 'linux', 'x86_64'
                 FROM generate_series($3::int, $4::int) i",
            )
            .bind(prefix)
            .bind(org)
            .bind(i32::try_from(from)?)
            .bind(i32::try_from(to)?)
            .bind(i32::try_from(tenants)?)
            .execute(&self.pool)
            .await?;
            // Their liveness rows (made by the insert's trigger): last seen
            // within the last 10 minutes.
            sqlx::query(
                "UPDATE node_liveness
                 SET last_seen_at = now() - (substr(node_id, length($1) + 2)::int % 600) * interval '1 second',
                     last_sent_at = now() - (substr(node_id, length($1) + 2)::int % 600) * interval '1 second'
                 WHERE node_id >= $1 || '-' || lpad($2::text, 7, '0')
                   AND node_id <= $1 || '-' || lpad($3::text, 7, '0')",
            )
            .bind(prefix)
            .bind(i32::try_from(from)?)
            .bind(i32::try_from(to)?)
            .execute(&self.pool)
            .await?;
            from = to + 1;
        }
        sqlx::query("ANALYZE nodes, node_liveness, node_statuses")
            .execute(&self.pool)
            .await?;
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT id, org_id, tenant_id FROM nodes WHERE id LIKE $1 || '-%' ORDER BY id",
        )
        .bind(prefix)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(id, org, tenant)| {
                Ok(SimNode {
                    scope: NodeSubject::new(OrgId::new(org)?, TenantId::new(tenant)?, {
                        NodeId::new(id)?
                    }),
                    creds: None,
                })
            })
            .collect()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if let Some(mut c) = self.controller.take() {
            // SIGTERM first (graceful), then make sure.
            let _ = Command::new("kill").arg(c.id().to_string()).status();
            for _ in 0..50 {
                if matches!(c.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        self.nats.stop();
        if let Some(pg) = self.private_postgres.take() {
            // Before the run's folder (its data) is removed.
            pg.stop();
            return;
        }
        // Drop the database so repeated runs do not fill the disk.
        let _ = Command::new("psql")
            .arg(postgres_admin_url())
            .args([
                "-qc",
                &format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.database),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Resident memory of a process, in bytes (VmRSS and VmHWM from /proc).
pub fn rss(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .map(|kb| kb * 1024)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// CPU time (user + system) a process used so far, in seconds.
pub fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start after ')'.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / clock_ticks())
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// CPU time of every PostgreSQL process on the machine (the server and all
/// its backends), in seconds: the benchmark's database work runs in backends
/// that come and go, so they are summed by name.
fn postgres_cpu_secs() -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "postgres")
        })
        .filter_map(cpu_secs)
        .sum()
}

/// Where the CPU went between `start` and `cores`: cores used by nats-server,
/// the controller, PostgreSQL and the load generator (this process), and what
/// was left of the machine. This is how a benchmark names what bounds it.
pub struct CpuMeter {
    at: std::time::Instant,
    readings: [Option<f64>; 4],
}

impl CpuMeter {
    const PARTS: [&'static str; 4] = ["nats_server", "controller", "postgres", "load_generator"];

    fn read(stack: &Stack) -> [Option<f64>; 4] {
        [
            stack
                .nats_servers()
                .map(|n| n.pid().and_then(cpu_secs))
                .sum::<Option<f64>>(),
            stack.controller_pid().and_then(cpu_secs),
            Some(postgres_cpu_secs()),
            cpu_secs(self_pid()),
        ]
    }

    pub fn start(stack: &Stack) -> Self {
        Self {
            at: std::time::Instant::now(),
            readings: Self::read(stack),
        }
    }

    /// Cores used by each part since `start`, plus `idle` (of all cores).
    pub fn cores(&self, stack: &Stack) -> serde_json::Value {
        let secs = self.at.elapsed().as_secs_f64().max(1e-3);
        let now = Self::read(stack);
        let mut out = serde_json::Map::new();
        let mut used = 0.0;
        for ((name, a), b) in Self::PARTS.iter().zip(self.readings).zip(now) {
            let cores = match (a, b) {
                (Some(a), Some(b)) => (b - a) / secs,
                _ => continue,
            };
            used += cores;
            out.insert((*name).into(), round2(cores).into());
        }
        let total = std::thread::available_parallelism().map_or(1, usize::from) as f64;
        out.insert("idle".into(), round2((total - used).max(0.0)).into());
        serde_json::Value::Object(out)
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

pub fn self_pid() -> u32 {
    std::process::id()
}

pub fn out_path(dir: &std::path::Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.json"))
}
