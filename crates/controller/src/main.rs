use clap::Parser;
use ritma_controller::{Config, Controller};

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
