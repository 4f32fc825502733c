//! The HTTP ingest API, for auth services in any language.
//!
//! - `POST /api/events`: one event, `{"event": "<name>", ...Logto payload fields}` → `{"id"}`.
//! - `POST /api/management-api-calls`: a Management API call ([`ApiCall`]) → the events the
//!   route table maps it to, `{"events": [{"id", "event"}, ...]}` (empty when it emits none).
//! - `POST /api/interactions`: a sign-in flow ([`Interaction`]) → its events, likewise.
//!
//! Every endpoint goes the same way: token (before the body is read), size, JSON and fields
//! (a `400` that names the field), the `Idempotency-Key` if any, then one confirmed publish
//! per event, in order. `202` is sent only after the broker confirmed every event, so a 202
//! means they are durable; a refused request publishes nothing.
//!
//! A request may carry a W3C `traceparent` (and `tracestate`): its `hookbus.ingest` span
//! joins that trace, and each event's `hookbus.publish` span, whose context the event's
//! message carries on to the router (ARCHITECTURE.md, "Tracing").

use std::sync::Arc;
use std::time::Instant;

use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use bytes::Bytes;
use hookbus_contracts::{Event, EventName};
use hookbus_runtime::http::{require_bearer, ApiError, BearerToken};
use hookbus_runtime::telemetry::{self, KeyValue, SpanKind, Step, Tracing};
use hookbus_runtime::trace_context::{TraceParent, TRACEPARENT, TRACESTATE};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::api_call::ApiCall;
use crate::idempotency::{self, Claim, Idempotency, IdempotencyKey, Lease};
use crate::interaction::Interaction;
use crate::metrics::Metrics;
use crate::publisher::{Published, Publisher};
use hookbus_runtime::broker::PublishError;

#[derive(Clone)]
pub struct IngestState {
    pub publisher: Publisher,
    pub metrics: Metrics,
    pub idempotency: Idempotency,
    /// How long a request waits for the broker's confirm before it answers `503`.
    pub publish_timeout: std::time::Duration,
    /// Publishes that outlive their request (timed out, or the client went away): awaited on
    /// shutdown.
    pub tasks: tokio_util::task::TaskTracker,
    /// Spans of each request and of each event's publish.
    pub tracing: Tracing,
}

/// How long a publish may stay unsettled after its request answered `503`: it keeps its
/// `Idempotency-Key` claim (a retry answers `409`) until it is confirmed or fails, within
/// the claim's lease.
const UNSETTLED_CAP: std::time::Duration =
    idempotency::LEASE.saturating_sub(std::time::Duration::from_secs(5));

/// One ingest endpoint: how a body becomes events, and how the answer reads.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Endpoint {
    Event,
    ApiCall,
    Interaction,
}

impl Endpoint {
    pub(crate) const ALL: [Endpoint; 3] =
        [Endpoint::Event, Endpoint::ApiCall, Endpoint::Interaction];

    pub(crate) fn path(self) -> &'static str {
        match self {
            Endpoint::Event => "/api/events",
            Endpoint::ApiCall => "/api/management-api-calls",
            Endpoint::Interaction => "/api/interactions",
        }
    }

    /// The events a body asks for, or why it is refused.
    fn plan(self, body: &[u8]) -> Result<Plan, ApiError> {
        let known = |events| Plan {
            events,
            unknown_route: false,
        };
        match self {
            Endpoint::Event => parse_event(body).map(|event| known(vec![event])),
            Endpoint::ApiCall => parse_body::<ApiCall>(body).map(|call| Plan {
                events: call.events(),
                unknown_route: call.unknown_route(),
            }),
            Endpoint::Interaction => parse_body::<Interaction>(body).map(|i| known(i.events())),
        }
    }

    fn answer(self, published: &[Published], unknown_route: bool) -> Value {
        match (self, published) {
            (Endpoint::Event, [one]) => serde_json::json!({"id": one.id}),
            _ if unknown_route => serde_json::json!({"events": published, UNKNOWN_ROUTE: true}),
            _ => serde_json::json!({"events": published}),
        }
    }
}

