//! A nats-server process started from the project's `nats/server.conf`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ritma_bus::BusKeys;

use crate::nats_binary::{self, NatsBinary};
use crate::ports::{PORT_PICK_ATTEMPTS, free_port};

/// The server configuration template, compiled in so the binary works from any folder.
pub const SERVER_CONF_TEMPLATE: &str = include_str!("../../../nats/server.conf");
/// The template of one server of a routed cluster.
pub const CLUSTER_CONF_TEMPLATE: &str = include_str!("../../../nats/cluster.conf");

/// Membership of a routed cluster, for one of its servers.
#[derive(Clone)]
pub struct ClusterMembership {
    pub name: String,
    pub port: u16,
    /// Route URLs of every server of the cluster.
    pub routes: Vec<String>,
}

pub struct NatsServerSpec<'a> {
    pub data_dir: &'a Path,
    pub keys: &'a BusKeys,
    /// 0 picks a free port.
    pub port: u16,
    pub name: &'a str,
    pub cluster: Option<ClusterMembership>,
    /// Serve clients (and monitoring) over TLS with this certificate.
    pub tls: Option<NatsTls>,
}

/// A server certificate and key (PEM files).
#[derive(Debug, Clone)]
pub struct NatsTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

pub struct NatsServer {
    pub url: String,
    pub port: u16,
    pub monitor_port: u16,
    pub config_path: PathBuf,
    /// The binary this server runs and its version.
    pub binary: NatsBinary,
    child: Option<Child>,
}

pub fn render_config(template: &str, values: &[(&str, String)]) -> String {
    values.iter().fold(template.to_owned(), |acc, (k, v)| {
        acc.replace(&format!("{{{{{k}}}}}"), v)
    })
}

