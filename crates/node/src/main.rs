use clap::Parser;
use ritma_node::config::NodeCommand;
use ritma_node::{Args, Daemon, NodeConfig};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    // The daemon keeps its recent warnings for a bundle asked for over the bus.
    ritma_runtime::init_logging_with_tap(
        ritma_node::DEFAULT_LOG_FILTER,
        Some(std::sync::Arc::new(ritma_node::diagnose::log_tap)),
    );
    let args = Args::parse();
    let command = args.command.clone();
    let config = NodeConfig::resolve(args)?;
    if let Some(NodeCommand::Diagnose { out, log }) = command {
        let bundle =
            serde_json::to_string_pretty(&ritma_node::diagnose::bundle(&config, log.as_deref()))?;
        match out {
            Some(path) => {
                std::fs::write(&path, bundle + "\n")?;
                eprintln!("diagnostic bundle written to {}", path.display());
            }
            None => println!("{bundle}"),
        }
        return Ok(());
    }
    let shutdown = ritma_runtime::shutdown_on_signals();
    let rekey = config.rekey;
    let mut daemon = Daemon::build(config, &shutdown).await?;
    if rekey {
        return daemon.rekey().await;
    }
    daemon.run(shutdown).await
}