/// What a body asks to publish.
struct Plan {
    events: Vec<Event>,
    /// A Management API call whose `method`/`matchedRoute` the route table does not have:
    /// it emits nothing, and the answer says so (a typo such as `/users/:id` for
    /// `/users/:userId` would otherwise look like a call that emits no event).
    unknown_route: bool,
}

/// The answer's field, and header, that flag a route outside the table.
const UNKNOWN_ROUTE: &str = "unknownRoute";
const UNKNOWN_ROUTE_HEADER: &str = "x-hookbus-unknown-route";

pub fn routes(state: IngestState, token: Arc<str>, max_body_bytes: usize) -> Router {
    let unauthorized = state.metrics.rejected.with_label_values(&["unauthorized"]);
    let mut router = Router::new();
    for endpoint in Endpoint::ALL {
        router = router.route(
            endpoint.path(),
            post(
                move |state: State<IngestState>,
                      headers: HeaderMap,
                      body: Result<Bytes, BytesRejection>| {
                    ingest(state.0, endpoint, headers, body)
                },
            ),
        );
    }
    router
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
        .route_layer(from_fn_with_state(BearerToken(token), require_bearer))
        .route("/api/openapi.json", axum::routing::get(openapi_document))
        .layer(axum::middleware::map_response(move |res: Response| {
            let unauthorized = unauthorized.clone();
            async move {
                if res.status() == StatusCode::UNAUTHORIZED {
                    unauthorized.inc();
                }
                res
            }
        }))
}

async fn openapi_document() -> Json<utoipa::openapi::OpenApi> {
    Json(<crate::openapi::IngestApi as utoipa::OpenApi>::openapi())
}

/// Parses an ingest body into an event: `{"event": "<name>", ...Logto payload fields}`.
pub fn parse_event(body: &[u8]) -> Result<Event, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(
            "guard.invalid_input",
            format!("body is not valid JSON: {e}"),
        )
    })?;
    let Value::Object(mut fields) = value else {
        return Err(ApiError::bad_request(
            "guard.invalid_input",
            "body must be a JSON object",
        ));
    };
    let name = match fields.remove("event") {
        Some(Value::String(name)) => name,
        Some(_) => {
            return Err(ApiError::bad_request(
                "guard.invalid_input",
                "`event` must be a string",
            ))
        }
        None => {
            return Err(ApiError::bad_request(
                "guard.invalid_input",
                "`event` is required",
            ))
        }
    };
    let name = EventName::parse(&name)
        .map_err(|e| ApiError::bad_request("event.unknown", e.to_string()))?;
    if let Some(created_at) = fields.get("createdAt") {
        if !created_at.is_string() {
            return Err(ApiError::bad_request(
                "guard.invalid_input",
                "`createdAt` must be an ISO-8601 string",
            ));
        }
    }
    Ok(Event::new(name, fields))
}

/// Parses a typed body; a refusal names the field that is missing, unknown or mistyped.
pub fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        refusal(&path, e.into_inner())
    })?;
    de.end().map_err(|e| refusal(".", e))?;
    Ok(parsed)
}

fn refusal(path: &str, err: serde_json::Error) -> ApiError {
    let message = if err.is_syntax() || err.is_eof() {
        format!("body is not valid JSON: {err}")
    } else if path == "." {
        err.to_string()
    } else {
        format!("`{path}`: {err}")
    };
    ApiError::bad_request("guard.invalid_input", message)
}

/// Whether a request publishes, or answers again what its key was answered.
enum Admission {
    Publish(Plan, Option<Lease>),
    Replay(Value),
}

/// What the request's `Idempotency-Key`, if any, allows.
enum Claimed {
    Publish(Option<Lease>),
    Replay(Value),
}

