use clap::Parser;
use ritma_controller::{Config, Controller};

// The ingest allocates per message (decode, rows, acks): glibc's malloc was
// the controller's largest single cost in profiles of the ingest benchmark.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    ritma_runtime::init_logging("info");
    let config = Config::parse();
    let listener = tokio::net::TcpListener::bind(config.api_listen).await?;
    let controller = Controller::build(config).await?;
    controller
        .run(listener, ritma_runtime::shutdown_on_signals())
        .await
}
