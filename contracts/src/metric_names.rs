//! Every metric name hookbus exports: a public interface (dashboards, alerts and users'
//! queries are written against them), so each is spelled once, here.

// The producer.
pub const EVENTS_INGESTED: &str = "hookbus_events_ingested_total";
pub const EVENTS_PUBLISHED: &str = "hookbus_events_published_total";
pub const INGEST_REJECTED: &str = "hookbus_ingest_rejected_total";
pub const INGEST_IDEMPOTENT_REPLAYS: &str = "hookbus_ingest_idempotent_replays_total";
pub const PUBLISH_DURATION: &str = "hookbus_publish_duration_seconds";

// The router.
pub const ROUTER_EVENTS: &str = "hookbus_router_events_total";
pub const ROUTER_FANOUT: &str = "hookbus_router_fanout";
pub const ROUTER_DELIVERIES_PUBLISHED: &str = "hookbus_router_deliveries_published_total";
pub const HOOK_CACHE_LOADED: &str = "hookbus_hook_cache_loaded_timestamp_seconds";
pub const HOOKS: &str = "hookbus_hooks";
pub const QUEUE_MESSAGES: &str = "hookbus_queue_messages";
pub const IDLE_QUEUES_DELETED: &str = "hookbus_idle_hook_queues_deleted_total";

// The deliverer.
pub const DELIVERIES: &str = "hookbus_deliveries_total";
pub const DELIVERY_ATTEMPTS: &str = "hookbus_delivery_attempts_total";
pub const ATTEMPT_DURATION: &str = "hookbus_delivery_attempt_duration_seconds";
pub const DELIVERY_LATENCY: &str = "hookbus_delivery_latency_seconds";
pub const DELIVERIES_IN_FLIGHT: &str = "hookbus_deliveries_in_flight";
pub const HOOK_CONSUMERS: &str = "hookbus_deliverer_hook_consumers";
pub const HOOKS_OWNED: &str = "hookbus_deliverer_hooks_owned";
pub const HOOKS_DISABLED: &str = "hookbus_hooks_disabled_total";
pub const DELIVERY_LOGS_DROPPED: &str = "hookbus_delivery_logs_dropped_total";
pub const HOOK_BACKLOG: &str = "hookbus_hook_backlog_messages";
pub const HOOK_OLDEST_MESSAGE_AGE: &str = "hookbus_hook_oldest_message_age_seconds";
pub const RETRY_TIER_MESSAGES: &str = "hookbus_retry_tier_messages";
pub const DEAD_LETTER_MESSAGES: &str = "hookbus_dead_letter_messages";

// Every process: spans that were not exported (the collector down or too slow).
pub const TRACE_SPANS_DROPPED: &str = "hookbus_trace_spans_dropped_total";

/// Every name above, for the checks that dashboards and alerts use only these.
pub const ALL: &[&str] = &[
    EVENTS_INGESTED,
    EVENTS_PUBLISHED,
    INGEST_REJECTED,
    INGEST_IDEMPOTENT_REPLAYS,
    PUBLISH_DURATION,
    ROUTER_EVENTS,
    ROUTER_FANOUT,
    ROUTER_DELIVERIES_PUBLISHED,
    HOOK_CACHE_LOADED,
    HOOKS,
    QUEUE_MESSAGES,
    IDLE_QUEUES_DELETED,
    DELIVERIES,
    DELIVERY_ATTEMPTS,
    ATTEMPT_DURATION,
    DELIVERY_LATENCY,
    DELIVERIES_IN_FLIGHT,
    HOOK_CONSUMERS,
    HOOKS_OWNED,
    HOOKS_DISABLED,
    DELIVERY_LOGS_DROPPED,
    HOOK_BACKLOG,
    HOOK_OLDEST_MESSAGE_AGE,
    RETRY_TIER_MESSAGES,
    DEAD_LETTER_MESSAGES,
    TRACE_SPANS_DROPPED,
];

/// The 0/1 gauge of a readiness condition, as every process exports it:
/// `hookbus_rabbitmq_connected`, `hookbus_redis_connected`, `hookbus_consuming`,
/// `hookbus_router_lease_valid`, `hookbus_hook_store_consistent`.
pub fn readiness_gauge(condition: &str) -> String {
    match condition {
        "consuming" => "hookbus_consuming".to_owned(),
        "lease" => "hookbus_router_lease_valid".to_owned(),
        "hook_store" => "hookbus_hook_store_consistent".to_owned(),
        other => format!("hookbus_{other}_connected"),
    }
}

/// The readiness conditions processes register (`/readyz` lists them by these names).
pub const READINESS_CONDITIONS: &[&str] =
    &["rabbitmq", "redis", "consuming", "lease", "hook_store"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_prometheus_conventions_and_are_unique() {
        let mut all: Vec<String> = ALL.iter().map(|n| (*n).to_owned()).collect();
        all.extend(READINESS_CONDITIONS.iter().map(|c| readiness_gauge(c)));
        for name in &all {
            assert!(name.starts_with("hookbus_"), "{name}");
            assert!(
                name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{name}"
            );
        }
        for name in [
            EVENTS_INGESTED,
            ROUTER_EVENTS,
            DELIVERIES,
            HOOKS_DISABLED,
            IDLE_QUEUES_DELETED,
            TRACE_SPANS_DROPPED,
        ] {
            assert!(name.ends_with("_total"), "a counter: {name}");
        }
        for name in [PUBLISH_DURATION, ATTEMPT_DURATION, DELIVERY_LATENCY] {
            assert!(
                name.ends_with("_seconds"),
                "a duration in base units: {name}"
            );
        }
        let count = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), count, "a name used twice");
    }
}