async fn ingest(
    state: IngestState,
    endpoint: Endpoint,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let mut span = state.tracing.start(
        "hookbus.ingest",
        SpanKind::Server,
        trace_parent(&headers).as_ref(),
        || vec![KeyValue::new("http.route", endpoint.path())],
    );
    let admitted = admit(&state, endpoint, &headers, body).await;
    let (plan, lease) = match admitted {
        Ok(Admission::Publish(plan, lease)) => (plan, lease),
        Ok(Admission::Replay(answer)) => {
            span.set(KeyValue::new(telemetry::OUTCOME, "idempotent_replay"));
            state.metrics.replayed.inc();
            return Ok(accepted(answer, true));
        }
        Err(err) => {
            span.fail(err.code);
            return Err(err);
        }
    };
    span.set(KeyValue::new(
        "hookbus.event.count",
        plan.events.len() as i64,
    ));
    span.event("accepted");
    let context = span.context();
    // The publish and the settling of its key run on their own, so that a request that
    // times out, or whose client goes away, leaves the key claimed until its publish is
    // settled either way: a retry gets 409, then the answer, never new event ids.
    let publishing = state.tasks.spawn({
        let state = state.clone();
        async move {
            let published = state.publish(&plan.events, context.as_ref()).await;
            let answer = published.map(|p| endpoint.answer(&p, plan.unknown_route));
            state.settle(answer, lease).await
        }
    });
    let answer = match tokio::time::timeout(state.publish_timeout, publishing).await {
        Ok(settled) => settled
            .expect("an ingest publish does not panic")
            .inspect_err(|err| span.fail(err.code))?,
        Err(_) => {
            span.fail("publish_timeout");
            state.refuse("publish_timeout");
            tracing::warn!(timeout = ?state.publish_timeout, "RabbitMQ did not confirm in time");
            return Err(ApiError::unavailable(
                "the event broker did not confirm in time; retry later (with the same Idempotency-Key, the retry cannot publish twice)",
            )
            .with_retry_after(1));
        }
    };
    state
        .metrics
        .publish_seconds
        .observe(started.elapsed().as_secs_f64());
    Ok(accepted(answer, false))
}

