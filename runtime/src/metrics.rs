//! The one way a service registers its metrics: on a registry it owns (no globals), each
//! metric created and registered in one call, so a service's `metrics.rs` is a list of
//! names and helps.
//!
//! A name or label that is not valid, or registered twice, is a programming error found by
//! the first test that builds the metrics: it panics.

use prometheus::core::Collector;
use prometheus::{
    GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

/// Creates metrics and registers them on one registry.
#[derive(Default)]
pub struct Registrar {
    registry: Registry,
}

impl Registrar {
    /// Registers on a registry made elsewhere: for the metrics of shared plumbing (traces'
    /// dropped spans) beside a service's own.
    pub fn on(registry: Registry) -> Registrar {
        Registrar { registry }
    }

    pub fn counter(&self, name: &str, help: &str) -> IntCounter {
        self.register(IntCounter::new(name, help))
    }

    pub fn counters(&self, name: &str, help: &str, label: &str) -> IntCounterVec {
        self.register(IntCounterVec::new(Opts::new(name, help), &[label]))
    }

    pub fn gauge(&self, name: &str, help: &str) -> IntGauge {
        self.register(IntGauge::new(name, help))
    }

    pub fn gauges(&self, name: &str, help: &str, label: &str) -> IntGaugeVec {
        self.register(IntGaugeVec::new(Opts::new(name, help), &[label]))
    }

    /// Gauges of fractional values (ages in seconds).
    pub fn float_gauges(&self, name: &str, help: &str, label: &str) -> GaugeVec {
        self.register(GaugeVec::new(Opts::new(name, help), &[label]))
    }

    pub fn histogram(&self, name: &str, help: &str, buckets: &[f64]) -> Histogram {
        self.register(Histogram::with_opts(
            HistogramOpts::new(name, help).buckets(buckets.to_vec()),
        ))
    }

    /// The registry `/metrics` serves.
    pub fn registry(&self) -> Registry {
        self.registry.clone()
    }

    fn register<C: Collector + Clone + 'static>(&self, made: prometheus::Result<C>) -> C {
        let collector = made.expect("a valid metric");
        self.registry
            .register(Box::new(collector.clone()))
            .expect("a metric registered once");
        collector
    }
}
