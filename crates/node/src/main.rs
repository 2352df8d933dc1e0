use clap::Parser;
use ritma_node::{Args, Daemon, NodeConfig};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    ritma_runtime::init_logging("info");
    let config = NodeConfig::resolve(Args::parse())?;
    let shutdown = ritma_runtime::shutdown_on_signals();
    let daemon = Daemon::build(config, &shutdown).await?;
    daemon.run(shutdown).await
}
