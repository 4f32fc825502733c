//! The deliverer's metrics, registered on a registry it owns (no globals). Label sets are
//! bounded: outcomes and result classes, never an event or hook id.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

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
    /// Hooks disabled because their endpoint answered 410.
    pub hooks_disabled: IntCounterVec,
    /// Delivery log records dropped because Redis could not keep up.
    pub logs_dropped: IntCounter,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let deliveries = IntCounterVec::new(
            Opts::new("hookbus_deliveries_total", "Deliveries settled, by outcome"),
            &["outcome"],
        )
        .expect("valid metric");
        let attempts = IntCounterVec::new(
            Opts::new(
                "hookbus_delivery_attempts_total",
                "HTTP attempts, by status class or failure",
            ),
            &["result"],
        )
        .expect("valid metric");
        let attempt_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "hookbus_delivery_attempt_duration_seconds",
                "Duration of one HTTP attempt",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
        )
        .expect("valid metric");
        let latency_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "hookbus_delivery_latency_seconds",
                "Event accepted to 2xx from the endpoint",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 300.0,
                3600.0, 86400.0,
            ]),
        )
        .expect("valid metric");
        let in_flight = IntGauge::new("hookbus_deliveries_in_flight", "Attempts under way")
            .expect("valid metric");
        let consumers = IntGauge::new("hookbus_deliverer_hook_consumers", "Hook queues consumed")
            .expect("valid metric");
        let hooks_disabled = IntCounterVec::new(
            Opts::new(
                "hookbus_hooks_disabled_total",
                "Hooks disabled by the deliverer, by reason",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let logs_dropped = IntCounter::new(
            "hookbus_delivery_logs_dropped_total",
            "Delivery log records dropped because Redis could not keep up",
        )
        .expect("valid metric");
        registry
            .register(Box::new(logs_dropped.clone()))
            .expect("unique metric");
        registry
            .register(Box::new(deliveries.clone()))
            .expect("unique metric");
        registry
            .register(Box::new(attempts.clone()))
            .expect("unique metric");
        registry
            .register(Box::new(attempt_seconds.clone()))
            .expect("unique metric");
        registry
            .register(Box::new(latency_seconds.clone()))
            .expect("unique metric");
        registry
            .register(Box::new(in_flight.clone()))
            .expect("unique metric");
        registry
            .register(Box::new(consumers.clone()))
            .expect("unique metric");
        registry
            .register(Box::new(hooks_disabled.clone()))
            .expect("unique metric");
        Metrics {
            registry,
            deliveries,
            attempts,
            attempt_seconds,
            latency_seconds,
            in_flight,
            consumers,
            hooks_disabled,
            logs_dropped,
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
