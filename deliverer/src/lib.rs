//! hookbus deliverer: POSTs each delivery to its hook's endpoint, signed, and settles it.
//!
//! One message's path: [`consumers`] (consume a hook queue) → [`deliver`] (decode, one
//! attempt through `hookbus-send`: prepare, sign, send) → [`outcome`] (classify, decide
//! under the retry policy, pure) → [`settle`] (ack, or publish a retry or a dead letter,
//! confirmed, then ack). [`journal`] writes each attempt's log; [`depths`] exports backlogs.
//! Each attempt is a `hookbus.attempt` span in its event's trace (ARCHITECTURE.md, "Tracing").

pub mod consumers;
pub mod deliver;
pub mod depths;
pub mod journal;
pub mod membership;
pub mod metrics;
pub mod outcome;
pub mod settle;

use std::sync::Arc;
use std::time::Duration;

use hookbus_contracts::topology::Topology;
use hookbus_runtime::config::{
    parse_duration, parse_schedule, ActivityConfig, CommonConfig, TargetConfig,
};
use hookbus_runtime::health::Readiness;
use hookbus_runtime::logs::DeliveryLogs;
use hookbus_runtime::ops;
use hookbus_runtime::store::{self, HookCache, HookStore, StoreError};
use hookbus_runtime::telemetry::{Telemetry, TelemetryConfig, TelemetryError, Tracing};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::outcome::RetryPolicy;

#[derive(clap::Parser, Debug, Clone)]
#[command(
    name = "deliverer",
    about = "hookbus deliverer: signed POSTs to hook endpoints, with retries"
)]
pub struct Config {
    #[command(flatten)]
    pub common: CommonConfig,
    #[command(flatten)]
    pub targets: TargetConfig,
    #[command(flatten)]
    pub activity: ActivityConfig,
    /// Address of /healthz and /metrics (port 0 picks a free one).
    #[arg(
        long,
        env = "HOOKBUS_DELIVERER_LISTEN",
        default_value = "127.0.0.1:7803"
    )]
    pub listen: String,
    /// Waits before each retry; `1s,2s,4s` means at most four attempts.
    #[arg(long, env = "HOOKBUS_RETRY_SCHEDULE", default_value = outcome::DEFAULT_SCHEDULE, value_parser = parse_schedule)]
    // Spelled `std::vec::Vec` so that clap takes the whole list from one value (its parser
    // splits it), instead of treating a `Vec` field as a repeatable flag.
    pub retry_schedule: std::vec::Vec<Duration>,
    /// Time limit of one attempt (connect, send, response).
    #[arg(long, env = "HOOKBUS_ATTEMPT_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub attempt_timeout: Duration,
    /// Deliveries of one hook in flight in this process. 64 keeps one hook's throughput
    /// near the machine's limit against a fast endpoint (16 held a hook to about 5,000
    /// deliveries/s and added queueing at half of that, see docs/BENCHMARKS.md).
    #[arg(long, env = "HOOKBUS_HOOK_IN_FLIGHT", default_value_t = 64)]
    pub hook_in_flight: u16,
    /// Deliveries in flight in this process, all hooks together: 16 hooks whose endpoints
    /// hang take all of it.
    #[arg(long, env = "HOOKBUS_DELIVERER_IN_FLIGHT", default_value_t = 1024)]
    pub in_flight: usize,
    /// Deliveries this process holds from the broker at most, all hooks together (under
    /// way, or waiting for a slot): each hook's consumer gets an equal share, at least 1 and
    /// at most twice `HOOKBUS_HOOK_IN_FLIGHT`, so that a backlog in thousands of hooks
    /// cannot fill the process's memory.
    #[arg(long, env = "HOOKBUS_DELIVERER_PREFETCH", default_value_t = 2048)]
    pub prefetch: usize,
    /// How many of the live deliverers consume an idle hook's queue; 0: every deliverer
    /// consumes every hook.
    #[arg(long, env = "HOOKBUS_HOOK_OWNERS", default_value_t = hookbus_contracts::owners::DEFAULT_OWNERS)]
    pub hook_owners: usize,
    /// On shutdown, how long deliveries under way may take to finish.
    #[arg(long, env = "HOOKBUS_DRAIN_DEADLINE", default_value = "30s", value_parser = parse_duration)]
    pub drain_deadline: Duration,
    /// A hook whose endpoint has failed without a single success for this long is disabled
    /// and its backlog dead-lettered.
    #[arg(long, env = "HOOKBUS_AUTO_DISABLE_AFTER", default_value = "3days", value_parser = parse_duration)]
    pub auto_disable_after: Duration,
    /// Hooks that get per-hook queue gauges (bounds the metrics' label set).
    #[arg(long, env = "HOOKBUS_PER_HOOK_METRICS", default_value_t = 100)]
    pub per_hook_metrics: usize,
    /// Bytes of a response body read at most.
    #[arg(long, env = "HOOKBUS_MAX_RESPONSE_BYTES", default_value_t = 64 * 1024)]
    pub max_response_bytes: usize,
    /// Send each attempt's W3C `traceparent` to the endpoint, so that a receiver that traces
    /// joins the event's trace (off by default: it tells receivers about hookbus's traces).
    #[arg(long, env = "HOOKBUS_SEND_TRACEPARENT", default_value = "false",
          action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub send_traceparent: bool,
    #[command(flatten)]
    pub telemetry: TelemetryConfig,
}

