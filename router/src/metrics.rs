//! The router's metrics, registered on a registry it owns (no globals).

use hookbus_contracts::metric_names as name;
use hookbus_runtime::metrics::Registrar;
use prometheus::{Histogram, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Registry};

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
    /// Queues of idle hooks this router deleted.
    pub idle_queues_deleted: IntCounter,
}

impl Metrics {
    pub fn new() -> Metrics {
        let r = Registrar::default();
        Metrics {
            queue_messages: r.gauges(
                name::QUEUE_MESSAGES,
                "Messages ready in the events queues, by queue",
                "queue",
            ),
            events: r.counters(
                name::ROUTER_EVENTS,
                "Events consumed by the router, by outcome",
                "outcome",
            ),
            fanout: r.histogram(
                name::ROUTER_FANOUT,
                "Deliveries per routed event",
                &[1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 1000.0],
            ),
            deliveries: r.counters(
                name::ROUTER_DELIVERIES_PUBLISHED,
                "Deliveries confirmed by RabbitMQ",
                "event",
            ),
            cache_loaded: r.gauge(
                name::HOOK_CACHE_LOADED,
                "Unix time the hook configuration was last confirmed current with Redis",
            ),
            hooks: r.gauge(name::HOOKS, "Hooks in the configuration cache"),
            idle_queues_deleted: r.counter(
                name::IDLE_QUEUES_DELETED,
                "Queues of idle hooks deleted (empty and unconsumed; declared again at the next event)",
            ),
            registry: r.registry(),
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
