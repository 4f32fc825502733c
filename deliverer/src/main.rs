//! `deliverer`: parses configuration, sets up logs and signals, runs the deliverer.

use anyhow::Context;
use clap::Parser;
use hookbus_runtime::ops;

// The services allocate small, short-lived buffers per message, which mimalloc serves
// faster than glibc: about 12 % more one-hook throughput, for more resident memory (both
// measured in docs/BENCHMARKS.md, "Where the time goes").
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
