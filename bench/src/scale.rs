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
use hookbus_contracts::activity::{Idle, DEFAULT_IDLE};
use hookbus_contracts::hook::HookInput;
use hookbus_contracts::keys::RedisKeys;
use hookbus_contracts::snapshot::HookSnapshot;
use hookbus_contracts::{Hook, HookId};
use hookbus_producer::Publisher;
use hookbus_runtime::activity::HookActivity;
use hookbus_runtime::store::HookStore;
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
    let mut configured = Configured::new("bench-scale")?;
    let points = router_points(clock, &mut configured, sizes, events, repeats).await;
    // The router's idle hooks are many and have no queues: forgotten first, the cleanup
    // need not delete queues that do not exist.
    configured.cleanup(true).await;
    let mut configured = Configured::new("bench-deliverer-mem")?;
    let deliverer_rss = deliverer_memory(&mut configured).await;
    // The deliverer declared its hooks' queues: the cleanup deletes them.
    configured.cleanup(false).await;
    Ok(Scale {
        points: points?,
        deliverer_rss: deliverer_rss?,
    })
}

/// Hooks stored under a prefix of their own, and the services measured against them.
pub(crate) struct Configured {
    prefix: String,
    pub(crate) store: HookStore,
    pub(crate) http: reqwest::Client,
    /// The idle hooks stored so far.
    idle: Vec<HookId>,
}

impl Configured {
    pub(crate) fn new(test: &str) -> Result<Configured> {
        let prefix = unique_prefix(test);
        Ok(Configured {
            store: HookStore::new(REDIS_URL, RedisKeys::new(&prefix))?,
            prefix,
            http: reqwest::Client::new(),
            idle: Vec::new(),
        })
    }

    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The prefix's hook activity, with the default idle period.
    pub(crate) fn activity(&self) -> HookActivity {
        let idle = Idle::new(DEFAULT_IDLE).expect("the default idle period is not zero");
        HookActivity::new(
            self.store.pool().clone(),
            RedisKeys::new(&self.prefix),
            idle,
        )
    }

    /// The idle hooks stored so far.
    pub(crate) fn idle(&self) -> &[HookId] {
        &self.idle
    }

    /// Stores idle hooks until there are `n`; returns the stored size of one.
    async fn store_idle(&mut self, n: usize) -> Result<usize> {
        self.store_idle_as(n, |_, _| {}).await
    }

    /// Stores idle hooks until there are `n`, the `i`th made different by `vary(i, hook)`
    /// (a name, a URL); returns the stored size of one.
    pub(crate) async fn store_idle_as(
        &mut self,
        n: usize,
        vary: impl Fn(usize, &mut Hook),
    ) -> Result<usize> {
        if self.idle.is_empty() {
            // As if a router had started on the empty prefix and the hooks came through its
            // admin API: none has a queue from before activity was tracked for the first
            // router to hand to its idle sweep (which would look at every one).
            self.activity().seed().await?;
        }
        let template = hook(OTHER_EVENT, "http://127.0.0.1:9/idle")?;
        let missing = n.saturating_sub(self.idle.len());
        let new: Vec<HookId> = (0..missing).map(|_| HookId::generate()).collect();
        let progress = crate::progress::bar(missing as u64, "idle hooks stored");
        let store = &self.store;
        let vary = &vary;
        let first = self.idle.len();
        futures::stream::iter(new.iter().cloned().enumerate())
            .map(|(i, id)| {
                let mut hook = template.clone();
                hook.id = id;
                vary(first + i, &mut hook);
                async move { store.insert(&hook).await }
            })
            .buffer_unordered(32)
            .inspect(|_| progress.inc(1))
            .try_collect::<()>()
            .await?;
        progress.finish_and_clear();
        self.idle.extend(new);
        Ok(serde_json::to_vec(&template)?.len())
    }

    pub(crate) async fn start(&self, role: &str) -> Result<ServiceProcess> {
        ServiceProcess::start(role, &self.prefix, &self.http).await
    }

    /// Waits until `service`'s gauge `name` reads `n`.
    pub(crate) async fn wait_for(
        &self,
        service: &ServiceProcess,
        name: &str,
        n: usize,
    ) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let value = metric(&self.http, service.addr, name).await;
            if value == Some(n as f64) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(anyhow!("{name} reads {value:?}, not {n}"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Deletes everything of the prefix, forgetting the idle hooks first if asked.
    pub(crate) async fn cleanup(self, forget_idle: bool) {
        let forget = if forget_idle { &self.idle[..] } else { &[] };
        futures::stream::iter(forget)
            .map(|id| self.store.delete(id))
            .buffer_unordered(32)
            .for_each(|_| async {})
            .await;
        pipeline::cleanup(&self.prefix, &hookbus_tests::service::RETRY_SCHEDULE).await;
    }
}

/// A hook as the API would store it.
pub(crate) fn hook(event: &str, url: &str) -> Result<Hook> {
    let input: HookInput =
        serde_json::from_value(json!({"events": [event], "config": {"url": url}}))?;
    let policy = pipeline::targets().policy();
    input
        .validate(&policy)
        .map_err(|e| anyhow!("the bench's hook is invalid: {e:?}"))
}

async fn router_points(
    clock: Clock,
    configured: &mut Configured,
    sizes: &[usize],
    events: usize,
    repeats: usize,
) -> Result<Vec<ScalePoint>> {
    configured
        .store
        .insert(&hook(EVENT, "http://127.0.0.1:9/matching")?)
        .await?;
    let publisher = &Publisher::connect(AMQP_URL, &configured.prefix).await?;
    let mut points = Vec::new();
    for &size in sizes {
        let stored_bytes = configured.store_idle(size.saturating_sub(1)).await?;
        let router = configured.start("router").await?;
        let http = &configured.http;
        let measured = async {
            configured.wait_for(&router, "hookbus_hooks", size).await?;
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
        let loaded = configured.store.load_all().await?;
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
/// at `DELIVERER_BASE` hooks and then `DELIVERER_STEP` more: with activity off
/// (`HOOKBUS_HOOK_IDLE=0`), so that it consumes them although they are idle, which is what
/// one consumed queue costs.
async fn deliverer_memory(configured: &mut Configured) -> Result<Vec<(usize, Option<u64>)>> {
    let mut readings = Vec::new();
    for hooks in [DELIVERER_BASE, DELIVERER_BASE + DELIVERER_STEP] {
        configured.store_idle(hooks).await?;
        let deliverer = ServiceProcess::start_with(
            "deliverer",
            configured.prefix(),
            &configured.http,
            &[("HOOKBUS_HOOK_IDLE", "0".into())],
        )
        .await?;
        let consuming = configured
            .wait_for(
                &deliverer,
                hookbus_contracts::metric_names::HOOK_CONSUMERS,
                hooks,
            )
            .await;
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
