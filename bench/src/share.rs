//! `bench share`: deliverers sharing the hooks. 1,000 hooks are stored and made active (as
//! hooks with events are: for the idle period their queues exist and their owners consume
//! them, though no event is sent); four deliverer processes start against them; once every
//! hook has its two owners, each deliverer's share (the hooks it consumes) and resident
//! memory are read. Then one is killed (`kill -9`) and
//! the time until the three left consume every hook twice again is measured. The figures go
//! into docs/BENCHMARKS.md by hand ("Deliverers sharing the hooks").

use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use hookbus_contracts::owners::DEFAULT_OWNERS;
use hookbus_contracts::HookId;
use hookbus_tests::pipeline::metric;

use crate::process::ServiceProcess;
use crate::scale::Configured;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Idle hooks stored.
    #[arg(long, default_value_t = 1_000)]
    hooks: usize,
    /// Deliverer processes started.
    #[arg(long, default_value_t = 4)]
    deliverers: usize,
    /// Kills (one deliverer each, restarted after) timed.
    #[arg(long, default_value_t = 5)]
    kills: usize,
}

/// The hook queues each deliverer consumes (the active hooks it owns).
const CONSUMERS: &str = hookbus_contracts::metric_names::HOOK_CONSUMERS;
const LIMIT: Duration = Duration::from_secs(60);

pub async fn run(args: &Args) -> Result<()> {
    let mut configured = Configured::new("share")?;
    configured.store_idle_as(args.hooks, |_, _| {}).await?;
    let activity = configured.activity();
    for hooks in configured.idle().chunks(1_000) {
        let hooks: Vec<&HookId> = hooks.iter().collect();
        activity.activate(&hooks).await?;
    }
    let mut deliverers = Vec::new();
    for _ in 0..args.deliverers {
        deliverers.push(configured.start("deliverer").await?);
    }
    let measured = measure(args, &configured, &mut deliverers).await;
    for d in deliverers {
        d.stop().await;
    }
    configured.cleanup(true).await;
    measured
}

async fn measure(
    args: &Args,
    configured: &Configured,
    deliverers: &mut Vec<ServiceProcess>,
) -> Result<()> {
    let owned = args.hooks * DEFAULT_OWNERS.min(args.deliverers);
    let counts = settled(configured, deliverers, owned).await?;
    println!("\n| deliverer | hooks consumed | share of the {owned} consumers | vs an equal share | resident memory |");
    println!("|---|---|---|---|---|");
    let equal = owned as f64 / args.deliverers as f64;
    for (i, (n, d)) in counts.iter().zip(deliverers.iter()).enumerate() {
        println!(
            "| {i} | {n:.0} | {:.1} % | {:+.1} % | {:.0} MiB |",
            100.0 * n / owned as f64,
            100.0 * (n / equal - 1.0),
            d.rss_bytes().unwrap_or(0) as f64 / 1048576.0
        );
    }
    let mut takeovers = Vec::new();
    for _ in 0..args.kills {
        let victim = deliverers.remove(0);
        let killed = Instant::now();
        victim.stop().await;
        let owned_after = args.hooks * DEFAULT_OWNERS.min(deliverers.len());
        settled(configured, deliverers, owned_after).await?;
        takeovers.push(killed.elapsed());
        deliverers.push(configured.start("deliverer").await?);
        settled(configured, deliverers, owned).await?;
    }
    takeovers.sort();
    let s = |d: &Duration| format!("{:.1} s", d.as_secs_f64());
    println!(
        "\nkill -9 of a deliverer, until the {} left consume every hook {} times again: median {}, range {}–{} ({} kills)",
        args.deliverers - 1,
        DEFAULT_OWNERS.min(args.deliverers - 1),
        s(&takeovers[takeovers.len() / 2]),
        s(&takeovers[0]),
        s(&takeovers[takeovers.len() - 1]),
        takeovers.len()
    );
    Ok(())
}

/// Waits until the deliverers' consumers add up to `owned`; each one's count.
async fn settled(
    configured: &Configured,
    deliverers: &[ServiceProcess],
    owned: usize,
) -> Result<Vec<f64>> {
    let started = Instant::now();
    loop {
        let mut counts = Vec::new();
        for d in deliverers {
            counts.push(
                metric(&configured.http, d.addr, CONSUMERS)
                    .await
                    .unwrap_or(0.0),
            );
        }
        if counts.iter().sum::<f64>() == owned as f64 {
            return Ok(counts);
        }
        if started.elapsed() > LIMIT {
            return Err(anyhow!(
                "the deliverers consume {counts:?} hooks, not {owned} in all"
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
