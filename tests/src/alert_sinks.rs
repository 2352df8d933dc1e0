//! Real receivers for alert notifications: an HTTP server that records
//! webhook deliveries (and can be told to fail), and an SMTP server
//! (aiosmtpd, from PyPI) that requires STARTTLS with a test certificate.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use tokio_util::sync::CancellationToken;

/// One request the receiver saw.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_default()
    }

    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    }
}

#[derive(Default)]
struct Inner {
    seen: Vec<Received>,
    /// Answer 500 to this many requests first.
    fail_next: usize,
}

/// An HTTP server on loopback that records every POST.
pub struct WebhookReceiver {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    stop: CancellationToken,
}

impl WebhookReceiver {
    pub async fn start() -> Self {
        Self::start_on("127.0.0.1:0".parse().unwrap_or_else(|_| unreachable!())).await
    }

    /// Listen on `addr` (a port a test reserved earlier, to come up late).
    pub async fn start_on(addr: SocketAddr) -> Self {
        let inner: Arc<Mutex<Inner>> = Arc::default();
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        let addr = listener.local_addr().unwrap_or(addr);
        let app = axum::Router::new()
            .route("/{*path}", post(record))
            .with_state(inner.clone());
        let stop = CancellationToken::new();
        let until = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { until.cancelled().await })
                .await;
        });
        Self { addr, inner, stop }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{path}", self.addr)
    }

    pub fn fail_next(&self, n: usize) {
        if let Ok(mut i) = self.inner.lock() {
            i.fail_next = n;
        }
    }

    pub fn seen(&self) -> Vec<Received> {
        self.inner
            .lock()
            .map(|i| i.seen.clone())
            .unwrap_or_default()
    }

    /// Wait until a request matching `pred` arrived.
    pub async fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Received) -> bool,
    ) -> Received {
        let start = std::time::Instant::now();
        loop {
            if let Some(r) = self.seen().into_iter().find(|r| pred(r)) {
                return r;
            }
            assert!(
                start.elapsed() < timeout,
                "timed out after {timeout:?} waiting for {what}; saw {:?}",
                self.seen()
                    .iter()
                    .map(|r| String::from_utf8_lossy(&r.body).into_owned())
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn record(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let Ok(mut i) = inner.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR;
    };
    i.seen.push(Received { headers, body });
    if i.fail_next > 0 {
        i.fail_next -= 1;
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    StatusCode::OK
}

/// A free loopback port (nothing listens on it once this returns).
pub fn free_port() -> u16 {
    ritma_devstack::ports::free_port().unwrap_or_else(|e| panic!("no free port: {e}"))
}

/// A self-signed CA and a server certificate for `localhost`/127.0.0.1
/// signed by it, made with the openssl CLI: (ca.pem, cert.pem, key.pem).
pub fn test_certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap_or_else(|e| panic!("openssl: {e}"));
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=ritma test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "key.pem",
        "-out",
        "server.csr",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap_or_else(|e| panic!("ext.cnf: {e}"));
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
        "-out",
        "cert.pem",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    )
}

/// aiosmtpd on loopback; every message it accepts is appended to `mailbox`.
pub struct SmtpServer {
    pub port: u16,
    pub mailbox: PathBuf,
    child: std::process::Child,
}

const SMTP_SCRIPT: &str = r#"
import asyncio, ssl, sys
from aiosmtpd.controller import Controller
port, cert, key, mailbox, starttls = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5] == "1"
class Keep:
    async def handle_DATA(self, server, session, envelope):
        with open(mailbox, "a") as f:
            f.write("RCPT " + ",".join(envelope.rcpt_tos) + "\n")
            f.write("TLS " + ("yes" if session.ssl else "no") + "\n")
            f.write(envelope.content.decode("utf8", "replace") + "\n.\n")
        return "250 OK"
kw = {}
if starttls:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    kw = dict(tls_context=ctx, require_starttls=True)
c = Controller(Keep(), hostname="127.0.0.1", port=port, **kw)
c.start()
print("ready", flush=True)
asyncio.get_event_loop().run_forever()
"#;

impl SmtpServer {
    /// Start it with STARTTLS required (`starttls`), or plain only.
    /// `None` when no Python with aiosmtpd is configured (`RITMA_PYTHON`).
    pub async fn start(dir: &Path, cert: &Path, key: &Path, starttls: bool) -> Option<Self> {
        let python = std::env::var("RITMA_PYTHON").ok()?;
        let port = free_port();
        let mailbox = dir.join(format!("mailbox-{port}.txt"));
        let script = dir.join("smtp_server.py");
        std::fs::write(&script, SMTP_SCRIPT).ok()?;
        let child = std::process::Command::new(python)
            .arg(&script)
            .arg(port.to_string())
            .arg(cert)
            .arg(key)
            .arg(&mailbox)
            .arg(if starttls { "1" } else { "0" })
            .stdout(std::process::Stdio::null())
            .spawn()
            .ok()?;
        let start = std::time::Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the SMTP server did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Some(Self {
            port,
            mailbox,
            child,
        })
    }

    pub fn mail(&self) -> String {
        std::fs::read_to_string(&self.mailbox).unwrap_or_default()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
