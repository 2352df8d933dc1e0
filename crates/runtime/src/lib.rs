//! Process plumbing shared by the binaries.

pub mod metrics;

use tokio_util::sync::CancellationToken;

/// A listener whose connections send each write at once (`TCP_NODELAY`).
/// A streamed response (the console's server rendering, the exports) is
/// several writes; with Nagle's algorithm each one after the first waited
/// for the client's delayed ACK, 40 ms on Linux (measured: most console
/// pages took 42 ms or more, `ritma-bench pages`).
pub fn listener_without_delay(
    listener: tokio::net::TcpListener,
) -> axum::serve::TapIo<tokio::net::TcpListener, fn(&mut tokio::net::TcpStream)> {
    use axum::serve::ListenerExt;
    listener.tap_io(no_delay)
}

fn no_delay(tcp: &mut tokio::net::TcpStream) {
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(error = %e, "TCP_NODELAY not set on a connection");
    }
}

/// Logging to stderr: `RITMA_LOG` filters (default `default_filter`),
/// `RITMA_LOG_FORMAT=json` writes JSON lines.
pub fn init_logging(default_filter: &str) {
    init_logging_with_tap(default_filter, None);
}

/// Receives every formatted log line as written (e.g. to keep the recent
/// warnings in memory).
pub type LogTap = std::sync::Arc<dyn Fn(&[u8]) + Send + Sync>;

/// [`init_logging`], also handing each formatted line to `tap`.
pub fn init_logging_with_tap(default_filter: &str, tap: Option<LogTap>) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RITMA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(tap.is_none() && std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(move || TapWriter { tap: tap.clone() });
    let _ = if std::env::var("RITMA_LOG_FORMAT").is_ok_and(|v| v == "json") {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// Stderr, and the tap if there is one.
struct TapWriter {
    tap: Option<LogTap>,
}

impl std::io::Write for TapWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(tap) = &self.tap {
            tap(buf);
        }
        std::io::stderr().write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// A token cancelled on SIGINT or SIGTERM (graceful shutdown).
pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let stop = token.clone();
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).ok();
        let terminated = async {
            match term.as_mut() {
                Some(t) => {
                    t.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminated => {}
        }
        stop.cancel();
    });
    token
}

#[cfg(test)]
mod tests {
    use axum::serve::Listener;

    #[tokio::test]
    async fn accepted_connections_send_without_delay() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind on loopback");
        let addr = listener.local_addr().expect("local address");
        let mut listener = super::listener_without_delay(listener);
        let _client = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (accepted, _) = listener.accept().await;
        assert!(accepted.nodelay().expect("read TCP_NODELAY"));
    }
}
