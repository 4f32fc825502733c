//! `deliverer`: parses configuration, sets up logs and signals, runs the deliverer.

use anyhow::Context;
use clap::Parser;
use hookbus_contracts::ops;

// glibc's allocator took about a fifth of the delivery path's CPU in profiles; the
// services allocate small, short-lived buffers per message, which mimalloc serves faster.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    ops::init_tracing();
    let config = hookbus_deliverer::Config::parse();
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    hookbus_deliverer::run(config, listener, ops::shutdown_on_signal())
        .await
        .context("deliverer")
}
