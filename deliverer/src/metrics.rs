//! The deliverer's metrics, registered on a registry it owns (no globals). Label sets are
//! bounded: outcomes, result classes and tiers; per-hook gauges only for a bounded set of
//! hooks (see `depths`); never an event id.

use prometheus::core::Collector;
use prometheus::{
    GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

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

fn register<C: Collector + Clone + 'static>(registry: &Registry, collector: C) -> C {
    registry
        .register(Box::new(collector.clone()))
        .expect("unique metric");
    collector
}

fn histogram(name: &str, help: &str, buckets: &[f64]) -> Histogram {
    Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))
        .expect("valid metric")
}

impl Metrics {
    pub fn new() -> Metrics {
        let r = Registry::new();
        let counters = |name: &str, help: &str, label: &str| {
            register(
                &r,
                IntCounterVec::new(Opts::new(name, help), &[label]).expect("valid metric"),
            )
        };
        let gauges = |name: &str, help: &str, label: &str| {
            register(
                &r,
                IntGaugeVec::new(Opts::new(name, help), &[label]).expect("valid metric"),
            )
        };
        let gauge =
            |name: &str, help: &str| register(&r, IntGauge::new(name, help).expect("valid metric"));
        let attempt_buckets = [
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ];
        let latency_buckets = [
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 300.0, 3600.0,
            86400.0,
        ];
        let metrics = Metrics {
            deliveries: counters(
                "hookbus_deliveries_total",
                "Deliveries settled, by outcome",
                "outcome",
            ),
            attempts: counters(
                "hookbus_delivery_attempts_total",
                "HTTP attempts, by status class or failure",
                "result",
            ),
            attempt_seconds: register(
                &r,
                histogram(
                    "hookbus_delivery_attempt_duration_seconds",
                    "Duration of one HTTP attempt",
                    &attempt_buckets,
                ),
            ),
            latency_seconds: register(
                &r,
                histogram(
                    "hookbus_delivery_latency_seconds",
                    "Event accepted to 2xx from the endpoint",
                    &latency_buckets,
                ),
            ),
            in_flight: gauge("hookbus_deliveries_in_flight", "Attempts under way"),
            consumers: gauge("hookbus_deliverer_hook_consumers", "Hook queues consumed"),
            hooks_disabled: counters(
                "hookbus_hooks_disabled_total",
                "Hooks disabled by the deliverer, by reason",
                "reason",
            ),
            logs_dropped: register(
                &r,
                IntCounter::new(
                    "hookbus_delivery_logs_dropped_total",
                    "Delivery log records dropped (Redis too slow)",
                )
                .expect("valid metric"),
            ),
            backlog: gauges(
                "hookbus_hook_backlog_messages",
                "Messages waiting in a hook's queue",
                "hook_id",
            ),
            oldest_age: register(
                &r,
                GaugeVec::new(
                    Opts::new(
                        "hookbus_hook_oldest_message_age_seconds",
                        "Estimated age of a hook queue's oldest message",
                    ),
                    &["hook_id"],
                )
                .expect("valid metric"),
            ),
            retry_waiting: gauges(
                "hookbus_retry_tier_messages",
                "Retries waiting in a retry tier",
                "tier",
            ),
            dead_letters: gauges(
                "hookbus_dead_letter_messages",
                "Messages in a hook's dead letters",
                "hook_id",
            ),
            registry: r,
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
