//! `GET /api/hooks/:id/dead-letters` (oldest first, Logto-style pages) and
//! `POST /api/hooks/:id/dead-letters/replay`; the same for the events' dead letters
//! (`{p}.events.dead`) under `/api/events/dead-letters`.

use std::collections::HashMap;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Uri};
use axum::Json;
use hookbus_runtime::broker;
use hookbus_runtime::http::ApiError;
use lapin::Connection;
use serde_json::{json, Value};

use hookbus_runtime::http::ErrorBody;

use super::{invalid, load_hook, Page, Shared};
use crate::dead_letters::{self, DeadLetter, Parked, ReplayFilter};

fn broker_error(err: impl std::fmt::Display) -> ApiError {
    tracing::warn!(error = %err, "dead letters unavailable");
    ApiError::unavailable("RabbitMQ is unavailable; nothing was changed")
}

async fn connect(state: &Shared) -> Result<Connection, ApiError> {
    broker::connect(&state.amqp_url, "hookbus-router-admin")
        .await
        .map_err(broker_error)
}

fn page_of(query: &HashMap<String, String>) -> Result<Page, ApiError> {
    Ok(Page::from_query(query)?.unwrap_or(Page {
        number: 1,
        size: Page::DEFAULT_SIZE,
    }))
}

async fn list_parked(
    state: &Shared,
    parked: Parked,
    page: Page,
    uri: &Uri,
) -> Result<(HeaderMap, Json<Vec<DeadLetter>>), ApiError> {
    let conn = connect(state).await?;
    let listed =
        dead_letters::list(&conn, &state.topology, &parked, page.offset(), page.size).await;
    let _ = conn.close(200, "done".into()).await;
    let (letters, total) = listed.map_err(broker_error)?;
    Ok((page.headers(total, uri), Json(letters)))
}

async fn replay_parked(
    state: &Shared,
    parked: Parked,
    filter: &ReplayFilter,
) -> Result<Json<Value>, ApiError> {
    let conn = connect(state).await?;
    let replayed = dead_letters::replay(
        &conn,
        &state.topology,
        &parked,
        filter,
        &state.tracing,
        state.activity.as_deref(),
    )
    .await;
    let _ = conn.close(200, "done".into()).await;
    Ok(Json(json!({"replayed": replayed.map_err(broker_error)?})))
}

#[utoipa::path(get, path = "/api/hooks/{id}/dead-letters", tag = "dead letters",
    params(("id" = String, Path), ("page" = Option<usize>, Query, description = "Page number, from 1"),
        ("page_size" = Option<usize>, Query, description = "Page size (default 20, at most 100)")),
    responses((status = 200, description = "Dead letters, oldest first; Total-Number and Link set", body = Vec<DeadLetter>),
        (status = 404, description = "No such hook", body = ErrorBody), (status = 401, description = "Missing or wrong token", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn list(
    State(state): State<Shared>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    uri: Uri,
) -> Result<(HeaderMap, Json<Vec<DeadLetter>>), ApiError> {
    let hook = load_hook(&state, &id).await?.id;
    list_parked(&state, Parked::Hook(hook), page_of(&query)?, &uri).await
}

#[utoipa::path(post, path = "/api/hooks/{id}/dead-letters/replay", tag = "dead letters",
    params(("id" = String, Path)), request_body = ReplayFilter,
    responses((status = 200, description = "{\"replayed\": N}", body = Object),
        (status = 400, body = ErrorBody), (status = 404, description = "No such hook", body = ErrorBody), (status = 401, description = "Missing or wrong token", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn replay(
    State(state): State<Shared>,
    Path(id): Path<String>,
    body: Result<Json<ReplayFilter>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(filter) = body.map_err(|e| invalid(e.body_text()))?;
    let hook = load_hook(&state, &id).await?.id;
    replay_parked(&state, Parked::Hook(hook), &filter).await
}

/// Events the router parked (unreadable, or not routable after its tries) and deliveries
/// whose own dead letter could not be written.
#[utoipa::path(get, path = "/api/events/dead-letters", tag = "dead letters",
    params(("page" = Option<usize>, Query, description = "Page number, from 1"),
        ("page_size" = Option<usize>, Query, description = "Page size (default 20, at most 100)")),
    responses((status = 200, description = "The events' dead letters, oldest first; Total-Number and Link set", body = Vec<DeadLetter>),
        (status = 401, description = "Missing or wrong token", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn list_events(
    State(state): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
    uri: Uri,
) -> Result<(HeaderMap, Json<Vec<DeadLetter>>), ApiError> {
    list_parked(&state, Parked::Events, page_of(&query)?, &uri).await
}

/// Replays the events' dead letters the filter takes: an event goes back to the router
/// (routed by the hooks of now), a delivery to its hook's queue; unreadable ones stay.
#[utoipa::path(post, path = "/api/events/dead-letters/replay", tag = "dead letters",
    request_body = ReplayFilter,
    responses((status = 200, description = "{\"replayed\": N}", body = Object),
        (status = 400, body = ErrorBody), (status = 401, description = "Missing or wrong token", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn replay_events(
    State(state): State<Shared>,
    body: Result<Json<ReplayFilter>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(filter) = body.map_err(|e| invalid(e.body_text()))?;
    replay_parked(&state, Parked::Events, &filter).await
}
