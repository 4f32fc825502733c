//! `producer`: parses configuration, sets up logs and signals, and runs the ingest API, or,
//! as `producer simulate`, sends simulated auth traffic to a running one.

use anyhow::Context;
use clap::{Parser, Subcommand};
use hookbus_producer::simulate::{self, SimulateArgs};
use hookbus_runtime::ops;

// The allocator: see deliverer/src/main.rs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "producer",
    about = "hookbus ingest API: auth services publish events here",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    service: hookbus_producer::Config,
}

#[derive(Subcommand)]
enum Command {
    /// Sends realistic mixed auth traffic (every route and interaction) to a producer.
    Simulate(SimulateArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    ops::init_tracing();
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Simulate(args)) => run_simulation(args).await,
        None => run_service(cli.service).await,
    }
}

async fn run_service(config: hookbus_producer::Config) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    hookbus_producer::run(config, listener, ops::shutdown_on_signal())
        .await
        .context("producer")
}

async fn run_simulation(args: SimulateArgs) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let report = simulate::run(&args, ops::shutdown_on_signal())
        .await
        .context("simulate")?;
    println!("simulate: {report} in {:.1?}", started.elapsed());
    Ok(())
}
