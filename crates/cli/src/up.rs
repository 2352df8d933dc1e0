//! `ritma up`: the whole system on one machine, for development and demos.
//!
//! Own PostgreSQL and nats-server instances under `.ritma/dev` on free ports
//! (never the servers already running on the default ports), the controller,
//! the console when it is built, and demo nodes in two tenants of the `demo`
//! org. Everything it starts stops on Ctrl-C.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use clap::Args;
use ritma_api::connectors::ConnectorConfig;
use ritma_api::keys::KeyCreate;
use ritma_api::orgs::CreateOrg;
use ritma_api::params::{NoParams, NodeConnectorPath, OrgPath};
use ritma_api::policies::{AssignmentCreate, RulepackCreate};
use ritma_api::routes;
use ritma_api::tokens::CreateToken;
use ritma_bus::BusKeys;
use ritma_devstack::ports::free_port;
use ritma_devstack::{NatsServer, NatsServerSpec, PostgresServer};
use ritma_protocol::connectors::HostConnector;
use serde_json::json;

use crate::api_client::{Api, api, done_or_exists};
use crate::commands::integrator_creds;
use crate::stack_file::{DEFAULT_DATA_DIR, DemoNode, StackFile};

#[derive(Args)]
pub struct UpArgs {
    /// Folder for all runtime data (kept between runs).
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// Heartbeat interval of the demo nodes, seconds.
    #[arg(long, default_value_t = 5)]
    heartbeat_secs: u32,
    /// Start no console even when it is built.
    #[arg(long)]
    no_console: bool,
    /// Start the console only if it is already built (by default a missing
    /// or stale console is built first, with its toolchain).
    #[arg(long)]
    no_console_build: bool,
}

/// The demo fleet: name, tenant, labels.
const DEMO_NODES: [(&str, &str, &str); 3] = [
    ("demo-web-1", "prod", "role=web,zone=a"),
    ("demo-web-2", "prod", "role=web,zone=b"),
    ("demo-db-1", "staging", "role=db,zone=a"),
];
const DEMO_ORG: &str = "demo";
/// This demo node keeps its cached policy (a maintenance freeze), so the
/// console has a drifted node to show.
const HELD_NODE: &str = "demo-db-1";

/// The demo org's rulepack, its org-wide assignment, and the demo nodes'
/// signing keys; idempotent across restarts.
async fn demo_fleet_settings(api: &Api) -> anyhow::Result<()> {
    let org = OrgPath::new(DEMO_ORG);
    let baseline = RulepackCreate {
        name: "baseline".into(),
        description: "Demo baseline".into(),
        frameworks: vec!["cis".into(), "soc2".into()],
        rules: json!({ "deny": ["ptrace", "kexec_load"], "throttle": { "exec_per_sec": 50 } }),
    };
    api.call::<routes::CreateRulepack>(&org, &NoParams {}, &baseline)
        .await?;
    let assignments = api
        .call::<routes::ListAssignments>(&org, &NoParams {}, &())
        .await?;
    if assignments.items.is_empty() {
        let org_wide = AssignmentCreate {
            scope_kind: "org".into(),
            scope_value: String::new(),
            rulepack: "baseline".into(),
            revision: None,
            mode: "enforce".into(),
        };
        api.call::<routes::CreateAssignment>(&org, &NoParams {}, &org_wide)
            .await?;
    }
    for (name, _, _) in DEMO_NODES {
        let key = KeyCreate {
            key_id: format!("{name}-signing-1"),
            label: format!("{name} signing key"),
            rotate_by: None,
            expires_at: None,
        };
        done_or_exists(
            api.call::<routes::RegisterKey>(&org, &NoParams {}, &key)
                .await,
        )?;
    }
    Ok(())
}

