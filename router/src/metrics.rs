//! The router's metrics, registered on a registry it owns (no globals).

use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    /// Events consumed, by outcome: `routed`, `unmatched` (no hook wants it), `parked`
    /// (unreadable), `requeued` (a publish failed; retried).
    pub events: IntCounterVec,
    /// Deliveries per routed event.
    pub fanout: Histogram,
    /// Deliveries published and confirmed, by event.
    pub deliveries: IntCounterVec,
    /// Unix time the hook configuration cache was last loaded (age = time() - this).
    pub cache_loaded: IntGauge,
    /// Hooks in the configuration cache.
    pub hooks: IntGauge,
    /// Messages ready in the events queue and in the unreadable-events queue.
    pub queue_messages: IntGaugeVec,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let events = IntCounterVec::new(
            Opts::new(
                "hookbus_router_events_total",
                "Events consumed by the router, by outcome",
            ),
            &["outcome"],
        )
        .expect("valid metric");
        let fanout = Histogram::with_opts(
            HistogramOpts::new("hookbus_router_fanout", "Deliveries per routed event")
                .buckets(vec![1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 1000.0]),
        )
        .expect("valid metric");
        let deliveries = IntCounterVec::new(
            Opts::new(
                "hookbus_router_deliveries_published_total",
                "Deliveries confirmed by RabbitMQ",
            ),
            &["event"],
        )
        .expect("valid metric");
        let cache_loaded = IntGauge::new(
            "hookbus_hook_cache_loaded_timestamp_seconds",
            "Unix time the hook configuration was last confirmed current with Redis",
        )
        .expect("valid metric");
        let hooks = IntGauge::new("hookbus_hooks", "Hooks in the configuration cache")
            .expect("valid metric");
        let queue_messages = IntGaugeVec::new(
            Opts::new(
                "hookbus_queue_messages",
                "Messages ready in the events queues, by queue",
            ),
            &["queue"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(queue_messages.clone()))
            .expect("unique metric");
        registry
            .register(Box::new(events.clone()))
            .expect("unique metric");
        registry
            .register(Box::new(fanout.clone()))
            .expect("unique metric");
        registry
            .register(Box::new(deliveries.clone()))
            .expect("unique metric");
        registry
            .register(Box::new(cache_loaded.clone()))
            .expect("unique metric");
        registry
            .register(Box::new(hooks.clone()))
            .expect("unique metric");
        Metrics {
            registry,
            events,
            fanout,
            deliveries,
            cache_loaded,
            hooks,
            queue_messages,
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
