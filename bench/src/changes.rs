//! `bench changes`: what one hook change costs as the number of hooks stored grows. A
//! router process runs against 10, 10,000 and 100,000 stored hooks; each change is stored
//! and announced as the admin API does, and timed until the router's lease states the new
//! version (the router routes by it: what the admin API waits for). Beside it, in this
//! process, what the cache does on a change (read the changed hook, rebuild the index) and
//! what it did before the change log (read and parse every hook), and the router's resident
//! memory. The figures go into docs/BENCHMARKS.md by hand ("A hook change at 100,000
//! hooks").

use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use hookbus_contracts::metric_names;
use hookbus_contracts::snapshot::HookSnapshot;

use crate::scale::Configured;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Hooks stored, one size after the other.
    #[arg(long, value_delimiter = ',', default_values_t = [10, 10_000, 100_000])]
    hooks: Vec<usize>,
    /// Changes timed at each size.
    #[arg(long, default_value_t = 20)]
    changes: usize,
}

/// How long one change may take to reach the router at most.
const LIMIT: Duration = Duration::from_secs(30);

pub async fn run(args: &Args) -> Result<()> {
    let mut configured = Configured::new("changes")?;
    let measured = measure(args, &mut configured).await;
    configured.cleanup(true).await;
    let rows = measured?;
    println!(
        "\n| hooks stored | change applied by the router, median (max) | the cache's work per change | a reload of every hook (before) | router resident memory |"
    );
    println!("|---|---|---|---|---|");
    for row in rows {
        println!("{row}");
    }
    Ok(())
}

async fn measure(args: &Args, configured: &mut Configured) -> Result<Vec<String>> {
    let mut rows = Vec::new();
    for &hooks in &args.hooks {
        configured.store_idle_as(hooks, |_, _| {}).await?;
        let router = configured.start("router").await?;
        let timed = async {
            configured
                .wait_for(&router, metric_names::HOOKS, hooks)
                .await?;
            let rss = router.rss_bytes().unwrap_or(0);
            // Untimed: it waits out the lease of the router of the size before, killed
            // without ending it, which would count as a router behind.
            change(configured, args.changes).await?;
            let mut applied = Vec::with_capacity(args.changes);
            for i in 0..args.changes {
                applied.push(change(configured, i).await?);
            }
            anyhow::Ok((applied, rss))
        }
        .await;
        router.stop().await;
        let (mut applied, rss) = timed?;
        applied.sort();
        let (delta, full) = cache_work(configured).await?;
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        rows.push(format!(
            "| {hooks} | {:.1} ms ({:.1} ms) | {:.2} ms | {:.1} ms | {:.0} MiB |",
            ms(applied[applied.len() / 2]),
            ms(applied[applied.len() - 1]),
            ms(delta),
            ms(full),
            rss as f64 / 1048576.0
        ));
    }
    Ok(rows)
}

/// Changes the `i`th idle hook's URL, announces it, and times it until no live router is
/// behind.
async fn change(configured: &Configured, i: usize) -> Result<Duration> {
    let store = &configured.store;
    let id = &configured.idle()[i % configured.idle().len()];
    let started = Instant::now();
    store
        .update(id, |hook| {
            hook.config.url = format!("http://127.0.0.1:9/changed/{i}");
            Ok::<(), ()>(())
        })
        .await
        .map_err(|e| anyhow!("changing a hook: {e}"))?;
    let version = store.announce().await?;
    while !store.routers_behind(version).await?.is_empty() {
        if started.elapsed() > LIMIT {
            return Err(anyhow!("the router did not load version {version}"));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(started.elapsed())
}

/// The cache's work for one change (its hook read from the change log, the index rebuilt
/// around it), and a reload of every hook, as each change cost before the log: each the
/// median of 5.
async fn cache_work(configured: &Configured) -> Result<(Duration, Duration)> {
    let store = &configured.store;
    let version = store.version().await?;
    let snapshot = HookSnapshot::new(version - 1, store.load_all().await?);
    let mut delta = Vec::new();
    let mut full = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let changes = store
            .changes_since(version - 1)
            .await?
            .ok_or_else(|| anyhow!("the change log does not cover the last change"))?;
        drop(snapshot.with_changes(changes.version, changes.hooks));
        delta.push(started.elapsed());
        let started = Instant::now();
        drop(HookSnapshot::new(version, store.load_all().await?));
        full.push(started.elapsed());
    }
    delta.sort();
    full.sort();
    Ok((delta[2], full[2]))
}
