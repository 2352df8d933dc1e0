//! `ritma`: bring a dev stack up, and operate or integrate with one.

mod api_client;
mod commands;
mod console_build;
mod doctor;
mod stack_file;
mod up;

use clap::{Parser, Subcommand};

// The ingest allocates per message (decode, rows, acks): glibc's malloc was
// the controller's largest single cost in profiles of the ingest benchmark.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "ritma",
    version,
    about = "Ritma Node Console: dev stack, operator and integrator tool"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Bring the whole stack up: NATS, PostgreSQL, controller, console and demo nodes.
    Up(up::UpArgs),
    /// Check a running stack (NATS, JetStream, PostgreSQL, clocks, node
    /// credentials) and say what to do; exits non-zero on a failure.
    Doctor(doctor::DoctorArgs),
    /// Bus keys and server configuration.
    #[command(subcommand)]
    Bus(commands::BusCommand),
    /// Orgs.
    #[command(subcommand)]
    Org(commands::OrgCommand),
    /// Enrollment tokens.
    #[command(subcommand)]
    Token(commands::TokenCommand),
    /// Bus credentials.
    #[command(subcommand)]
    Creds(commands::CredsCommand),
    /// The audit trail.
    #[command(subcommand)]
    Audit(commands::AuditCommand),
    /// Print messages of a subject (with integrator credentials).
    Tail(commands::TailArgs),
    /// Simulate a fleet of nodes against a running stack (load generator).
    Sim(ritma_sim::SimArgs),
    /// Run the controller (same settings as `ritma-controller`).
    #[command(hide = true)]
    Controller,
    /// Run a node daemon (same settings as `ritma-node`).
    #[command(hide = true)]
    Node,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    ritma_runtime::init_logging(match cli.command {
        Command::Node => ritma_node::DEFAULT_LOG_FILTER,
        _ => "info",
    });
    match cli.command {
        Command::Up(args) => up::run(args).await,
        Command::Doctor(a) => doctor::run(a).await,
        Command::Bus(c) => commands::bus(c).await,
        Command::Org(c) => commands::org(c).await,
        Command::Token(c) => commands::token(c).await,
        Command::Creds(c) => commands::creds(c).await,
        Command::Tail(a) => commands::tail(a).await,
        Command::Sim(a) => ritma_sim::main(a).await.map(|_| ()).map_err(Into::into),
        Command::Audit(c) => commands::audit(c).await,
        Command::Controller => commands::run_controller().await,
        Command::Node => commands::run_node().await,
    }
}
