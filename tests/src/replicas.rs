//! Replicas behind a load balancer, on loopback: a round-robin TCP proxy
//! (a new backend per connection, the next one when a backend refuses, as
//! nginx's `proxy_next_upstream` does) and the console as a real process.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

/// Round robin over `backends`, one backend per TCP connection.
pub struct RoundRobinProxy {
    pub url: String,
    next: Arc<AtomicUsize>,
    /// Backend of each connection, in order (what a test checks its stream landed on).
    pub picked: Arc<Mutex<Vec<SocketAddr>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RoundRobinProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RoundRobinProxy {
    pub async fn start(backends: Vec<SocketAddr>) -> anyhow::Result<Self> {
        anyhow::ensure!(!backends.is_empty(), "a proxy needs a backend");
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let next = Arc::new(AtomicUsize::new(0));
        let picked = Arc::new(Mutex::new(Vec::new()));
        let (n, p) = (next.clone(), picked.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let start = n.fetch_add(1, Ordering::SeqCst);
                let backends = backends.clone();
                let picked = p.clone();
                tokio::spawn(async move {
                    for i in 0..backends.len() {
                        let to = backends[(start + i) % backends.len()];
                        if let Ok(mut out) = TcpStream::connect(to).await {
                            picked.lock().unwrap_or_else(|e| e.into_inner()).push(to);
                            let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                            return;
                        }
                    }
                });
            }
        });
        Ok(Self {
            url,
            next,
            picked,
            task,
        })
    }

    /// The backend the latest connection went to.
    pub fn last_picked(&self) -> Option<SocketAddr> {
        self.picked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .last()
            .copied()
    }

    /// Connections made so far.
    pub fn connections(&self) -> usize {
        self.next.load(Ordering::SeqCst)
    }
}

/// The `ritma-console` binary of this build.
pub fn console_binary() -> PathBuf {
    crate::workspace_binary(&["ritma-tests", "ritma-console"], "ritma-console")
}

/// What a console process is started with.
#[derive(Clone, Debug)]
pub struct ConsoleSpec {
    pub api_url: String,
    pub database_url: String,
    pub nats_url: String,
    pub service_token: String,
    pub org: String,
    /// The balancer's URL (browsers' origin).
    pub public_url: String,
    pub site: PathBuf,
    pub log: PathBuf,
    /// More RITMA_* settings.
    pub env: Vec<(String, String)>,
}

/// A console as a real child process (SIGKILL-able, restartable on its port).
pub struct ConsoleProcess {
    pub addr: SocketAddr,
    pub url: String,
    child: std::process::Child,
}

impl Drop for ConsoleProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_addr() -> anyhow::Result<SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

impl ConsoleProcess {
    pub async fn spawn(spec: &ConsoleSpec) -> anyhow::Result<Self> {
        Self::spawn_on(spec, free_addr()?).await
    }

    /// Start on `addr` (a restart keeps its place behind the balancer).
    pub async fn spawn_on(spec: &ConsoleSpec, addr: SocketAddr) -> anyhow::Result<Self> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&spec.log)?;
        let mut cmd = std::process::Command::new(console_binary());
        cmd.env("RITMA_CONSOLE_LISTEN", addr.to_string())
            .env("RITMA_API_URL", &spec.api_url)
            .env("RITMA_CONSOLE_DATABASE_URL", &spec.database_url)
            .env("RITMA_NATS_URL", &spec.nats_url)
            .env("RITMA_CONSOLE_SERVICE_TOKEN", &spec.service_token)
            .env("RITMA_ORG", &spec.org)
            .env("RITMA_CONSOLE_PUBLIC_URL", &spec.public_url)
            .env("RITMA_CONSOLE_SITE", &spec.site)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(log);
        for (k, v) in &spec.env {
            cmd.env(k, v);
        }
        let url = format!("http://{addr}");
        let process = Self {
            addr,
            url: url.clone(),
            child: cmd.spawn()?,
        };
        let http = reqwest::Client::new();
        let start = std::time::Instant::now();
        loop {
            if let Ok(r) = http.get(format!("{url}/healthz")).send().await
                && r.status().is_success()
            {
                return Ok(process);
            }
            anyhow::ensure!(
                start.elapsed() < Duration::from_secs(60),
                "console process not up; see {}",
                spec.log.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGKILL, as a crash or a node lost mid-upgrade.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
