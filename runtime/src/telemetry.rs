//! Traces of each event's life, exported over OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set
//! and off (no span recorded, nothing exported) when it is not. ARCHITECTURE.md, "Tracing",
//! names the spans and how their context travels.
//!
//! Each service builds its own tracer provider from its configuration and hands the tracer
//! down ([`Tracing`]); no global provider is installed, so that pipelines started side by side
//! in one test process export to their own collectors, and nothing reads the environment
//! after startup.
//!
//! Export never slows or fails a delivery: a finished span is put on a bounded queue without
//! waiting ([`Exporting`]), one task on a thread of its own ([`EXPORT_THREAD`]) encodes and
//! sends batches from it, and a span that finds the queue
//! full, or whose batch the collector did not take, is dropped and counted in
//! `hookbus_trace_spans_dropped_total` (the SDK's own batch processor neither counts its drops
//! where a metric can read them nor runs the async HTTP client on the service's runtime).

use std::time::Duration;

use hookbus_contracts::metric_names;
use opentelemetry::trace::{Span as _, Status, TraceContextExt, Tracer as _};
use opentelemetry::Context;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    Sampler, SdkTracer, SdkTracerProvider, Span, SpanData, SpanExporter, SpanProcessor,
};
use opentelemetry_sdk::Resource;
use prometheus::IntCounterVec;
use tokio::sync::{mpsc, oneshot};

pub use opentelemetry::trace::SpanKind;
pub use opentelemetry::KeyValue;

use crate::metrics::Registrar;
use crate::trace_context::TraceParent;

// The attributes operators search by (never a payload, never a signing key).
pub const EVENT_NAME: &str = "hookbus.event.name";
pub const EVENT_ID: &str = "hookbus.event.id";
pub const HOOK_ID: &str = "hookbus.hook.id";
pub const ATTEMPT: &str = "hookbus.attempt";
/// `2xx`, `3xx`, `4xx`, `5xx`, or how the attempt failed without a status (`timeout`...).
pub const STATUS_CLASS: &str = "hookbus.status_class";
pub const STATUS_CODE: &str = "http.response.status_code";
/// How a step ended, as the services' metrics label it (`routed`, `retried`...).
pub const OUTCOME: &str = "hookbus.outcome";

/// The attributes of a span about `event`.
pub fn event_attributes(event: &hookbus_contracts::Event) -> Vec<KeyValue> {
    vec![
        KeyValue::new(EVENT_NAME, event.name.as_str()),
        KeyValue::new(EVENT_ID, event.id.to_string()),
    ]
}

/// The OpenTelemetry settings, by their standard variables.
#[derive(clap::Args, Clone, Debug)]
pub struct TelemetryConfig {
    /// OTLP collector base URL (`/v1/traces` is appended); unset, tracing is off.
    #[arg(long = "otlp-endpoint", env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub endpoint: Option<String>,
    /// OTLP traces URL, taken as is; overrides the base URL.
    #[arg(
        long = "otlp-traces-endpoint",
        env = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    )]
    pub traces_endpoint: Option<String>,
    /// OTLP protocol: `http/protobuf` (the only one built in; a collector takes it on 4318).
    #[arg(long = "otlp-protocol", env = "OTEL_EXPORTER_OTLP_PROTOCOL",
          default_value = "http/protobuf", value_parser = parse_protocol)]
    pub protocol: String,
    /// Service name of the spans (default: the process's role, `hookbus-router`...).
    #[arg(long = "otel-service-name", env = "OTEL_SERVICE_NAME")]
    pub service_name: Option<String>,
    /// `always_on`, `always_off`, `traceidratio`, or `parentbased_` one of them.
    #[arg(long = "traces-sampler", env = "OTEL_TRACES_SAMPLER",
          default_value = "parentbased_always_on", value_parser = parse_sampler)]
    pub sampler: String,
    /// The ratio of `traceidratio` samplers, 0 to 1.
    #[arg(
        long = "traces-sampler-arg",
        env = "OTEL_TRACES_SAMPLER_ARG",
        default_value_t = 1.0
    )]
    pub sampler_arg: f64,
    /// Finished spans waiting for export at most; past it they are dropped and counted.
    #[arg(
        long = "trace-queue",
        env = "HOOKBUS_TRACE_QUEUE",
        default_value_t = 2048
    )]
    pub queue: usize,
}

