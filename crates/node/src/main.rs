use clap::Parser;
use ritma_node::{Args, Daemon, NodeConfig};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    ritma_runtime::init_logging("info");
    let config = NodeConfig::resolve(Args::parse())?;
    let shutdown = ritma_runtime::shutdown_on_signals();
    let rekey = config.rekey;
    let mut daemon = Daemon::build(config, &shutdown).await?;
    if rekey {
        return daemon.rekey().await;
    }
    daemon.run(shutdown).await
}
