//! `GET /api/hooks/:id/dead-letters` (oldest first, Logto-style pages) and
//! `POST /api/hooks/:id/dead-letters/replay`.

use std::collections::HashMap;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Uri};
use axum::Json;
use hookbus_contracts::broker;
use hookbus_contracts::http::ApiError;
use lapin::Connection;
use serde_json::{json, Value};

use hookbus_contracts::http::ErrorBody;

use super::{invalid, load_hook, Page, Shared};
use crate::dead_letters::{self, DeadLetter, ReplayFilter};

fn broker_error(err: impl std::fmt::Display) -> ApiError {
    tracing::warn!(error = %err, "dead letters unavailable");
    ApiError::unavailable("RabbitMQ is unavailable; nothing was changed")
}

async fn connect(state: &Shared) -> Result<Connection, ApiError> {
    broker::connect(&state.amqp_url, "hookbus-router-admin")
        .await
        .map_err(broker_error)
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
    let page = Page::from_query(&query)?.unwrap_or(Page {
        number: 1,
        size: Page::DEFAULT_SIZE,
    });
    let conn = connect(&state).await?;
    let listed = dead_letters::list(&conn, &state.topology, &hook, page.offset(), page.size).await;
    let _ = conn.close(200, "done".into()).await;
    let (letters, total) = listed.map_err(broker_error)?;
    Ok((page.headers(total, &uri), Json(letters)))
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
    let conn = connect(&state).await?;
    let replayed = dead_letters::replay(&conn, &state.topology, &hook, &filter).await;
    let _ = conn.close(200, "done".into()).await;
    Ok(Json(json!({"replayed": replayed.map_err(broker_error)?})))
}
