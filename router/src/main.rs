//! `router`: parses configuration, sets up logs and signals, runs the router (or, with a
//! subcommand, an operator task such as `router dead-letters replay --hook ID`).

use anyhow::Context;
use hookbus_runtime::ops;

// The allocator: see deliverer/src/main.rs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    ops::init_tracing();
    let config =
        hookbus_router::Config::try_parse_args(std::env::args_os()).unwrap_or_else(|e| e.exit());
    if let Some(command) = &config.command {
        return hookbus_router::run_command(&config.common, &config.activity, command)
            .await
            .context("router command");
    }
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    hookbus_router::run(config, listener, ops::shutdown_on_signal())
        .await
        .context("router")
}
