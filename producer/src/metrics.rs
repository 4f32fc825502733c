//! The producer's metrics, registered on a registry it owns (no globals).

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, Opts, Registry};

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
        let registry = Registry::new();
        let ingested = IntCounterVec::new(
            Opts::new(
                "hookbus_events_ingested_total",
                "Events accepted by the ingest API",
            ),
            &["event"],
        )
        .expect("valid metric");
        let published = IntCounterVec::new(
            Opts::new(
                "hookbus_events_published_total",
                "Events confirmed by RabbitMQ",
            ),
            &["event"],
        )
        .expect("valid metric");
        let rejected = IntCounterVec::new(
            Opts::new(
                "hookbus_ingest_rejected_total",
                "Ingest requests refused, by reason",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let replayed = IntCounter::new(
            "hookbus_ingest_idempotent_replays_total",
            "Ingest requests answered again from their Idempotency-Key",
        )
        .expect("valid metric");
        let publish_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "hookbus_publish_duration_seconds",
                "Ingest request to broker confirm",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
            ]),
        )
        .expect("valid metric");
        for c in [&ingested, &published, &rejected] {
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
        }
        registry
            .register(Box::new(replayed.clone()))
            .expect("unique metric");
        registry
            .register(Box::new(publish_seconds.clone()))
            .expect("unique metric");
        Metrics {
            registry,
            ingested,
            published,
            rejected,
            replayed,
            publish_seconds,
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
