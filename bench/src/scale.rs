//! Scale of configuration: 10, 1,000 and 10,000 hooks configured, the events matching one
//! of them. The router runs in a process of its own (see [`crate::process`]), a fresh one
//! per size, so that its events per second, its CPU time per event and its resident
//! memory are its own; deliverers, which consume the queue of every enabled hook, are
//! measured for memory in a process of their own too, at 10 and 1,010 hooks.
//!
//! The hooks are written directly into the hook store (`HookStore::insert`, the shape of a
//! hook created through the API): one subscribed to the published event, the idle ones
//! enabled, subscribed to `User.Created`, which is never published, and pointing at a
//! closed port. No deliverer runs while the router is timed: 10,000 consumers (and queues)
//! do not fit next to the rest on this machine's broker, and the router's cost is what
//! must not grow.

use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use futures::{StreamExt, TryStreamExt};
use hookbus_contracts::hook::HookInput;
use hookbus_contracts::keys::RedisKeys;
use hookbus_contracts::store::{HookSnapshot, HookStore};
use hookbus_contracts::{Hook, HookId};
use hookbus_producer::Publisher;
use hookbus_tests::pipeline::{self, metric, unique_prefix, AMQP_URL, REDIS_URL};
use serde_json::json;

use crate::figures::{repeat, Runs, Throughput};
use crate::load::{self, Clock, ARRIVAL_TIMEOUT};
use crate::process::ServiceProcess;

/// The event the matching hook subscribes to and every event is.
const EVENT: &str = crate::scenarios::EVENT;
/// The event the idle hooks subscribe to, never published.
const OTHER_EVENT: &str = "User.Created";
/// Idle hooks added between the deliverer's two memory readings.
pub const DELIVERER_STEP: usize = 1_000;
/// Hooks of the deliverer's first memory reading.
const DELIVERER_BASE: usize = 10;

pub struct ScalePoint {
    pub hooks: usize,
    /// Events per second through the router process (published → counted by it).
    pub router: Runs,
    /// The router process's CPU time over all the runs, per event, in microseconds.
    pub router_cpu_us: Option<f64>,
    /// The router process's resident memory once it holds the hooks, before any event.
    pub router_rss: Option<u64>,
    /// Heap bytes of a hook cache snapshot (`HookSnapshot`, what the router and every
    /// deliverer hold) of all the configured hooks.
    pub cache_bytes: i64,
    /// Size of one idle hook as stored (JSON).
    pub stored_bytes: usize,
}

pub struct Scale {
    pub points: Vec<ScalePoint>,
    /// A deliverer process's resident memory consuming `DELIVERER_BASE` and then
    /// `DELIVERER_BASE + DELIVERER_STEP` idle hooks' queues: (hooks, bytes).
    pub deliverer_rss: Vec<(usize, Option<u64>)>,
}

/// The router with `sizes` hooks configured, then a deliverer's memory.
pub async fn scale(clock: Clock, sizes: &[usize], events: usize, repeats: usize) -> Result<Scale> {
    let http = reqwest::Client::new();
    let prefix = unique_prefix("bench-scale");
    let store = HookStore::new(REDIS_URL, RedisKeys::new(&prefix))?;
    let mut idle = Vec::new();
    let points = router_points(
        clock, &http, &prefix, &store, &mut idle, sizes, events, repeats,
    )
    .await;
    cleanup(&prefix, &store, &idle).await;

    let prefix = unique_prefix("bench-deliverer-mem");
    let store = HookStore::new(REDIS_URL, RedisKeys::new(&prefix))?;
    let mut idle = Vec::new();
    let deliverer_rss = deliverer_memory(&http, &prefix, &store, &mut idle).await;
    cleanup(&prefix, &store, &[]).await;
    Ok(Scale {
        points: points?,
        deliverer_rss: deliverer_rss?,
    })
}

/// Deletes everything of `prefix`, forgetting the hooks of `forget` first: the router's
/// idle hooks are many and have no queues, so that the cleanup need not delete queues
/// that do not exist; the deliverer's have queues, declared by the deliverer.
async fn cleanup(prefix: &str, store: &HookStore, forget: &[HookId]) {
    futures::stream::iter(forget)
        .map(|id| store.delete(id))
        .buffer_unordered(32)
        .for_each(|_| async {})
        .await;
    pipeline::cleanup(prefix, &hookbus_tests::service::RETRY_SCHEDULE).await;
}

/// A hook as the API would store it.
fn hook(event: &str, url: &str) -> Result<Hook> {
    let input: HookInput =
        serde_json::from_value(json!({"events": [event], "config": {"url": url}}))?;
    let policy = pipeline::common("bench").target_policy();
    input
        .validate(&policy)
        .map_err(|e| anyhow!("the bench's hook is invalid: {e:?}"))
}

