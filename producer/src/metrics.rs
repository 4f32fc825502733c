//! The producer's metrics, registered on a registry it owns (no globals).

use hookbus_contracts::metric_names as name;
use hookbus_runtime::metrics::Registrar;
use prometheus::{Histogram, IntCounter, IntCounterVec, Registry};

#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    /// Events accepted from a caller, by event name.
    pub ingested: IntCounterVec,
    /// Events confirmed by RabbitMQ, by event name.
    pub published: IntCounterVec,
    /// Requests refused, by reason (`malformed`, `unknown_event`, `too_large`, `unauthorized`,
    /// `broker_unavailable`, `broker_blocked`, `publish_timeout`, `idempotency_in_progress`,
    /// `idempotency_key_reused`, `idempotency_unavailable`).
    pub rejected: IntCounterVec,
    /// Requests answered again from their `Idempotency-Key`, publishing nothing.
    pub replayed: IntCounter,
    /// Time from request to broker confirm.
    pub publish_seconds: Histogram,
}

impl Metrics {
    pub fn new() -> Metrics {
        let r = Registrar::default();
        Metrics {
            ingested: r.counters(
                name::EVENTS_INGESTED,
                "Events accepted by the ingest API",
                "event",
            ),
            published: r.counters(
                name::EVENTS_PUBLISHED,
                "Events confirmed by RabbitMQ",
                "event",
            ),
            rejected: r.counters(
                name::INGEST_REJECTED,
                "Ingest requests refused, by reason",
                "reason",
            ),
            replayed: r.counter(
                name::INGEST_IDEMPOTENT_REPLAYS,
                "Ingest requests answered again from their Idempotency-Key",
            ),
            publish_seconds: r.histogram(
                name::PUBLISH_DURATION,
                "Ingest request to broker confirm",
                &[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
                ],
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
