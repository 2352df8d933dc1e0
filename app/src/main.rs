//! `ritma-console`: see `ritma_console::server` for the service.

use clap::Parser as _;

/// Stack of the runtime's threads. Server-side rendering of a deep page (the node page
/// with its fleet panels) nests many futures; tokio's default 2 MiB overflows in debug
/// builds and aborts the whole console.
const THREAD_STACK_BYTES: usize = 16 * 1024 * 1024;

fn main() -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(THREAD_STACK_BYTES)
        .build()?
        .block_on(serve())
}

async fn serve() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,ritma_console=info".into()),
        )
        .init();
    let config = ritma_console::server::config::Config::parse().resolve()?;
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let console = ritma_console::server::build(config).await?;
    tracing::info!(addr = %listener.local_addr()?, "console listening");
    console.run(listener, shutdown_signal()).await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
