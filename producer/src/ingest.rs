//! The HTTP ingest API, for auth services in any language: `POST /api/events`.
//!
//! Order of checks: token (before the body is read), size, JSON, event name; then one
//! confirmed publish. `202 {"id"}` is sent only after the broker confirmed, so a 202 means
//! the event is durable; any other answer means nothing was published.

use std::sync::Arc;

use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::routing::post;
use axum::{Json, Router};
use bytes::Bytes;
use hookbus_contracts::http::{require_bearer, ApiError, BearerToken};
use hookbus_contracts::{Event, EventName};
use serde_json::Value;

use crate::metrics::Metrics;
use crate::publisher::Publisher;

#[derive(Clone)]
pub struct IngestState {
    pub publisher: Publisher,
    pub metrics: Metrics,
}

pub fn routes(state: IngestState, token: Arc<str>, max_body_bytes: usize) -> Router {
    let unauthorized = state.metrics.rejected.with_label_values(&["unauthorized"]);
    Router::new()
        .route("/api/events", post(ingest_event))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
        .route_layer(from_fn_with_state(BearerToken(token), require_bearer))
        .layer(axum::middleware::map_response(
            move |res: axum::response::Response| {
                let unauthorized = unauthorized.clone();
                async move {
                    if res.status() == StatusCode::UNAUTHORIZED {
                        unauthorized.inc();
                    }
                    res
                }
            },
        ))
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

async fn ingest_event(
    State(state): State<IngestState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let started = std::time::Instant::now();
    let reject = |reason: &str| state.metrics.rejected.with_label_values(&[reason]).inc();
    let body = body.map_err(|rejection| {
        let status = rejection.status();
        reject(if status == StatusCode::PAYLOAD_TOO_LARGE {
            "too_large"
        } else {
            "malformed"
        });
        ApiError::new(status, "guard.invalid_input", rejection.body_text())
    })?;
    let event = parse_event(&body).inspect_err(|e| {
        reject(if e.code == "event.unknown" {
            "unknown_event"
        } else {
            "malformed"
        })
    })?;
    state
        .metrics
        .ingested
        .with_label_values(&[event.name.as_str()])
        .inc();
    state.publisher.publish(&event).await.map_err(|err| {
        reject("broker_unavailable");
        tracing::warn!(error = %err, event = %event.name, "event not accepted: RabbitMQ unavailable");
        ApiError::unavailable("the event broker is unavailable; nothing was published, retry later")
    })?;
    state
        .metrics
        .published
        .with_label_values(&[event.name.as_str()])
        .inc();
    state
        .metrics
        .publish_seconds
        .observe(started.elapsed().as_secs_f64());
    tracing::debug!(event_id = %event.id, event = %event.name, "event published");
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({"id": event.id})),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_parsed_or_refused_with_a_reason() {
        let e =
            parse_event(br#"{"event":"User.Created","data":{"id":"u1"},"path":"/users"}"#).unwrap();
        assert_eq!(e.name.as_str(), "User.Created");
        assert_eq!(e.payload["data"]["id"], "u1");
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
}