impl NatsServer {
    pub async fn start(spec: NatsServerSpec<'_>) -> anyhow::Result<Self> {
        let binary = nats_binary::nats_server(true)?;
        let mut attempt = 0;
        loop {
            let port = if spec.port == 0 {
                free_port()?
            } else {
                spec.port
            };
            let monitor_port = free_port()?;
            let mut server = Self {
                url: format!("nats://127.0.0.1:{port}"),
                port,
                monitor_port,
                config_path: write_config(&spec, port, monitor_port)?,
                binary: binary.clone(),
                child: None,
            };
            match server.spawn().await {
                Ok(()) => return Ok(server),
                // A port that was free when picked can be taken before the
                // server binds it (another process's listener or outgoing
                // connection): the server exits, and new ports are picked.
                Err(SpawnError::Exited(why)) if attempt < PORT_PICK_ATTEMPTS => {
                    attempt += 1;
                    tracing::warn!(port, %why, "nats-server did not start; trying other ports");
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn spawn(&mut self) -> Result<(), SpawnError> {
        let dir = self
            .config_path
            .parent()
            .ok_or_else(|| anyhow::anyhow!("{} has no folder", self.config_path.display()))?
            .to_owned();
        let log_path = dir.join("nats-server.log");
        let log = std::fs::File::create(&log_path)?;
        // The server writes `<exe>_<pid>.ports` once it listens: proof that
        // this child listens, where a TCP connect would also be answered by
        // another process holding the port.
        let child = Command::new(&self.binary.path)
            .arg("-c")
            .arg(&self.config_path)
            .arg("--ports_file_dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        let ports_file = format!("_{}.ports", child.id());
        let child = self.child.insert(child);
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait()? {
                self.child = None;
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(3).collect();
                return Err(SpawnError::Exited(format!(
                    "{status}: {}",
                    tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
                )));
            }
            if listed_in_ports_file(&dir, &ports_file, self.port) {
                return Ok(());
            }
            if start.elapsed() > START_TIMEOUT {
                return Err(SpawnError::Other(anyhow::anyhow!(
                    "nats-server does not listen on 127.0.0.1:{} after {START_TIMEOUT:?} (log: {})",
                    self.port,
                    log_path.display()
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stop the server (SIGKILL when `hard`), keeping its data.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start again on the same port with the same data.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        Ok(self.spawn().await?)
    }

    /// Stop, then start again with the same data on another free port (a
    /// bus that moved, as a restarted `ritma up` does).
    pub async fn move_to_new_port(&mut self) -> anyhow::Result<()> {
        self.stop();
        let port = free_port()?;
        let config = std::fs::read_to_string(&self.config_path)?;
        let old = format!(":{}\"\n", self.port);
        anyhow::ensure!(
            config.contains(&old),
            "{} does not listen on port {}",
            self.config_path.display(),
            self.port
        );
        std::fs::write(
            &self.config_path,
            config.replacen(&old, &format!(":{port}\"\n"), 1),
        )?;
        self.port = port;
        self.url = format!("nats://127.0.0.1:{port}");
        Ok(self.spawn().await?)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

/// How long a started server may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
enum SpawnError {
    #[error("nats-server exited at start ({0})")]
    Exited(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// Whether the ports file named `*<suffix>` in `dir` lists client `port`.
fn listed_in_ports_file(dir: &Path, suffix: &str, port: u16) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    let needle = format!(":{port}\"");
    entries.flatten().any(|e| {
        e.file_name().to_string_lossy().ends_with(suffix)
            && std::fs::read_to_string(e.path()).is_ok_and(|s| s.contains(&needle))
    })
}

/// Render the server's configuration for these ports into its data folder.
fn write_config(
    spec: &NatsServerSpec<'_>,
    port: u16,
    monitor_port: u16,
) -> anyhow::Result<PathBuf> {
    let resolver_dir = spec.data_dir.join("resolver");
    let store_dir = spec.data_dir.join("jetstream");
    std::fs::create_dir_all(&resolver_dir)?;
    std::fs::create_dir_all(&store_dir)?;
    let mut values = vec![
        ("SERVER_NAME", spec.name.to_owned()),
        ("HOST", "127.0.0.1".into()),
        ("PORT", port.to_string()),
        ("MONITOR_PORT", monitor_port.to_string()),
        ("OPERATOR_JWT", spec.keys.operator_jwt()?),
        ("SYSTEM_ACCOUNT", spec.keys.system_account.public_key()),
        ("SYSTEM_ACCOUNT_JWT", spec.keys.system_account_jwt()?),
        ("RESOLVER_DIR", resolver_dir.display().to_string()),
        ("STORE_DIR", store_dir.display().to_string()),
    ];
    let template = match &spec.cluster {
        None => SERVER_CONF_TEMPLATE,
        Some(c) => {
            values.push(("CLUSTER_NAME", c.name.clone()));
            values.push(("CLUSTER_HOST", "127.0.0.1".into()));
            values.push(("CLUSTER_PORT", c.port.to_string()));
            let routes: Vec<String> = c.routes.iter().map(|r| format!("\"{r}\"")).collect();
            values.push(("ROUTES", routes.join(", ")));
            CLUSTER_CONF_TEMPLATE
        }
    };
    let mut config = render_config(template, &values);
    if let Some(tls) = &spec.tls {
        // Monitoring moves to HTTPS with the same certificate.
        config = config.replacen("\nhttp: ", "\nhttps: ", 1);
        config.push_str(&format!(
            "\ntls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n  timeout: 2\n}}\n",
            tls.cert_file.display(),
            tls.key_file.display()
        ));
    }
    let config_path = spec.data_dir.join("server.conf");
    std::fs::write(&config_path, config)?;
    Ok(config_path)
}

/// Start `size` servers routed into one JetStream cluster, each with its own data folder.
pub async fn start_cluster(
    data_dir: &Path,
    keys: &BusKeys,
    size: usize,
) -> anyhow::Result<Vec<NatsServer>> {
    let cluster_ports: Vec<u16> = (0..size).map(|_| free_port()).collect::<Result<_, _>>()?;
    let routes: Vec<String> = cluster_ports
        .iter()
        .map(|p| format!("nats://127.0.0.1:{p}"))
        .collect();
    let mut servers = Vec::with_capacity(size);
    for (i, port) in cluster_ports.iter().enumerate() {
        let name = format!("ritma-{i}");
        servers.push(
            NatsServer::start(NatsServerSpec {
                data_dir: &data_dir.join(&name),
                keys,
                port: 0,
                name: &name,
                cluster: Some(ClusterMembership {
                    name: "ritma".into(),
                    port: *port,
                    routes: routes.clone(),
                }),
                tls: None,
            })
            .await?,
        );
    }
    Ok(servers)
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}
