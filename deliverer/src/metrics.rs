//! The deliverer's metrics, registered on a registry it owns (no globals). Label sets are
//! bounded: outcomes, result classes and tiers; per-hook gauges only for a bounded set of
//! hooks (see `depths`); never an event id.

use hookbus_contracts::metric_names as name;
use hookbus_runtime::metrics::Registrar;
use prometheus::{GaugeVec, Histogram, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Registry};

use crate::outcome::DisableCause;

#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    /// Deliveries settled, by `outcome`: `delivered`, `retried`, `dead_lettered`.
    pub deliveries: IntCounterVec,
    /// Attempts, by `result`: `2xx`..`5xx`, or `timeout`, `dns`, `tls`, `connect`,
    /// `blocked`, `other`.
    pub attempts: IntCounterVec,
    pub attempt_seconds: Histogram,
    /// Event accepted by the producer → endpoint answered 2xx.
    pub latency_seconds: Histogram,
    pub in_flight: IntGauge,
    /// Hook queues this process consumes.
    pub consumers: IntGauge,
    /// Enabled hooks this process owns: it consumes those of them that are active.
    pub hooks_owned: IntGauge,
    /// Hooks disabled by the deliverer, by reason (`gone`: the endpoint answered 410;
    /// `failing`: it failed for longer than the auto-disable window).
    pub hooks_disabled: IntCounterVec,
    /// Delivery log records dropped because Redis could not keep up.
    pub logs_dropped: IntCounter,
    /// Messages waiting in a hook's queue.
    pub backlog: IntGaugeVec,
    /// Estimated age of the oldest message in a hook's queue.
    pub oldest_age: GaugeVec,
    /// Retries waiting in each tier.
    pub retry_waiting: IntGaugeVec,
    /// Messages in a hook's dead letters.
    pub dead_letters: IntGaugeVec,
}

impl Metrics {
    pub fn new() -> Metrics {
        let r = Registrar::default();
        let attempt_buckets = [
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ];
        let latency_buckets = [
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 300.0, 3600.0,
            86400.0,
        ];
        let metrics = Metrics {
            deliveries: r.counters(
                name::DELIVERIES,
                "Deliveries settled, by outcome",
                "outcome",
            ),
            attempts: r.counters(
                name::DELIVERY_ATTEMPTS,
                "HTTP attempts, by status class or failure",
                "result",
            ),
            attempt_seconds: r.histogram(
                name::ATTEMPT_DURATION,
                "Duration of one HTTP attempt",
                &attempt_buckets,
            ),
            latency_seconds: r.histogram(
                name::DELIVERY_LATENCY,
                "Event accepted to 2xx from the endpoint",
                &latency_buckets,
            ),
            in_flight: r.gauge(name::DELIVERIES_IN_FLIGHT, "Attempts under way"),
            consumers: r.gauge(name::HOOK_CONSUMERS, "Hook queues consumed"),
            hooks_owned: r.gauge(
                name::HOOKS_OWNED,
                "Enabled hooks this deliverer owns (it consumes the active ones)",
            ),
            hooks_disabled: r.counters(
                name::HOOKS_DISABLED,
                "Hooks disabled by the deliverer, by reason",
                "reason",
            ),
            logs_dropped: r.counter(
                name::DELIVERY_LOGS_DROPPED,
                "Delivery log records dropped (Redis too slow)",
            ),
            backlog: r.gauges(
                name::HOOK_BACKLOG,
                "Messages waiting in a hook's queue",
                "hook_id",
            ),
            oldest_age: r.float_gauges(
                name::HOOK_OLDEST_MESSAGE_AGE,
                "Estimated age of a hook queue's oldest message",
                "hook_id",
            ),
            retry_waiting: r.gauges(
                name::RETRY_TIER_MESSAGES,
                "Retries waiting in a retry tier",
                "tier",
            ),
            dead_letters: r.gauges(
                name::DEAD_LETTER_MESSAGES,
                "Messages in a hook's dead letters",
                "hook_id",
            ),
            registry: r.registry(),
        };
        // Every reason at zero from the start, so that dashboards show 0 rather than no
        // data, and `increase()` in an alert sees the first disable.
        for cause in DisableCause::ALL {
            metrics.hooks_disabled.with_label_values(&[cause.label()]);
        }
        metrics
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
