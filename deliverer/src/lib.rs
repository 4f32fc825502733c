//! hookbus deliverer: POSTs each delivery to its hook's endpoint, signed, and settles it.
//!
//! One message's path: [`consumers`] (consume a hook queue) → [`process`] → [`attempt`]
//! (prepare, sign, send) → [`outcome`] (classify, decide under the retry policy) →
//! [`settle`] (ack, or publish a retry or a dead letter, confirmed, then ack).

pub mod attempt;
pub mod consumers;
pub mod depths;
pub mod journal;
pub mod metrics;
pub mod outcome;
pub mod settle;

use std::sync::Arc;
use std::time::Duration;

use hookbus_contracts::config::{parse_duration, parse_schedule, CommonConfig, TargetConfig};
use hookbus_contracts::logs::{self, DeliveryLogs, LogPayload, LogRecord, LoggedResponse};
use hookbus_contracts::ops::{self, Readiness};
use hookbus_contracts::payload::now_ms;
use hookbus_contracts::store::{self, HookCache, HookStore, StoreError};
use hookbus_contracts::topology::Topology;
use hookbus_contracts::{Delivery, HookId};
use lapin::message::Delivery as AmqpMessage;
use lapin::Channel;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::attempt::{Prepared, Sent};
use crate::outcome::{AttemptResult, Decision, DisableCause, Outcome, RetryPolicy};

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
    /// Address of /healthz and /metrics (port 0 picks a free one).
    #[arg(
        long,
        env = "HOOKBUS_DELIVERER_LISTEN",
        default_value = "127.0.0.1:7803"
    )]
    pub listen: String,
    /// Waits before each retry; `1s,2s,4s` means at most four attempts.
    #[arg(long, env = "HOOKBUS_RETRY_SCHEDULE", default_value = outcome::DEFAULT_SCHEDULE, value_parser = parse_schedule)]
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
}