/// The body checked and the request's `Idempotency-Key` claimed: what to publish, or the
/// answer a key was given before.
async fn admit(
    state: &IngestState,
    endpoint: Endpoint,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Admission, ApiError> {
    let body = body.map_err(|rejection| state.refuse_body(rejection))?;
    let key = idempotency_key(headers).inspect_err(|_| state.refuse("malformed"))?;
    let plan = endpoint.plan(&body).inspect_err(|e| {
        state.refuse(match e.code {
            "event.unknown" => "unknown_event",
            _ => "malformed",
        });
    })?;
    Ok(match state.claim(endpoint, key, &body).await? {
        Claimed::Publish(lease) => Admission::Publish(plan, lease),
        Claimed::Replay(answer) => Admission::Replay(answer),
    })
}

/// The request's W3C trace context, if it carries a valid one.
fn trace_parent(headers: &HeaderMap) -> Option<TraceParent> {
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    TraceParent::parse(text(TRACEPARENT)?, text(TRACESTATE))
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let value = value.to_str().unwrap_or_default();
    IdempotencyKey::parse(value)
        .map(Some)
        .map_err(|message| ApiError::bad_request("guard.invalid_input", message))
}

/// A `202`; its headers follow the answer, so a replayed answer has them too.
fn accepted(answer: Value, replayed: bool) -> Response {
    let unknown_route = answer[UNKNOWN_ROUTE] == true;
    let mut response = (StatusCode::ACCEPTED, Json(answer)).into_response();
    let flags = [
        ("idempotent-replayed", replayed),
        (UNKNOWN_ROUTE_HEADER, unknown_route),
    ];
    for (name, set) in flags {
        if set {
            let value = axum::http::HeaderValue::from_static("true");
            response.headers_mut().insert(name, value);
        }
    }
    response
}

impl IngestState {
    fn refuse(&self, reason: &str) {
        self.metrics.rejected.with_label_values(&[reason]).inc();
    }

    fn refuse_body(&self, rejection: BytesRejection) -> ApiError {
        let status = rejection.status();
        self.refuse(match status {
            StatusCode::PAYLOAD_TOO_LARGE => "too_large",
            _ => "malformed",
        });
        ApiError::new(status, "guard.invalid_input", rejection.body_text())
    }

    /// Claims the request's key, if it has one.
    async fn claim(
        &self,
        endpoint: Endpoint,
        key: Option<IdempotencyKey>,
        body: &[u8],
    ) -> Result<Claimed, ApiError> {
        let Some(key) = key else {
            return Ok(Claimed::Publish(None));
        };
        let fingerprint = idempotency::fingerprint(endpoint.path(), body);
        let claim = self.idempotency.claim(&key, &fingerprint).await;
        match claim.map_err(|err| {
            self.refuse("idempotency_unavailable");
            tracing::warn!(error = %err, "idempotency key not checked: Redis unavailable");
            ApiError::unavailable(
                "the idempotency store is unavailable; nothing was published, retry later",
            )
        })? {
            Claim::Publish(lease) => Ok(Claimed::Publish(Some(lease))),
            Claim::Replay(answer) => Ok(Claimed::Replay(answer)),
            Claim::InProgress => {
                self.refuse("idempotency_in_progress");
                Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "idempotency.in_progress",
                    "a request with this Idempotency-Key is being processed; retry later",
                ))
            }
            Claim::Reused => {
                self.refuse("idempotency_key_reused");
                Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "idempotency.key_reused",
                    "this Idempotency-Key was used for another request",
                ))
            }
        }
    }

    /// Publishes in order, each confirmed before the next, counting what was asked and what
    /// the broker confirmed; each event's message carries its `hookbus.publish` span's
    /// context, a child of the request's (`context`).
    async fn publish(
        &self,
        events: &[Event],
        context: Option<&TraceParent>,
    ) -> Result<Vec<Published>, PublishError> {
        for event in events {
            self.metrics
                .ingested
                .with_label_values(&[event.name.as_str()])
                .inc();
        }
        let publisher = self.publisher.clone().with_timeout(UNSETTLED_CAP);
        for event in events {
            let mut span = self.publish_span(event, context);
            let sent = publisher
                .publish_traced(event, span.context().as_ref())
                .await;
            match &sent {
                Ok(()) => span.event("confirmed"),
                Err(err) => span.fail(err.to_string()),
            }
            sent?;
        }
        let published: Vec<Published> = events.iter().map(Published::of).collect();
        for event in &published {
            self.metrics
                .published
                .with_label_values(&[event.event.as_str()])
                .inc();
            tracing::debug!(event_id = %event.id, event = %event.event, "event published");
        }
        Ok(published)
    }

    fn publish_span(&self, event: &Event, context: Option<&TraceParent>) -> Step {
        self.tracing
            .start("hookbus.publish", SpanKind::Producer, context, || {
                telemetry::event_attributes(event)
            })
    }

    /// Records the answer under the key, or gives the key up if publishing failed for sure.
    /// A publish that may have been taken (no confirm in time) keeps the key until its
    /// lease runs out.
    async fn settle(
        &self,
        answer: Result<Value, PublishError>,
        lease: Option<Lease>,
    ) -> Result<Value, ApiError> {
        let answer = answer.map_err(|err| {
            let (reason, message) = match err {
                PublishError::Blocked => (
                    "broker_blocked",
                    "the event broker is blocking publishers (a resource alarm); retry later",
                ),
                PublishError::Timeout(_) => (
                    "publish_timeout",
                    "the event broker did not confirm in time; retry later",
                ),
                _ => (
                    "broker_unavailable",
                    "the event broker is unavailable; retry later",
                ),
            };
            self.refuse(reason);
            tracing::warn!(error = %err, "events not accepted");
            (err, ApiError::unavailable(message).with_retry_after(1))
        });
        let Some(lease) = lease else {
            return answer.map_err(|(_, api)| api);
        };
        let kept = match &answer {
            Ok(answer) => self.idempotency.complete(lease, answer).await,
            Err((PublishError::Timeout(_), _)) => Ok(true),
            Err(_) => self.idempotency.release(lease).await,
        };
        let answer = answer.map_err(|(_, api)| api);
        match kept {
            Ok(true) => {}
            Ok(false) => tracing::warn!("idempotency key expired while publishing"),
            Err(err) => {
                tracing::warn!(error = %err, "idempotency key not settled: Redis unavailable");
            }
        }
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_parsed_or_refused_with_a_reason() {
        let e =
            parse_event(br#"{"event":"User.Created","data":{"id":"u1"},"path":"/users"}"#).unwrap();
        assert_eq!(e.name.as_str(), "User.Created");
        assert_eq!(e.payload.fields()["data"]["id"], "u1");
        for (body, needle) in [
            (&b"{oops"[..], "not valid JSON"),
            (b"[1]", "JSON object"),
            (br#"{"data":1}"#, "`event` is required"),
            (br#"{"event":7}"#, "must be a string"),
            (br#"{"event":"User.Exploded"}"#, "User.Exploded"),
            (br#"{"event":"PostSignIn","createdAt":5}"#, "createdAt"),
        ] {
            let err = parse_event(body).unwrap_err();
            assert_eq!(err.status, StatusCode::BAD_REQUEST);
            assert!(
                err.message.contains(needle),
                "{} lacks {needle}",
                err.message
            );
        }
    }

    #[test]
    fn typed_bodies_are_refused_naming_the_field() {
        let call = r#""method":"POST","matchedRoute":"/users","path":"/users""#;
        for (body, needle) in [
            (
                format!("{{{call},\"status\":201}}"),
                "missing field `params`",
            ),
            (
                format!("{{{call},\"params\":{{}},\"status\":\"201\"}}"),
                "`status`: invalid type",
            ),
            (
                format!("{{{call},\"params\":[],\"status\":201}}"),
                "`params`: invalid type",
            ),
            (
                format!("{{{call},\"params\":{{}},\"status\":201,\"stauts\":1}}"),
                "unknown field `stauts`",
            ),
            (
                format!("{{{call},\"params\":{{}},\"status\":201}} x"),
                "not valid JSON",
            ),
            ("{".to_owned(), "not valid JSON"),
        ] {
            let err = parse_body::<ApiCall>(body.as_bytes()).unwrap_err();
            assert_eq!(err.status, StatusCode::BAD_REQUEST);
            assert!(
                err.message.contains(needle),
                "{} lacks {needle}",
                err.message
            );
        }
        let err = parse_body::<Interaction>(
            br#"{"interactionEvent":"SignIn","sessionId":"s","userId":"u","user":{},"actions":["fly"]}"#,
        )
        .unwrap_err();
        assert!(err.message.starts_with("`actions[0]`"), "{}", err.message);
    }

    #[test]
    fn answers_read_as_documented() {
        let one = Published::of(&parse_event(br#"{"event":"PostSignIn"}"#).unwrap());
        assert_eq!(
            Endpoint::Event.answer(std::slice::from_ref(&one), false),
            serde_json::json!({"id": one.id})
        );
        assert_eq!(
            Endpoint::ApiCall.answer(&[], false),
            serde_json::json!({"events": []})
        );
        assert_eq!(
            Endpoint::ApiCall.answer(&[], true),
            serde_json::json!({"events": [], "unknownRoute": true})
        );
        let answer = Endpoint::Interaction.answer(std::slice::from_ref(&one), false);
        assert_eq!(answer["events"][0]["event"], "PostSignIn");
        assert_eq!(answer["events"][0]["id"], one.id.as_str());
    }
}