/// A host posture connector on every demo node, once it has enrolled.
async fn demo_connectors(api: &Api) {
    let posture = ConnectorConfig::Host(HostConnector {
        allowed_ports: vec![22, 80, 443],
        protected_paths: Vec::new(),
    });
    for (name, _, _) in DEMO_NODES {
        let path = NodeConnectorPath::new(name, "posture");
        let mut done = false;
        for _ in 0..50 {
            let put = api.call::<routes::PutNodeConnector>(&path, &NoParams {}, &posture);
            if put.await.is_ok() {
                done = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if !done {
            eprintln!("  note: no posture connector on {name} (not enrolled yet)");
        }
    }
}

/// Children stopped gracefully (SIGTERM, then SIGKILL) when dropped.
struct Children(Vec<(String, Child)>);

impl Children {
    fn stop_all(&mut self) {
        for (_, child) in &self.0 {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(8);
        for (name, child) in &mut self.0 {
            while std::time::Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if let Ok(None) = child.try_wait() {
                eprintln!("{name} did not stop in time; killing it");
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        self.0.clear();
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        self.stop_all();
    }
}

fn secret_file(path: &Path, make: impl FnOnce() -> String) -> anyhow::Result<String> {
    if let Ok(v) = std::fs::read_to_string(path) {
        return Ok(v.trim().to_owned());
    }
    let v = make();
    ritma_bus::creds::write_private(path, &v)?;
    Ok(v)
}

fn random_hex(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

fn log_file(dir: &Path, name: &str) -> anyhow::Result<std::fs::File> {
    std::fs::create_dir_all(dir)?;
    Ok(std::fs::File::create(dir.join(format!("{name}.log")))?)
}

async fn wait_ready(url: &str, timeout: Duration) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let start = std::time::Instant::now();
    while start.elapsed() < timeout {
        if let Ok(r) = http.get(url).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    anyhow::bail!("{url} not ready after {timeout:?}")
}

pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    let data = std::path::absolute(&args.data_dir)?;
    std::fs::create_dir_all(&data)?;
    let logs = data.join("logs");
    println!("ritma up: data in {}", data.display());

    let keys_dir = data.join("nats/keys");
    let keys = BusKeys::load_or_create(&keys_dir)?;
    secret_file(&data.join("master.key"), || random_hex(32))?;
    let admin_token = secret_file(&data.join("admin.token"), || {
        format!("ritma_admin_{}", random_hex(24))
    })?;
    // The console's service principal: only it may ask for the console's
    // bus credential (every org's state changes, subscribe-only).
    secret_file(&data.join("console.token"), || {
        format!("ritma_console_{}", random_hex(24))
    })?;

    let postgres = PostgresServer::start(&data.join("postgres"), "ritma").await?;
    println!("  postgres      {}", postgres.url);
    let nats = NatsServer::start(NatsServerSpec {
        data_dir: &data.join("nats"),
        keys: &keys,
        port: 0,
        name: "ritma-dev",
        cluster: None,
        tls: None,
    })
    .await?;
    println!(
        "  nats          {}  (nats-server {}, {})",
        nats.url,
        nats.binary.version,
        nats.binary.path.display()
    );

    let exe = std::env::current_exe()?;
    let api_port = free_port()?;
    let api_url = format!("http://127.0.0.1:{api_port}");
    let offline_grace = ritma_controller::config::DEFAULT_OFFLINE_GRACE_SECS.unsigned_abs();
    let mut children = Children(vec![]);
    let controller = Command::new(&exe)
        .arg("controller")
        .env("RITMA_DATABASE_URL", &postgres.url)
        .env("RITMA_NATS_URL", &nats.url)
        .env("RITMA_NATS_KEYS_DIR", &keys_dir)
        .env("RITMA_MASTER_KEY_FILE", data.join("master.key"))
        .env("RITMA_ADMIN_TOKEN_FILE", data.join("admin.token"))
        .env(
            "RITMA_CONSOLE_SERVICE_TOKEN_FILE",
            data.join("console.token"),
        )
        // The console (on loopback) forwards each browser's address; trusted
        // from loopback only, as everything here runs on this machine.
        .env("RITMA_API_TRUSTED_PROXIES", "127.0.0.1")
        .env("RITMA_API_LISTEN", format!("127.0.0.1:{api_port}"))
        .env("RITMA_OFFLINE_GRACE_SECS", offline_grace.to_string())
        // Short, so the demo's held node shows as drifted soon after start.
        .env("RITMA_POLICY_DRIFT_GRACE_SECS", "20")
        .env("RITMA_PUBLIC_URL", &api_url)
        // Alert webhooks to this machine (a local receiver, the browser tests').
        .env("RITMA_ALERT_ALLOWED_NETWORKS", "127.0.0.0/8,::1")
        .env(
            "RITMA_DEFAULT_HEARTBEAT_SECS",
            args.heartbeat_secs.to_string(),
        )
        .stdout(Stdio::null())
        .stderr(log_file(&logs, "controller")?)
        .spawn()?;
    let controller_pid = controller.id();
    children.0.push(("controller".into(), controller));
    wait_ready(&format!("{api_url}/readyz"), Duration::from_secs(90)).await?;
    println!(
        "  controller    {api_url}  (log: {}/controller.log)",
        logs.display()
    );

    let api = api(&api_url, &admin_token);
    let demo_org = CreateOrg {
        id: DEMO_ORG.to_owned(),
        name: Some("Demo Org".to_owned()),
    };
    done_or_exists(
        api.call::<routes::CreateOrg>(&NoParams {}, &NoParams {}, &demo_org)
            .await,
    )?;

    demo_fleet_settings(&api).await?;

    let mut nodes = Vec::new();
    for (name, tenant, labels) in DEMO_NODES {
        let state_dir = data.join("nodes").join(name);
        let mut cmd = Command::new(&exe);
        cmd.arg("node")
            .env("RITMA_NODE_CONTROLLER_URL", &api_url)
            // This run's addresses: a restarted stack gets new ports.
            .env("RITMA_NODE_NATS_URLS", &nats.url)
            .env("RITMA_NODE_ORG_ID", DEMO_ORG)
            .env("RITMA_NODE_TENANT_ID", tenant)
            .env("RITMA_STATE_DIR", &state_dir)
            .env("RITMA_NODE_ID", name)
            .env("RITMA_NODE_LABELS", labels)
            .env("RITMA_HEARTBEAT_SECS", args.heartbeat_secs.to_string())
            .env("RITMA_SUMMARY_SECS", "15")
            .env("RITMA_KEY_ID", format!("{name}-signing-1"))
            .env("RITMA_DEMO_DECISIONS_PER_SEC", "20")
            .env("RITMA_POLICY_SYNC_SECS", "60")
            .env("UTLD_COMPLIANCE_INDEX", state_dir.join("compliance.jsonl"));
        if name == HELD_NODE {
            cmd.env("RITMA_POLICY_HOLD", "true");
        }
        if !state_dir.join("identity.json").exists() {
            let body = CreateToken {
                tenant_id: (*tenant).to_owned(),
                ttl_secs: Some(600),
                max_uses: Some(1),
                labels: [("demo".to_owned(), "true".to_owned())].into(),
            };
            let token = api
                .call::<routes::CreateToken>(&OrgPath::new(DEMO_ORG), &NoParams {}, &body)
                .await?;
            cmd.env("RITMA_ENROLL_TOKEN", token.token.unwrap_or_default());
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(log_file(&logs, name)?)
            .spawn()?;
        nodes.push(DemoNode {
            name: name.into(),
            tenant: tenant.into(),
            pid: child.id(),
            state_dir,
            heartbeat_secs: args.heartbeat_secs,
        });
        children.0.push((name.into(), child));
    }
    println!(
        "  demo nodes    {} in org {DEMO_ORG} (tenants prod, staging)",
        nodes.len()
    );

    demo_connectors(&api).await;

    let creds_path = data.join("integrator-demo.creds");
    integrator_creds(&api, DEMO_ORG, None, &[], &[], 30 * 86_400, &creds_path).await?;

    let (console_url, console_pid) = if args.no_console {
        (None, None)
    } else {
        match start_console(
            &data,
            &postgres.url,
            &api_url,
            &admin_token,
            &nats.url,
            &logs,
            !args.no_console_build,
        )? {
            Some((url, child)) => {
                let pid = child.id();
                children.0.push(("console".into(), child));
                wait_ready(&format!("{url}/healthz"), Duration::from_secs(30)).await?;
                println!("  console       {url}");
                (Some(url), Some(pid))
            }
            None => (None, None),
        }
    };

    let stack = StackFile {
        api_url: api_url.clone(),
        admin_token,
        nats_url: nats.url.clone(),
        nats_monitor_url: format!("http://127.0.0.1:{}", nats.monitor_port),
        integrator_creds: creds_path.clone(),
        org: DEMO_ORG.into(),
        console_url,
        database_url: postgres.url.clone(),
        data_dir: data.clone(),
        controller_pid,
        console_pid,
        nodes,
        offline_after_secs: 3 * args.heartbeat_secs + offline_grace,
    };
    stack.save(&data)?;
    println!(
        "  integrator    {} (read-only, org {DEMO_ORG})",
        creds_path.display()
    );
    println!("  stack file    {}", StackFile::path(&data).display());
    println!(
        "ready. Try: ritma tail   |   curl -H \"Authorization: Bearer $(cat {}/admin.token)\" {api_url}/api/orgs/demo/nodes",
        data.display()
    );
    println!("Ctrl-C stops everything.");

    ritma_runtime::shutdown_on_signals().cancelled().await;
    println!("stopping...");
    children.stop_all();
    drop(nats);
    drop(postgres);
    let _ = std::fs::remove_file(StackFile::path(&data));
    Ok(())
}

/// Start the console, building it first when it is missing or stale and
/// `build` is set (`app/scripts/build.sh` does the same by hand).
fn start_console(
    data: &Path,
    database_url: &str,
    api_url: &str,
    admin_token: &str,
    nats_url: &str,
    logs: &Path,
    build: bool,
) -> anyhow::Result<Option<(String, Child)>> {
    let exe = std::env::current_exe()?;
    let Some(dir) = exe.parent() else {
        return Ok(None);
    };
    let console = dir.join("ritma-console");
    let site = std::env::var_os("RITMA_CONSOLE_SITE")
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.join("site"));
    if build && !crate::console_build::ensure_built(dir, &site, logs) {
        return Ok(None);
    }
    if !console.exists() || !site.exists() {
        println!("  console       not built (run app/scripts/build.sh); skipping");
        return Ok(None);
    }
    let port = free_port()?;
    let url = format!("http://127.0.0.1:{port}");
    let child = Command::new(console)
        .env("RITMA_CONSOLE_LISTEN", format!("127.0.0.1:{port}"))
        .env("RITMA_CONSOLE_SITE", &site)
        .env("RITMA_API_URL", api_url)
        // Sessions live in the stack's database (the controller migrated it).
        .env("RITMA_CONSOLE_DATABASE_URL", database_url)
        .env("RITMA_API_TOKEN", admin_token)
        .env("RITMA_NATS_URL", nats_url)
        .env(
            "RITMA_CONSOLE_SERVICE_TOKEN_FILE",
            data.join("console.token"),
        )
        .env("RITMA_ORG", DEMO_ORG)
        .env("RITMA_DATA_DIR", data)
        .stdout(Stdio::null())
        .stderr(log_file(logs, "console")?)
        .spawn()?;
    Ok(Some((url, child)))
}
