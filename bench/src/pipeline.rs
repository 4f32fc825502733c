//! hookbus end to end with one hook: producer, router and one deliverer started in-process
//! by the test harness under a prefix of their own, events published with the Rust SDK
//! (and, for throughput, through the HTTP ingest API), delivered to the bench receiver.

use anyhow::{ensure, Result};
use hookbus_contracts::EventName;
use hookbus_producer::Publisher;
use hookbus_tests::pipeline::AMQP_URL;
use hookbus_tests::Pipeline;
use serde_json::Value;

use crate::load::{self, Clock, PathFigures, Plan, Throughput};
use crate::receiver::Receiver;

/// The one event the hook subscribes to, and every published event is.
const EVENT: &str = "PostSignIn";

pub struct HookbusFigures {
    /// Published with `Publisher::publish_event`.
    pub sdk: PathFigures,
    /// Published with `POST /api/events`.
    pub ingest: Throughput,
}

/// Measures hookbus; `Pipeline::stop` deletes its queues and Redis keys whatever happens.
pub async fn run(clock: Clock, plan: &Plan) -> Result<HookbusFigures> {
    let receiver = Receiver::start(clock).await?;
    let pipeline = Pipeline::start("bench").await;
    let figures = measure(clock, plan, &pipeline, &receiver).await;
    pipeline.stop().await;
    figures
}

async fn measure(
    clock: Clock,
    plan: &Plan,
    pipeline: &Pipeline,
    receiver: &Receiver,
) -> Result<HookbusFigures> {
    pipeline.create_hook(&[EVENT], &receiver.url()).await;
    pipeline.wait_hooks(1).await;
    let name = EventName::parse(EVENT)?;
    let publisher = &Publisher::connect(AMQP_URL, &pipeline.prefix).await?;
    println!("  (Rust SDK)");
    let sdk = load::measure(clock, receiver, plan, move |fields| async move {
        publisher.publish_event(name, fields).await?;
        Ok(())
    })
    .await?;
    let ingest = load::saturated(
        clock,
        receiver,
        plan.ingest_events,
        |mut fields| async move {
            fields.insert("event".into(), EVENT.into());
            let (status, body) = pipeline.ingest(Value::Object(fields)).await;
            ensure!(status == 202, "ingest answered {status}: {body}");
            Ok(())
        },
    )
    .await?;
    println!(
        "  (HTTP ingest) saturated: {} events in {:.2} s = {:.0} events/s",
        ingest.messages,
        ingest.elapsed.as_secs_f64(),
        ingest.per_sec()
    );
    Ok(HookbusFigures { sdk, ingest })
}
