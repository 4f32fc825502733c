//! hookbus end to end with one hook: producer, router and one deliverer started in-process
//! by the test harness under a prefix of their own, events published with the Rust SDK
//! (and, for throughput, through the HTTP ingest API), delivered to the bench receiver.
//!
//! One hook means the deliverer's per-hook limit (`HOOKBUS_HOOK_IN_FLIGHT`, 64 in the
//! harness as by default) caps the concurrency of the last hop; a second pipeline with the
//! bare deliverer's concurrency measures what that limit costs.

use std::time::Duration;

use anyhow::{ensure, Result};
use hookbus_contracts::EventName;
use hookbus_producer::Publisher;
use hookbus_tests::pipeline::{self as harness, AMQP_URL};
use hookbus_tests::Pipeline;
use serde_json::{Map, Value};

use crate::amqp::PREFETCH;
use crate::figures::{repeat, Runs};
use crate::load::{self, Clock, PathFigures, Plan};
use crate::receiver::Receiver;

/// The one event the hook subscribes to, and every published event is.
const EVENT: &str = "PostSignIn";

pub struct HookbusFigures {
    /// Published with `Publisher::publish_event`.
    pub sdk: PathFigures,
    /// Published with `POST /api/events`.
    pub ingest: Runs,
    /// Rust SDK, saturated, with a deliverer holding `PREFETCH` deliveries of the hook.
    pub wide: Runs,
}

/// Measures hookbus; `Pipeline::stop` deletes its queues and Redis keys whatever happens.
pub async fn run(clock: Clock, plan: &Plan) -> Result<HookbusFigures> {
    let receiver = Receiver::start(clock).await?;
    let pipeline = Pipeline::start("bench").await;
    let measured = measure(clock, plan, &pipeline, &receiver).await;
    pipeline.stop().await;
    let (sdk, ingest) = measured?;

    println!("  (Rust SDK, {PREFETCH} deliveries of the hook in flight instead of 64)");
    let schedule = [Duration::from_millis(300), Duration::from_millis(600)];
    let pipeline = start_limited("bench-wide", &schedule, 1, PREFETCH).await;
    let wide = measure_wide(clock, plan, &pipeline, &receiver).await;
    pipeline.stop().await;
    Ok(HookbusFigures {
        sdk,
        ingest,
        wide: wide?,
    })
}

/// hookbus's one-hook saturation (events per second, Rust SDK), from one saturated run on a
/// pipeline of its own: the paced runs' rates are shares of it, so that "10, 50 and 90 % of
/// saturation" hold on whatever machine the benchmark runs.
pub async fn saturation(clock: Clock, plan: &Plan) -> Result<f64> {
    let receiver = Receiver::start(clock).await?;
    let pipeline = Pipeline::start("bench-calibrate").await;
    let measured = async {
        let publisher = &subscribe(&pipeline, &receiver).await?;
        let send = |fields| publish(publisher, fields);
        load::saturated(clock, &receiver, plan.warmup, send).await?;
        load::saturated(clock, &receiver, plan.events, send).await
    }
    .await;
    pipeline.stop().await;
    let run = measured?;
    println!(
        "  saturated: {} messages at {:.0} msg/s",
        run.messages,
        run.per_sec()
    );
    Ok(run.per_sec())
}

async fn measure(
    clock: Clock,
    plan: &Plan,
    pipeline: &Pipeline,
    receiver: &Receiver,
) -> Result<(PathFigures, Runs)> {
    let publisher = &subscribe(pipeline, receiver).await?;
    println!("  (Rust SDK)");
    let sdk = load::measure(clock, receiver, plan, |fields| publish(publisher, fields)).await?;
    let ingest = repeat("HTTP ingest, saturated", plan.repeats, || {
        load::saturated(clock, receiver, plan.ingest_events, |fields| {
            ingest(pipeline, fields)
        })
    })
    .await?;
    Ok((sdk, ingest))
}

async fn measure_wide(
    clock: Clock,
    plan: &Plan,
    pipeline: &Pipeline,
    receiver: &Receiver,
) -> Result<Runs> {
    let publisher = &subscribe(pipeline, receiver).await?;
    let send = |fields| publish(publisher, fields);
    load::saturated(clock, receiver, plan.warmup, send).await?;
    repeat("saturated", plan.repeats, || {
        load::saturated(clock, receiver, plan.events, send)
    })
    .await
}

/// Creates the hook, waits until it is routed and consumed, and connects a publisher.
pub async fn subscribe(pipeline: &Pipeline, receiver: &Receiver) -> Result<Publisher> {
    pipeline.create_hook(&[EVENT], &receiver.url()).await;
    pipeline.wait_hooks(1).await;
    Ok(Publisher::connect(AMQP_URL, &pipeline.prefix).await?)
}

pub async fn publish(publisher: &Publisher, fields: Map<String, Value>) -> Result<()> {
    publisher
        .publish_event(EventName::parse(EVENT)?, fields)
        .await?;
    Ok(())
}

pub async fn ingest(pipeline: &Pipeline, mut fields: Map<String, Value>) -> Result<()> {
    fields.insert("event".into(), EVENT.into());
    let (status, body) = pipeline.ingest(Value::Object(fields)).await;
    ensure!(status == 202, "ingest answered {status}: {body}");
    Ok(())
}

/// The harness's pipeline with `deliverers` deliverers, each holding up to `hook_in_flight`
/// deliveries of one hook at once.
pub async fn start_limited(
    test: &str,
    schedule: &[Duration],
    deliverers: usize,
    hook_in_flight: u16,
) -> Pipeline {
    let mut pipeline = Pipeline::start_with(test, schedule, 0).await;
    for _ in 0..deliverers {
        let mut config = harness::deliverer_config(&pipeline.prefix, schedule);
        config.hook_in_flight = hook_in_flight;
        let deliverer = harness::start_deliverer(config).await;
        pipeline.wait_ready(deliverer.addr).await;
        pipeline.deliverers.push(deliverer);
    }
    pipeline
}
