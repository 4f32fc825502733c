//! The admin API on the router: `POST /api/hooks` (Logto's body and answer).
//!
//! Every route needs `Authorization: Bearer $HOOKBUS_ADMIN_TOKEN`. Input is validated
//! fully (events, URL and SSRF policy, headers) before anything is stored.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::routing::post;
use axum::{Json, Router};
use hookbus_contracts::hook::HookInput;
use hookbus_contracts::http::{require_bearer, ApiError, BearerToken};
use hookbus_contracts::store::{HookCache, HookStore};
use hookbus_contracts::target::TargetPolicy;
use hookbus_contracts::Hook;

#[derive(Clone)]
pub struct AdminState {
    pub store: HookStore,
    /// This router's routing cache: refreshed before a change is acknowledged, so an event
    /// published after the answer is routed by the new configuration (other processes see
    /// it within the refresh period).
    pub cache: HookCache,
    pub policy: TargetPolicy,
}

pub fn routes(state: AdminState, token: Arc<str>) -> Router {
    Router::new()
        .route("/api/hooks", post(create_hook))
        .with_state(state)
        .route_layer(from_fn_with_state(BearerToken(token), require_bearer))
}

async fn create_hook(
    State(state): State<AdminState>,
    body: Result<Json<HookInput>, JsonRejection>,
) -> Result<(StatusCode, Json<Hook>), ApiError> {
    let Json(input) =
        body.map_err(|e| ApiError::bad_request("guard.invalid_input", e.body_text()))?;
    let hook = input
        .validate(&state.policy)
        .map_err(|e| ApiError::bad_request(e.code(), e.to_string()))?;
    state.store.insert(&hook).await.map_err(|err| {
        tracing::warn!(error = %err, "hook not stored: Redis unavailable");
        ApiError::unavailable("the hook store is unavailable; nothing was created")
    })?;
    if let Err(err) = state.cache.reload(&state.store).await {
        tracing::warn!(error = %err, "hook stored; this router will see it at its next refresh");
    }
    tracing::info!(hook_id = %hook.id, events = ?hook.events, "hook created");
    Ok((StatusCode::CREATED, Json(hook)))
}