impl Default for TelemetryConfig {
    /// Off: what tests and embedders get unless they name a collector.
    fn default() -> TelemetryConfig {
        TelemetryConfig {
            endpoint: None,
            traces_endpoint: None,
            protocol: "http/protobuf".into(),
            service_name: None,
            sampler: "parentbased_always_on".into(),
            sampler_arg: 1.0,
            queue: 2048,
        }
    }
}

impl TelemetryConfig {
    /// Exporting to the collector at `endpoint` (a base URL), sampling every trace.
    pub fn exporting_to(endpoint: &str) -> TelemetryConfig {
        TelemetryConfig {
            endpoint: Some(endpoint.to_owned()),
            ..TelemetryConfig::default()
        }
    }

    /// Where spans go, or `None` when tracing is off.
    fn traces_url(&self) -> Option<String> {
        let given = |s: &Option<String>| s.clone().filter(|s| !s.trim().is_empty());
        given(&self.traces_endpoint).or_else(|| {
            given(&self.endpoint).map(|base| format!("{}/v1/traces", base.trim_end_matches('/')))
        })
    }

    fn sampler(&self) -> Sampler {
        let ratio = self.sampler_arg.clamp(0.0, 1.0);
        let root = |name: &str| match name {
            "always_off" => Sampler::AlwaysOff,
            "traceidratio" => Sampler::TraceIdRatioBased(ratio),
            _ => Sampler::AlwaysOn,
        };
        match self.sampler.strip_prefix("parentbased_") {
            Some(root_name) => Sampler::ParentBased(Box::new(root(root_name))),
            None => root(&self.sampler),
        }
    }
}

fn parse_protocol(s: &str) -> Result<String, String> {
    match s {
        "http/protobuf" => Ok(s.to_owned()),
        _ => Err(format!(
            "`{s}`: hookbus exports traces over `http/protobuf` only (a collector takes it on port 4318)"
        )),
    }
}

