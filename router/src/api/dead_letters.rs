//! `GET /api/hooks/:id/dead-letters` (oldest first, Logto-style pages) and
//! `POST /api/hooks/:id/dead-letters/replay`.

use std::collections::HashMap;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Uri};
use axum::Json;
use hookbus_contracts::broker;
use hookbus_contracts::http::ApiError;
use hookbus_contracts::HookId;
use lapin::Connection;
use serde_json::{json, Value};

use super::{hook_id, invalid, not_found, store_unavailable, Page, Shared};
use crate::dead_letters::{self, DeadLetter, ReplayFilter};

async fn existing(state: &Shared, id: &str) -> Result<HookId, ApiError> {
    let hook = hook_id(id)?;
    state
        .store
        .get(&hook)
        .await
        .map_err(store_unavailable)?
        .ok_or_else(|| not_found(id))?;
    Ok(hook)
}

fn broker_error(err: impl std::fmt::Display) -> ApiError {
    tracing::warn!(error = %err, "dead letters unavailable");
    ApiError::unavailable("RabbitMQ is unavailable; nothing was changed")
}

async fn connect(state: &Shared) -> Result<Connection, ApiError> {
    broker::connect(&state.amqp_url, "hookbus-router-admin")
        .await
        .map_err(broker_error)
}

pub async fn list(
    State(state): State<Shared>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    uri: Uri,
) -> Result<(HeaderMap, Json<Vec<DeadLetter>>), ApiError> {
    let hook = existing(&state, &id).await?;
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

pub async fn replay(
    State(state): State<Shared>,
    Path(id): Path<String>,
    body: Result<Json<ReplayFilter>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(filter) = body.map_err(|e| invalid(e.body_text()))?;
    let hook = existing(&state, &id).await?;
    let conn = connect(&state).await?;
    let replayed = dead_letters::replay(&conn, &state.topology, &hook, &filter).await;
    let _ = conn.close(200, "done".into()).await;
    Ok(Json(json!({"replayed": replayed.map_err(broker_error)?})))
}
