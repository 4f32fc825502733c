//! `bench backlog`: one deliverer started against a backlog in many hooks, as after an
//! outage of the deliverers: its peak resident memory, which `HOOKBUS_DELIVERER_PREFETCH`
//! bounds whatever the backlog, and how fast it drains it. The hooks are stored directly
//! (all subscribed to the published event, pointing at the bench's receiver); a router
//! process fans the events out into their queues with no deliverer running; then a
//! deliverer process starts, and its `VmRSS` is read every 50 ms until the receiver has
//! every delivery. The figures go into docs/BENCHMARKS.md by hand ("A backlog in many
//! hooks").

use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use hookbus_contracts::metric_names;
use hookbus_producer::Publisher;
use hookbus_tests::pipeline::{metric, AMQP_URL};

use crate::load::{self, Clock};
use crate::process::ServiceProcess;
use crate::receiver::Receiver;
use crate::scale::Configured;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Hooks with a backlog.
    #[arg(long, default_value_t = 2_000)]
    hooks: usize,
    /// Deliveries waiting in each hook's queue.
    #[arg(long, default_value_t = 200)]
    per_hook: usize,
    /// The deliverer's `HOOKBUS_DELIVERER_PREFETCH` (its default unless given).
    #[arg(long)]
    prefetch: Option<usize>,
}

/// How long the fan-out and the drain may take at most.
const LIMIT: Duration = Duration::from_secs(900);

pub async fn run(args: &Args) -> Result<()> {
    let clock = Clock::start();
    let receiver = Receiver::start(clock).await?;
    let mut configured = Configured::new("backlog")?;
    let url = receiver.url();
    configured
        .store_idle_as(args.hooks, |_, hook| {
            hook.event = None;
            hook.events = vec![hookbus_contracts::EventName::parse(crate::scenarios::EVENT)
                .expect("the bench's event is in the catalogue")];
            hook.config.url.clone_from(&url);
        })
        .await?;
    let measured = measure(args, clock, &receiver, &configured).await;
    configured.cleanup(true).await;
    measured
}

async fn measure(
    args: &Args,
    clock: Clock,
    receiver: &Receiver,
    configured: &Configured,
) -> Result<()> {
    let deliveries = args.hooks * args.per_hook;
    let router = configured.start("router").await?;
    configured
        .wait_for(&router, metric_names::HOOKS, args.hooks)
        .await?;
    let publisher = Publisher::connect(AMQP_URL, configured.prefix()).await?;
    let started = Instant::now();
    load::publish_all(clock, args.per_hook, |fields| {
        crate::scenarios::publish(&publisher, fields)
    })
    .await?;
    let published = metric_names::ROUTER_DELIVERIES_PUBLISHED;
    while metric(&configured.http, router.addr, published)
        .await
        .unwrap_or(0.0)
        < deliveries as f64
    {
        if started.elapsed() > LIMIT {
            return Err(anyhow!(
                "the router did not fan out {deliveries} deliveries"
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "  {deliveries} deliveries waiting in {} hooks after {:.1} s",
        args.hooks,
        started.elapsed().as_secs_f64()
    );
    router.stop().await;

    receiver.reset();
    let deliverer = match args.prefetch {
        Some(prefetch) => {
            ServiceProcess::start_with(
                "deliverer",
                configured.prefix(),
                &configured.http,
                &[("HOOKBUS_DELIVERER_PREFETCH", prefetch.to_string())],
            )
            .await?
        }
        None => configured.start("deliverer").await?,
    };
    let started = Instant::now();
    let mut peak = 0;
    let drained = loop {
        peak = peak.max(deliverer.rss_bytes().unwrap_or(0));
        if receiver.received() >= deliveries {
            break started.elapsed();
        }
        if started.elapsed() > LIMIT {
            return Err(anyhow!(
                "{} of {deliveries} deliveries arrived",
                receiver.received()
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    deliverer.stop().await;
    let mib = peak as f64 / 1048576.0;
    println!(
        "\n| hooks with a backlog | deliveries | prefetch | peak resident memory | drained in | deliveries/s |"
    );
    println!("|---|---|---|---|---|---|");
    println!(
        "| {} | {deliveries} | {} | {mib:.0} MiB | {:.1} s | {:.0} |",
        args.hooks,
        args.prefetch
            .map_or_else(|| "default (2048)".to_owned(), |p| p.to_string()),
        drained.as_secs_f64(),
        deliveries as f64 / drained.as_secs_f64()
    );
    Ok(())
}
