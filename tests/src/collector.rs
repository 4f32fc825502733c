//! An OTLP/HTTP collector on loopback, for the tests that follow an event's trace and for the
//! benchmark's tracing runs: it takes `POST /v1/traces` (protobuf), answers 200, and keeps
//! every span it decoded (bounded: past [`KEEP`] spans it only counts them) with the raw
//! bodies' bytes, so a test can assert that no secret was exported.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use prost::Message;

/// Spans kept for inspection; the rest are counted only (a benchmark sends millions).
const KEEP: usize = 10_000;

/// One exported span, flattened: ids in lowercase hex, attributes as text.
#[derive(Debug, Clone)]
pub struct SpanSeen {
    pub service: String,
    pub name: String,
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    pub attributes: BTreeMap<String, String>,
    pub events: Vec<String>,
    /// OTLP's status code: 0 unset, 1 ok, 2 error.
    pub status: i32,
}

impl SpanSeen {
    pub fn attribute(&self, key: &str) -> &str {
        self.attributes.get(key).map_or("", String::as_str)
    }
}

#[derive(Default)]
struct Seen {
    spans: Vec<SpanSeen>,
    count: u64,
    /// Every request body as it came (for the tests; empty past [`KEEP`] spans).
    bodies: Vec<u8>,
}

pub struct Collector {
    addr: SocketAddr,
    seen: Arc<Mutex<Seen>>,
    _server: tokio::task::JoinHandle<()>,
}

impl Collector {
    pub async fn start() -> Collector {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let app = Router::new()
            .route("/v1/traces", post(take))
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("an address");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Collector {
            addr,
            seen,
            _server: server,
        }
    }

    /// The base URL a service's `OTEL_EXPORTER_OTLP_ENDPOINT` names.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The spans of one trace, in the order they arrived.
    pub fn trace(&self, trace_id: &str) -> Vec<SpanSeen> {
        let seen = self.seen.lock().expect("collector lock");
        seen.spans
            .iter()
            .filter(|s| s.trace_id == trace_id)
            .cloned()
            .collect()
    }

    /// Spans received in all.
    pub fn count(&self) -> u64 {
        self.seen.lock().expect("collector lock").count
    }

    /// Whether `needle` occurs anywhere in what was exported.
    pub fn received_bytes(&self, needle: &[u8]) -> bool {
        let seen = self.seen.lock().expect("collector lock");
        seen.bodies.windows(needle.len()).any(|w| w == needle)
    }
}

async fn take(State(seen): State<Arc<Mutex<Seen>>>, body: Bytes) -> StatusCode {
    let Ok(request) = ExportTraceServiceRequest::decode(body.as_ref()) else {
        return StatusCode::BAD_REQUEST;
    };
    let mut seen = seen.lock().expect("collector lock");
    if seen.spans.len() < KEEP {
        seen.bodies.extend_from_slice(&body);
    }
    for resource in request.resource_spans {
        let service = resource
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|kv| kv.key == "service.name")
            .map(text)
            .unwrap_or_default();
        for span in resource.scope_spans.into_iter().flat_map(|s| s.spans) {
            seen.count += 1;
            if seen.spans.len() >= KEEP {
                continue;
            }
            seen.spans.push(SpanSeen {
                service: service.clone(),
                name: span.name,
                trace_id: hex::encode(&span.trace_id),
                span_id: hex::encode(&span.span_id),
                parent_span_id: hex::encode(&span.parent_span_id),
                attributes: span
                    .attributes
                    .iter()
                    .map(|kv| (kv.key.clone(), text(kv)))
                    .collect(),
                events: span.events.into_iter().map(|e| e.name).collect(),
                status: span.status.map_or(0, |s| s.code),
            });
        }
    }
    StatusCode::OK
}

fn text(kv: &KeyValue) -> String {
    match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(Any::StringValue(s)) => s.clone(),
        Some(Any::IntValue(n)) => n.to_string(),
        Some(Any::BoolValue(b)) => b.to_string(),
        Some(Any::DoubleValue(d)) => d.to_string(),
        _ => String::new(),
    }
}
