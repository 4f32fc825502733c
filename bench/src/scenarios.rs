//! The scenarios of issue 8 beyond one hook, each on a pipeline of its own (the test
//! harness's, under its own prefix, removed by `Pipeline::stop` whatever happens):
//!
//! - [`fanout`]: one event to 10 hooks, deliveries per second.
//! - [`scaling`]: 1, 2 and 4 deliverers against a receiver taking 50 ms per request.
//! - [`isolation`]: good hooks next to one whose endpoint hangs, against the same good
//!   hooks alone.
//! - [`storm`]: one delivery in five fails once; throughput and time to drain.

use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use hookbus_contracts::EventName;
use hookbus_producer::Publisher;
use hookbus_tests::pipeline::AMQP_URL;
use hookbus_tests::Pipeline;
use serde_json::{Map, Value};

use crate::figures::{repeat, LatencyRun, Runs, Throughput};
use crate::load::{self, Clock, ARRIVAL_TIMEOUT};
use crate::receiver::Receiver;

/// What the scenarios yield; `None` where skipped.
#[derive(Default)]
pub struct Figures {
    pub fanout: Option<Runs>,
    pub scale: Option<crate::scale::Scale>,
    pub scaling: Option<Vec<ScalingPoint>>,
    pub isolation: Option<Isolation>,
    pub storm: Option<Storm>,
}

/// The event every scenario publishes.
pub const EVENT: &str = "PostSignIn";
/// Hooks of the fan-out scenario.
pub const FANOUT: usize = 10;
/// Good hooks of the isolation scenario.
pub const GOOD_HOOKS: usize = 4;

/// A retry schedule short enough for a storm to drain within the run.
const STORM_SCHEDULE: [Duration; 2] = [Duration::from_secs(1), Duration::from_secs(2)];
const SCHEDULE: [Duration; 2] = [Duration::from_millis(300), Duration::from_millis(600)];

pub async fn publish(publisher: &Publisher, fields: Map<String, Value>) -> Result<()> {
    publisher
        .publish_event(EventName::parse(EVENT)?, fields)
        .await?;
    Ok(())
}

/// Creates `n` hooks on `url` subscribed to `EVENT`; returns their ids.
async fn hooks(pipeline: &Pipeline, n: usize, url: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..n {
        let hook = pipeline.create_hook(&[EVENT], url).await;
        ids.push(hook["id"].as_str().unwrap_or_default().to_owned());
    }
    ids
}

async fn connect(pipeline: &Pipeline) -> Result<Publisher> {
    Ok(Publisher::connect(AMQP_URL, &pipeline.prefix).await?)
}

// ---------------------------------------------------------------------------------------
// Fan-out

/// Deliveries per second of events each going to `FANOUT` hooks.
pub async fn fanout(
    clock: Clock,
    receiver: &Receiver,
    events: usize,
    repeats: usize,
) -> Result<Runs> {
    let pipeline = Pipeline::start_with("bench-fanout", &SCHEDULE, 1).await;
    let measured = async {
        hooks(&pipeline, FANOUT, &receiver.url()).await;
        pipeline.wait_hooks(FANOUT).await;
        let publisher = &connect(&pipeline).await?;
        let send = |fields| publish(publisher, fields);
        load::fanned_out(clock, receiver, 200, FANOUT, send).await?;
        repeat("deliveries", repeats, || {
            load::fanned_out(clock, receiver, events, FANOUT, send)
        })
        .await
    }
    .await;
    pipeline.stop().await;
    measured
}

// ---------------------------------------------------------------------------------------
// Deliverer scaling

pub struct ScalingPoint {
    pub deliverers: usize,
    pub run: Throughput,
}

/// Deliveries of the hook each deliverer of the full run's [`scaling`] holds at once: 16
/// (not the default 64) keeps four deliverers against the 50 ms receiver within what this
/// machine's two cores carry, so that what is measured is the scaling and not the machine
/// (`bench scaling` measures the default too).
pub const SCALING_IN_FLIGHT: u16 = 16;

/// One hook on the 50 ms endpoint, `events_per_deliverer` × n events, for each n, each
/// deliverer holding `in_flight` of the hook's deliveries at once.
pub async fn scaling(
    clock: Clock,
    receiver: &Receiver,
    counts: &[usize],
    events_per_deliverer: usize,
    in_flight: u16,
) -> Result<Vec<ScalingPoint>> {
    let mut points = Vec::new();
    for &n in counts {
        let pipeline =
            crate::pipeline::start_limited("bench-scaling", &SCHEDULE, n, in_flight).await;
        let measured = async {
            hooks(&pipeline, 1, &receiver.url_at("slow")).await;
            pipeline.wait_hooks(1).await;
            let publisher = &connect(&pipeline).await?;
            let send = |fields| publish(publisher, fields);
            load::saturated(clock, receiver, 50 * n, send).await?;
            load::saturated(clock, receiver, events_per_deliverer * n, send).await
        }
        .await;
        pipeline.stop().await;
        let run = measured.with_context(|| format!("{n} deliverers"))?;
        println!("  {n} deliverer(s): {run}");
        points.push(ScalingPoint { deliverers: n, run });
    }
    Ok(points)
}

// ---------------------------------------------------------------------------------------
// Isolation