/// Everything a delivery needs, shared by all consumers of the process.
pub struct DeliverCtx {
    pub topology: Topology,
    pub cache: HookCache,
    pub store: HookStore,
    pub sender: hookbus_send::Sender,
    pub policy: RetryPolicy,
    pub per_hook_in_flight: u16,
    pub in_flight: Semaphore,
    /// Messages held from the broker at most, all hooks together.
    pub prefetch: usize,
    pub membership: Arc<membership::Membership>,
    pub metrics: metrics::Metrics,
    pub journal: journal::Journal,
    pub pickups: depths::Pickups,
    pub per_hook_metrics: usize,
    pub auto_disable_after: Duration,
    pub drain_deadline: Duration,
    pub tracing: Tracing,
    pub send_traceparent: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("hook store: {0}")]
    Store(#[from] StoreError),
    #[error("serving HTTP: {0}")]
    Http(#[from] std::io::Error),
    #[error(transparent)]
    Telemetry(#[from] TelemetryError),
}

/// Runs the deliverer until `shutdown` fires; deliveries under way finish first.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let readiness = Readiness::default();
    let tasks = TaskTracker::new();
    let (store, cache) = store::start(
        &config.common.redis_url,
        config.common.redis_keys(),
        &readiness,
        &tasks,
        &shutdown,
    )?;
    let metrics = metrics::Metrics::new();
    tasks.spawn(hookbus_runtime::overview::announce(
        store.pool().clone(),
        config.common.redis_keys(),
        "deliverer",
        readiness.clone(),
        shutdown.clone(),
    ));
    let telemetry = Telemetry::start(&config.telemetry, "hookbus-deliverer", &metrics.registry)?;
    let logs = DeliveryLogs::new(store.pool().clone(), config.common.redis_keys());
    let (journal, journal_writer) = journal::Journal::start(logs, metrics.logs_dropped.clone());
    let activity = config.activity.idle().map(|idle| {
        hookbus_runtime::activity::HookActivity::new(
            store.pool().clone(),
            config.common.redis_keys(),
            idle,
        )
    });
    let membership = Arc::new(membership::Membership::new(config.hook_owners, activity));
    tasks.spawn(membership::keep(
        store.clone(),
        membership.clone(),
        shutdown.clone(),
    ));
    let ctx = Arc::new(DeliverCtx {
        topology: config.common.topology(),
        cache: cache.clone(),
        store,
        sender: hookbus_send::Sender::new(
            config.targets.policy(),
            config.targets.egress_proxy.as_deref(),
            config.attempt_timeout,
            config.max_response_bytes,
        ),
        policy: RetryPolicy::new(config.retry_schedule),
        per_hook_in_flight: config.hook_in_flight.max(1),
        in_flight: Semaphore::new(config.in_flight.max(1)),
        prefetch: config.prefetch.max(1),
        membership,
        metrics: metrics.clone(),
        journal,
        pickups: depths::Pickups::default(),
        per_hook_metrics: config.per_hook_metrics,
        auto_disable_after: config.auto_disable_after,
        drain_deadline: config.drain_deadline,
        tracing: telemetry.tracing.clone(),
        send_traceparent: config.send_traceparent,
    });
    let flags = hookbus_runtime::health::BrokerFlags::register(&readiness);
    let delivering = tokio::spawn({
        let (shutdown, amqp_url) = (shutdown.clone(), config.common.amqp_url.clone());
        async move {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = cache.loaded() => {}
            }
            consumers::supervise(amqp_url, ctx, flags, shutdown).await;
        }
    });
    let app = ops::routes(metrics.registry.clone(), readiness);
    tracing::info!(addr = %listener.local_addr()?, "deliverer listening");
    ops::serve_during(listener, app, delivering).await?;
    // The deliveries have settled and dropped their journal handles: what they recorded
    // while draining is written now.
    if tokio::time::timeout(JOURNAL_FLUSH, journal_writer)
        .await
        .is_err()
    {
        tracing::warn!("delivery logs of the last attempts not written in time");
    }
    tasks.close();
    tasks.wait().await;
    telemetry.shutdown().await;
    Ok(())
}

/// How long a stopping deliverer waits for its last delivery logs to be written.
const JOURNAL_FLUSH: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn the_command_line_parses_with_its_defaults_and_a_schedule() {
        let config = Config::try_parse_from(["deliverer"]).unwrap();
        assert_eq!(config.retry_schedule.len(), 10);
        let config = Config::try_parse_from(["deliverer", "--retry-schedule", "1s,2s"]).unwrap();
        assert_eq!(
            config.retry_schedule,
            [Duration::from_secs(1), Duration::from_secs(2)]
        );
    }
}