/// Stores idle hooks until `idle` holds `n`.
async fn store_idle(store: &HookStore, idle: &mut Vec<HookId>, n: usize) -> Result<usize> {
    let template = hook(OTHER_EVENT, "http://127.0.0.1:9/idle")?;
    let missing = n.saturating_sub(idle.len());
    let new: Vec<HookId> = (0..missing).map(|_| HookId::generate()).collect();
    let progress = crate::progress::bar(missing as u64, "idle hooks stored");
    futures::stream::iter(new.iter().cloned())
        .map(|id| {
            let mut hook = template.clone();
            hook.id = id;
            async move { store.insert(&hook).await }
        })
        .buffer_unordered(32)
        .inspect(|_| progress.inc(1))
        .try_collect::<()>()
        .await?;
    progress.finish_and_clear();
    idle.extend(new);
    Ok(serde_json::to_vec(&template)?.len())
}

#[allow(clippy::too_many_arguments)]
async fn router_points(
    clock: Clock,
    http: &reqwest::Client,
    prefix: &str,
    store: &HookStore,
    idle: &mut Vec<HookId>,
    sizes: &[usize],
    events: usize,
    repeats: usize,
) -> Result<Vec<ScalePoint>> {
    store
        .insert(&hook(EVENT, "http://127.0.0.1:9/matching")?)
        .await?;
    let publisher = &Publisher::connect(AMQP_URL, prefix).await?;
    let mut points = Vec::new();
    for &size in sizes {
        let stored_bytes = store_idle(store, idle, size.saturating_sub(1)).await?;
        let router = ServiceProcess::start("router", prefix, http).await?;
        let measured = async {
            wait_for(http, &router, "hookbus_hooks", size).await?;
            let router_rss = router.rss_bytes();
            through_router(clock, http, &router, publisher, 500).await?;
            let cpu_before = router.cpu_seconds();
            let runs = repeat(
                &format!("{size} hooks, events through the router process"),
                repeats,
                || through_router(clock, http, &router, publisher, events),
            )
            .await?;
            let cpu = cpu_before.zip(router.cpu_seconds()).map(|(a, b)| b - a);
            anyhow::Ok((runs, router_rss, cpu))
        }
        .await;
        router.stop().await;
        let (runs, router_rss, cpu) = measured?;
        let loaded = store.load_all().await?;
        let (snapshot, cache_bytes) =
            crate::alloc::live_bytes(|| HookSnapshot::new(0, loaded.clone()));
        drop(snapshot);
        points.push(ScalePoint {
            hooks: size,
            router_cpu_us: cpu.map(|s| s * 1e6 / (events * repeats) as f64),
            router: runs,
            router_rss,
            cache_bytes,
            stored_bytes,
        });
    }
    Ok(points)
}

/// A fresh deliverer process's resident memory once it consumes every idle hook's queue,
/// at `DELIVERER_BASE` hooks and then `DELIVERER_STEP` more.
async fn deliverer_memory(
    http: &reqwest::Client,
    prefix: &str,
    store: &HookStore,
    idle: &mut Vec<HookId>,
) -> Result<Vec<(usize, Option<u64>)>> {
    let mut readings = Vec::new();
    for hooks in [DELIVERER_BASE, DELIVERER_BASE + DELIVERER_STEP] {
        store_idle(store, idle, hooks).await?;
        let deliverer = ServiceProcess::start("deliverer", prefix, http).await?;
        let consuming = wait_for(http, &deliverer, "hookbus_deliverer_hook_consumers", hooks).await;
        let rss = deliverer.rss_bytes();
        deliverer.stop().await;
        consuming?;
        println!(
            "  a deliverer consuming {hooks} hooks: {:.1} MiB resident",
            rss.unwrap_or(0) as f64 / 1048576.0
        );
        readings.push((hooks, rss));
    }
    Ok(readings)
}

/// Waits until `service`'s gauge `name` reads `n`.
async fn wait_for(
    http: &reqwest::Client,
    service: &ServiceProcess,
    name: &str,
    n: usize,
) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let value = metric(http, service.addr, name).await;
        if value == Some(n as f64) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(anyhow!("{name} reads {value:?}, not {n}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Publishes `n` events and times them until the router has counted all of them.
async fn through_router(
    clock: Clock,
    http: &reqwest::Client,
    router: &ServiceProcess,
    publisher: &Publisher,
    n: usize,
) -> Result<Throughput> {
    let counted = || metric(http, router.addr, "hookbus_router_events_total");
    let before = counted().await.unwrap_or(0.0);
    let start = Instant::now();
    load::publish_all(clock, n, |fields| {
        crate::scenarios::publish(publisher, fields)
    })
    .await?;
    let deadline = start + ARRIVAL_TIMEOUT;
    loop {
        let now = counted().await.unwrap_or(0.0);
        if now - before >= n as f64 {
            return Ok(Throughput {
                messages: n,
                elapsed: start.elapsed(),
            });
        }
        if Instant::now() > deadline {
            return Err(anyhow!("the router counted {} of {n} events", now - before));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