pub struct IsolationRun {
    pub run: Throughput,
    /// Of the saturated run (mostly queueing behind the burst).
    pub latency: LatencyRun,
    /// Of a paced run at `ISOLATION_RATE` events/s, below saturation.
    pub paced: LatencyRun,
}

/// Events per second of the isolation scenario's paced run (times `GOOD_HOOKS` deliveries).
pub const ISOLATION_RATE: u32 = 250;
const ISOLATION_SECS: u64 = 5;

pub struct Isolation {
    pub alone: IsolationRun,
    pub with_hang: IsolationRun,
}

/// `GOOD_HOOKS` hooks next to a fifth good one (not counted), then next to a fifth whose
/// endpoint hangs until the deliverer's attempt timeout (2 s in the harness), in the same
/// pipeline: both phases route five deliveries per event, so only the hanging differs.
pub async fn isolation(clock: Clock, receiver: &Receiver, events: usize) -> Result<Isolation> {
    let pipeline = Pipeline::start_with("bench-isolation", &SCHEDULE, 1).await;
    let measured = async {
        hooks(&pipeline, GOOD_HOOKS, &receiver.url()).await;
        let fifth = hooks(&pipeline, 1, &receiver.url_at("uncounted")).await;
        pipeline.wait_hooks(GOOD_HOOKS + 1).await;
        let publisher = &connect(&pipeline).await?;
        let send = |fields| publish(publisher, fields);
        load::fanned_out(clock, receiver, 200, GOOD_HOOKS, send).await?;
        let alone = good_hooks(clock, receiver, events, send).await?;
        println!(
            "  good hooks alone: {}; {}; paced: {}",
            alone.run, alone.latency, alone.paced
        );
        delete_hook(&pipeline, &fifth[0]).await?;
        pipeline.wait_hooks(GOOD_HOOKS).await;
        hooks(&pipeline, 1, &receiver.url_at("hang")).await;
        pipeline.wait_hooks(GOOD_HOOKS + 1).await;
        let with_hang = good_hooks(clock, receiver, events, send).await?;
        println!(
            "  next to a hanging hook: {}; {}; paced: {}",
            with_hang.run, with_hang.latency, with_hang.paced
        );
        Ok::<_, anyhow::Error>(Isolation { alone, with_hang })
    }
    .await;
    pipeline.stop().await;
    measured
}

async fn delete_hook(pipeline: &Pipeline, id: &str) -> Result<()> {
    let res = pipeline
        .http
        .delete(format!("http://{}/api/hooks/{id}", pipeline.router.addr))
        .bearer_auth(hookbus_tests::pipeline::ADMIN_TOKEN)
        .send()
        .await?;
    anyhow::ensure!(
        res.status().is_success(),
        "deleting hook {id}: {}",
        res.status()
    );
    Ok(())
}

async fn good_hooks<F, Fut>(
    clock: Clock,
    receiver: &Receiver,
    events: usize,
    send: F,
) -> Result<IsolationRun>
where
    F: Fn(Map<String, Value>) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let paced = load::paced_fanned_out(
        clock,
        receiver,
        ISOLATION_RATE,
        ISOLATION_SECS,
        GOOD_HOOKS,
        &send,
    )
    .await?;
    let run = load::fanned_out(clock, receiver, events, GOOD_HOOKS, &send).await?;
    let latency = LatencyRun::new(0, receiver.take_latencies(), run.per_sec())
        .ok_or_else(|| anyhow!("no latency sample"))?;
    Ok(IsolationRun {
        run,
        latency,
        paced,
    })
}

// ---------------------------------------------------------------------------------------
// Retry storm

pub struct Storm {
    pub run: Throughput,
    /// From the last publish's confirm to the last successful delivery.
    pub drain: Duration,
    pub failed_first: usize,
    pub schedule: Duration,
}

/// One hook on `/flaky`, `events` events published as fast as possible.
pub async fn storm(clock: Clock, receiver: &Receiver, events: usize) -> Result<Storm> {
    let pipeline = Pipeline::start_with("bench-storm", &STORM_SCHEDULE, 1).await;
    let measured = async {
        hooks(&pipeline, 1, &receiver.url_at("flaky")).await;
        pipeline.wait_hooks(1).await;
        let publisher = &connect(&pipeline).await?;
        let failed_before = receiver.flaky_failed();
        receiver.reset();
        let start = clock.now_ns();
        load::publish_all(clock, events, |fields| publish(publisher, fields)).await?;
        let published = clock.now_ns();
        let last = receiver.wait_for(events, ARRIVAL_TIMEOUT).await?;
        Ok::<_, anyhow::Error>(Storm {
            run: Throughput {
                messages: events,
                elapsed: Duration::from_nanos(last.saturating_sub(start)),
            },
            drain: Duration::from_nanos(last.saturating_sub(published)),
            failed_first: receiver.flaky_failed() - failed_before,
            schedule: STORM_SCHEDULE[0],
        })
    }
    .await;
    pipeline.stop().await;
    let storm = measured?;
    println!(
        "  {}; {} first attempts failed; drained {:.2} s after the last publish",
        storm.run,
        storm.failed_first,
        storm.drain.as_secs_f64()
    );
    Ok(storm)
}