fn parse_sampler(s: &str) -> Result<String, String> {
    let root = s.strip_prefix("parentbased_").unwrap_or(s);
    match root {
        "always_on" | "always_off" | "traceidratio" => Ok(s.to_owned()),
        _ => Err(format!(
            "`{s}` is not a sampler: always_on, always_off, traceidratio, or parentbased_ one of them"
        )),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("the OTLP exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    #[error("the OTLP export thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// The name of the thread each exporting process sends its spans from.
pub const EXPORT_THREAD: &str = "hookbus-otlp";

/// A batch is sent when it has this many spans, or [`EXPORT_INTERVAL`] after its first.
const MAX_BATCH: usize = 512;
const EXPORT_INTERVAL: Duration = Duration::from_secs(1);
/// How long one export may take; past it its spans are dropped.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a stopping service waits for its last spans to be sent.
const FLUSH_LIMIT: Duration = Duration::from_secs(5);

/// A service's tracing: the [`Tracing`] handle its steps start spans on, and the export
/// task, which [`Telemetry::shutdown`] lets send what is queued.
pub struct Telemetry {
    pub tracing: Tracing,
    exporting: Option<(
        SdkTracerProvider,
        mpsc::Sender<Flush>,
        oneshot::Receiver<()>,
    )>,
}

/// Asks the export task to send what is queued and stop.
struct Flush;

impl Telemetry {
    /// Starts exporting if the configuration names a collector, as `service` (the span's
    /// service name unless `OTEL_SERVICE_NAME` gives one). The dropped-spans counter is
    /// registered either way, so dashboards find it at 0.
    pub fn start(
        config: &TelemetryConfig,
        service: &str,
        registry: &prometheus::Registry,
    ) -> Result<Telemetry, TelemetryError> {
        let dropped = Registrar::on(registry.clone()).counters(
            metric_names::TRACE_SPANS_DROPPED,
            "Finished spans not exported, by reason (queue_full, export_failed)",
            "reason",
        );
        let Some(url) = config.traces_url() else {
            return Ok(Telemetry {
                tracing: Tracing::off(),
                exporting: None,
            });
        };
        let mut exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(reqwest::Client::new())
            .with_endpoint(url.clone())
            .with_timeout(EXPORT_TIMEOUT)
            .build()?;
        let name = config
            .service_name
            .clone()
            .unwrap_or_else(|| service.into());
        let resource = Resource::builder_empty().with_service_name(name).build();
        exporter.set_resource(&resource);
        let (queue, spans) = mpsc::channel(config.queue.max(1));
        let (flush, flushes) = mpsc::channel(1);
        let (done, finished) = oneshot::channel();
        // A thread of its own: encoding a batch takes milliseconds of CPU, which on the
        // service's runtime would hold up the deliveries of the worker it ran on.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let task = export(spans, flushes, exporter, dropped.clone());
        std::thread::Builder::new()
            .name(EXPORT_THREAD.into())
            .spawn(move || {
                runtime.block_on(task);
                let _ = done.send(());
            })?;
        let provider = SdkTracerProvider::builder()
            .with_resource(resource)
            .with_sampler(config.sampler())
            .with_span_processor(Exporting { queue, dropped })
            .build();
        tracing::info!(%url, sampler = %config.sampler, "exporting traces over OTLP");
        let tracer = opentelemetry::trace::TracerProvider::tracer(&provider, "hookbus");
        Ok(Telemetry {
            tracing: Tracing {
                tracer: Some(tracer),
            },
            exporting: Some((provider, flush, finished)),
        })
    }

    /// Sends the spans still queued (within [`FLUSH_LIMIT`]) and stops exporting.
    pub async fn shutdown(self) {
        let Some((provider, flush, finished)) = self.exporting else {
            return;
        };
        let _ = flush.send(Flush).await;
        if tokio::time::timeout(FLUSH_LIMIT, finished).await.is_err() {
            tracing::warn!("the last spans were not exported in time");
        }
        drop(provider);
    }
}

/// Hands finished spans to the export task, never waiting: on a full queue the span is
/// dropped and counted.
#[derive(Debug)]
struct Exporting {
    queue: mpsc::Sender<SpanData>,
    dropped: IntCounterVec,
}

impl SpanProcessor for Exporting {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if self.queue.try_send(span).is_err() {
            self.dropped.with_label_values(&["queue_full"]).inc();
        }
    }

    /// Flushing is [`Telemetry::shutdown`]'s, which can wait without blocking the runtime.
    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

/// The export task: batches of at most [`MAX_BATCH`] spans, one export at a time.
async fn export(
    mut spans: mpsc::Receiver<SpanData>,
    mut flushes: mpsc::Receiver<Flush>,
    exporter: opentelemetry_otlp::SpanExporter,
    dropped: IntCounterVec,
) {
    let mut failing = false;
    // Once asked to flush (or once no span can come any more), what is queued is sent
    // without waiting for batches to fill, and then the task ends.
    let mut closing = false;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        if !closing {
            closing = tokio::select! {
                got = spans.recv_many(&mut batch, MAX_BATCH) => got == 0,
                _ = flushes.recv() => true,
            };
        }
        if closing {
            while batch.len() < MAX_BATCH {
                let Ok(span) = spans.try_recv() else { break };
                batch.push(span);
            }
        } else {
            let deadline = tokio::time::Instant::now() + EXPORT_INTERVAL;
            while batch.len() < MAX_BATCH {
                let more = MAX_BATCH - batch.len();
                match tokio::time::timeout_at(deadline, spans.recv_many(&mut batch, more)).await {
                    Ok(n) if n > 0 => {}
                    _ => break,
                }
            }
        }
        if !batch.is_empty() {
            let count = batch.len() as u64;
            let sent =
                tokio::time::timeout(EXPORT_TIMEOUT, exporter.export(std::mem::take(&mut batch)));
            match sent.await {
                Ok(Ok(())) => failing = false,
                failed => {
                    dropped.with_label_values(&["export_failed"]).inc_by(count);
                    // Once per outage, not once per batch.
                    if !failing {
                        let error = match failed {
                            Ok(Err(err)) => err.to_string(),
                            _ => format!("no answer within {EXPORT_TIMEOUT:?}"),
                        };
                        tracing::warn!(%error, "spans not exported; dropping them until the collector answers");
                    }
                    failing = true;
                }
            }
        }
        if closing && spans.is_empty() {
            return;
        }
    }
}

/// What a service's steps start spans on; a cheap clone. Off, it records nothing and costs
/// next to nothing, yet still passes a message's trace context on unchanged, so that a
/// service with tracing off does not cut the trace of the services around it.
#[derive(Clone, Debug, Default)]
pub struct Tracing {
    tracer: Option<SdkTracer>,
}

impl Tracing {
    pub fn off() -> Tracing {
        Tracing { tracer: None }
    }

    /// A span named `name` under `parent` (a request's or a message's context; a new trace
    /// without one). Its `attributes` are made only if the span is recorded: most are not
    /// when sampling, and every event starts a span at every hop.
    pub fn start(
        &self,
        name: &'static str,
        kind: SpanKind,
        parent: Option<&TraceParent>,
        attributes: impl FnOnce() -> Vec<KeyValue>,
    ) -> Step {
        let span = self.tracer.as_ref().map(|tracer| {
            let cx = match parent {
                Some(parent) => Context::new().with_remote_span_context(parent.span_context()),
                None => Context::new(),
            };
            tracer
                .span_builder(name)
                .with_kind(kind)
                .start_with_context(tracer, &cx)
        });
        let mut step = Step {
            span,
            parent: parent.cloned(),
        };
        step.set_all(attributes);
        step
    }
}

/// One span of an event's life, ended when dropped.
#[derive(Debug)]
pub struct Step {
    span: Option<Span>,
    parent: Option<TraceParent>,
}

impl Step {
    /// Marks a point in the step (`published`, `confirmed`, `sent`...).
    pub fn event(&mut self, name: &'static str) {
        // Checked here: the API reads the clock before it asks whether the span records.
        if let Some(span) = self.span.as_mut().filter(|span| span.is_recording()) {
            span.add_event(name, Vec::new());
        }
    }

    /// Sets `attributes`, made only if the span is recorded.
    pub fn set_all(&mut self, attributes: impl FnOnce() -> Vec<KeyValue>) {
        if let Some(span) = self.span.as_mut().filter(|span| span.is_recording()) {
            span.set_attributes(attributes());
        }
    }

    pub fn set(&mut self, attribute: KeyValue) {
        if let Some(span) = &mut self.span {
            span.set_attribute(attribute);
        }
    }

    /// The step failed, for `reason` (an operator's words: never a payload or a key).
    pub fn fail(&mut self, reason: impl Into<String>) {
        if let Some(span) = &mut self.span {
            span.set_status(Status::error(reason.into()));
        }
    }

    /// The context the messages this step publishes carry: its span's, or, with tracing
    /// off or the trace not sampled here, the one it was started under.
    pub fn context(&self) -> Option<TraceParent> {
        self.span
            .as_ref()
            .and_then(|span| TraceParent::of_span(span.span_context()))
            .or_else(|| self.parent.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        telemetry: TelemetryConfig,
    }

    fn parse(args: &[&str]) -> Result<TelemetryConfig, clap::Error> {
        Cli::try_parse_from(std::iter::once("test").chain(args.iter().copied()))
            .map(|cli| cli.telemetry)
    }

    #[test]
    fn tracing_is_off_without_an_endpoint_and_the_traces_path_is_added_to_a_base_url() {
        assert_eq!(parse(&[]).unwrap().traces_url(), None);
        let base = parse(&["--otlp-endpoint", "http://collector:4318/"]).unwrap();
        assert_eq!(
            base.traces_url().as_deref(),
            Some("http://collector:4318/v1/traces")
        );
        let signal = parse(&[
            "--otlp-endpoint",
            "http://collector:4318",
            "--otlp-traces-endpoint",
            "http://other:9/traces",
        ])
        .unwrap();
        assert_eq!(
            signal.traces_url().as_deref(),
            Some("http://other:9/traces")
        );
    }

    #[test]
    fn samplers_and_protocols_are_the_standard_names_hookbus_supports() {
        let ratio = parse(&[
            "--traces-sampler",
            "parentbased_traceidratio",
            "--traces-sampler-arg",
            "0.01",
        ])
        .unwrap();
        assert_eq!(
            format!("{:?}", ratio.sampler()),
            format!(
                "{:?}",
                Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(0.01)))
            )
        );
        assert!(parse(&["--traces-sampler", "jaeger_remote"]).is_err());
        assert!(parse(&["--otlp-protocol", "grpc"]).is_err());
    }
}