/// Everything a delivery needs, shared by all consumers of the process.
pub struct DeliverCtx {
    pub topology: Topology,
    pub cache: HookCache,
    pub store: HookStore,
    pub sender: attempt::Sender,
    pub policy: RetryPolicy,
    pub per_hook_in_flight: u16,
    pub in_flight: Semaphore,
    pub metrics: metrics::Metrics,
    pub journal: journal::Journal,
    pub pickups: depths::Pickups,
    pub per_hook_metrics: usize,
    pub auto_disable_after: Duration,
    pub drain_deadline: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("hook store: {0}")]
    Store(#[from] StoreError),
    #[error("serving HTTP: {0}")]
    Http(#[from] std::io::Error),
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
    let logs = DeliveryLogs::new(store.pool().clone(), config.common.redis_keys());
    let (journal, journal_writer) = journal::Journal::start(logs, metrics.logs_dropped.clone());
    let ctx = Arc::new(DeliverCtx {
        topology: config.common.topology(),
        cache: cache.clone(),
        store,
        sender: attempt::Sender::new(
            config.targets.policy(),
            config.targets.egress_proxy.as_deref(),
            config.attempt_timeout,
            config.max_response_bytes,
        ),
        policy: RetryPolicy::new(config.retry_schedule),
        per_hook_in_flight: config.hook_in_flight.max(1),
        in_flight: Semaphore::new(config.in_flight.max(1)),
        metrics: metrics.clone(),
        journal,
        pickups: depths::Pickups::default(),
        per_hook_metrics: config.per_hook_metrics,
        auto_disable_after: config.auto_disable_after,
        drain_deadline: config.drain_deadline,
    });
    let flags = ops::BrokerFlags::register(&readiness);
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
    Ok(())
}

/// How long a stopping deliverer waits for its last delivery logs to be written.
const JOURNAL_FLUSH: Duration = Duration::from_secs(10);

/// One message from `hook`'s queue: attempt it and settle it.
pub async fn process(ctx: &DeliverCtx, publish: &Channel, hook: &HookId, msg: AmqpMessage) {
    let _permit = ctx
        .in_flight
        .acquire()
        .await
        .expect("the semaphore is never closed");
    let delivery = match Delivery::decode(&msg.data) {
        Ok(d) if d.hook_id == *hook => d,
        // Sent to this endpoint it would be signed with the wrong hook's key.
        Ok(d) => {
            let reason = format!(
                "a delivery for hook {} on the queue of hook {hook}",
                d.hook_id
            );
            return settle::park_unreadable(ctx, publish, hook, msg, &reason).await;
        }
        Err(err) => {
            return settle::park_unreadable(
                ctx,
                publish,
                hook,
                msg,
                &format!("unreadable delivery: {err}"),
            )
            .await;
        }
    };
    let age = (now_ms() - delivery.event.accepted_at_ms).max(0) as u64;
    ctx.pickups.record(hook, Duration::from_millis(age));
    let span = tracing::info_span!("delivery", event_id = %delivery.event.id, hook_id = %hook, attempt = delivery.attempts + 1);
    async move {
        let (delivery, decision) = attempt(ctx, delivery).await;
        settle::settle(ctx, publish, msg, &delivery, decision).await;
    }
    .instrument(span)
    .await
}

/// Makes one attempt and decides what follows; returns the delivery updated with it.
async fn attempt(ctx: &DeliverCtx, mut delivery: Delivery) -> (Delivery, Decision) {
    let Some(hook) = ctx.cache.snapshot().get(&delivery.hook_id).cloned() else {
        let reason = "hook no longer exists".to_owned();
        return (
            delivery,
            Decision::DeadLetter {
                reason,
                disable: None,
            },
        );
    };
    let now = now_ms();
    let prepared = attempt::prepare(&delivery, &hook, now);
    ctx.metrics.in_flight.inc();
    let sent = ctx.sender.send(&prepared).await;
    ctx.metrics.in_flight.dec();
    ctx.metrics
        .attempts
        .with_label_values(&[sent.result.label()])
        .inc();
    ctx.metrics
        .attempt_seconds
        .observe(sent.duration.as_secs_f64());
    let outcome = sent.result.classify();
    delivery.attempts += 1;
    delivery.first_attempt_at_ms.get_or_insert(now);
    delivery.last_attempt_at_ms = Some(now);
    match &outcome {
        Outcome::Delivered => {
            let latency = (now_ms() - delivery.event.accepted_at_ms).max(0) as f64 / 1000.0;
            ctx.metrics.latency_seconds.observe(latency);
            tracing::debug!(status = sent.result.label(), "delivered");
        }
        Outcome::Retryable { reason, .. } | Outcome::Permanent { reason } => {
            tracing::info!(%reason, response = sent.response_body.as_deref().unwrap_or(""), "attempt failed");
            delivery.last_error = Some(reason.clone());
        }
        Outcome::Gone => delivery.last_error = Some("HTTP 410 Gone".into()),
    }
    ctx.journal
        .record(log_record(&delivery, &prepared, &sent, &outcome, now));
    let decision = match failing_too_long(ctx, &delivery.hook_id, &outcome, now).await {
        Some(reason) => Decision::DeadLetter {
            reason,
            disable: Some(DisableCause::FailingTooLong),
        },
        None => ctx.policy.decide(&outcome, delivery.attempts),
    };
    (delivery, decision)
}

/// After a failure: the auto-disable reason if the hook's endpoint has now failed, without
/// a success, for longer than the configured window. Redis trouble never disables a hook.
async fn failing_too_long(
    ctx: &DeliverCtx,
    hook: &HookId,
    outcome: &Outcome,
    now: i64,
) -> Option<String> {
    if *outcome == Outcome::Delivered {
        return None;
    }
    let window = ctx.auto_disable_after;
    let since = ctx.store.failing_since(hook, now, window * 2).await.ok()?;
    (now - since > window.as_millis() as i64).then(|| {
        format!(
            "failing for more than {}: hook disabled",
            humantime::format_duration(window)
        )
    })
}

/// The attempt as Logto logs it (`TriggerHook.<event>`), for `recent-logs`.
fn log_record(
    delivery: &Delivery,
    prepared: &Prepared,
    sent: &Sent,
    outcome: &Outcome,
    now: i64,
) -> LogRecord {
    let key = format!("TriggerHook.{}", delivery.event.name);
    let response = match (&sent.result, &sent.response_body) {
        (AttemptResult::Status { code, .. }, body) => Some(LoggedResponse {
            status_code: *code,
            body: logs::logged_response(body.as_deref().unwrap_or("")),
        }),
        (AttemptResult::Failed(_), _) => None,
    };
    LogRecord {
        id: uuid::Uuid::now_v7().to_string(),
        key: key.clone(),
        payload: LogPayload {
            key,
            result: if *outcome == Outcome::Delivered {
                "Success"
            } else {
                "Error"
            }
            .into(),
            hook_id: delivery.hook_id.clone(),
            hook_request: logs::HookRequest {
                body: logs::logged_body(&prepared.body),
            },
            response,
            error: delivery
                .last_error
                .clone()
                .filter(|_| *outcome != Outcome::Delivered),
            webhook_id: delivery.event.id.to_string(),
            attempt: delivery.attempts,
            duration_ms: sent.duration.as_millis() as u64,
        },
        created_at: now,
    }
}
