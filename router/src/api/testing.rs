//! `POST /api/hooks/:id/test`: sends one test payload per event to the given endpoint,
//! signed with the hook's key, there and then, and reports the endpoint's answer with
//! Logto's error codes. The request goes through the deliverers' guarded client.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use hookbus_contracts::hook::{validate_config, HookConfig};
use hookbus_contracts::payload::{now_ms, Payload};
use hookbus_contracts::{Delivery, Event, EventKind, EventName, Hook};
use hookbus_runtime::http::ApiError;
use hookbus_send::prepare;
use hookbus_send::AttemptResult;
use serde::Deserialize;
use serde_json::json;

use hookbus_runtime::http::ErrorBody;

use super::{invalid, load_hook, Shared};

/// What to test: a payload per event, sent to `config` (not to the hook's own endpoint),
/// signed with the hook's key.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"events": ["PostSignIn"],
    "config": {"url": "https://crm.example.com/hook", "headers": {"x-tenant": "acme"}}}))]
pub struct TestRequest {
    /// The events to send a test payload of, one request each.
    events: Vec<EventName>,
    /// Where to send them: `url`, and `headers` to add (optional).
    config: HookConfig,
}

#[utoipa::path(post, path = "/api/hooks/{id}/test", tag = "hooks", params(("id" = String, Path)),
    request_body = TestRequest,
    responses((status = 204, description = "Every test payload was answered with 2xx"),
        (status = 422, description = "hook.endpoint_responded_with_error (data: responseStatus, responseBody) or hook.send_test_payload_failed", body = ErrorBody),
        (status = 400, body = ErrorBody), (status = 404, description = "No such hook", body = ErrorBody), (status = 401, description = "Missing or wrong token", body = ErrorBody)))]
pub async fn test(
    State(state): State<Shared>,
    Path(id): Path<String>,
    body: Result<Json<TestRequest>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let Json(request) = body.map_err(|e| invalid(e.body_text()))?;
    let hook = load_hook(&state, &id).await?;
    validate_config(&request.config, &state.policy)
        .map_err(|e| ApiError::bad_request(e.code(), e.to_string()))?;
    send_tests(&state, &hook, request.events, request.config).await
}

/// Sends a test payload of each of `events` to `config`, signed with `hook`'s key; stops at
/// the first answer that is not 2xx. Shared by the admin route and the portal's, which may
/// only test the hook's own endpoint.
pub(super) async fn send_tests(
    state: &Shared,
    hook: &Hook,
    events: Vec<EventName>,
    config: HookConfig,
) -> Result<StatusCode, ApiError> {
    let mut probe = hook.clone();
    probe.config = config;
    for event in events {
        let delivery = Delivery::new(hook.id.clone(), Event::new(event, test_payload(event)));
        let sent = state
            .sender
            .send(&prepare(&delivery, &probe, now_ms()))
            .await;
        match sent.result {
            AttemptResult::Status {
                code: 200..=299, ..
            } => {}
            AttemptResult::Status { code, .. } => {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "hook.endpoint_responded_with_error",
                    format!("The endpoint responded with an error (HTTP {code})."),
                )
                .with_data(json!({"responseStatus": code, "responseBody": sent.response_body.unwrap_or_default()})));
            }
            AttemptResult::Failed(failure) => {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "hook.send_test_payload_failed",
                    format!(
                        "Failed to send the test payload: {} error.",
                        failure.label()
                    ),
                ));
            }
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Fake values in the shape of the event's real payload, as Logto's test payloads.
fn test_payload(event: EventName) -> Payload {
    let fields = match event.kind() {
        EventKind::Interaction => json!({
            "interactionEvent": match event.as_str() {
                "PostRegister" => "Register",
                "PostResetPassword" => "ForgotPassword",
                _ => "SignIn",
            },
            "sessionId": "fake-session-id",
            "userAgent": "fake-user-agent",
            "userId": "fake-user-id",
            "userIp": "fake-user-ip",
            "user": {"id": "fake-user-id", "username": "fake-user", "primaryEmail": "fake-user@fake-service.com", "name": "Fake User"},
            "application": {"id": "fake-spa-application-id", "type": "SPA", "name": "Fake Application"},
        }),
        EventKind::Data => json!({
            "userAgent": "fake-user-agent",
            "ip": "fake-ip",
            "path": "/fake-path/:id",
            "method": "POST",
            "status": 200,
            "params": {"id": "fake-id"},
            "matchedRoute": "/fake-path/:id",
            "data": {"result": "success"},
        }),
        EventKind::Exception => json!({"userAgent": "fake-user-agent", "ip": "fake-ip"}),
    };
    fields.as_object().cloned().unwrap_or_default()
}
