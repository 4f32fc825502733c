//! `GET /api/overview`: the pipeline at a glance for the console (hookbus's, not Logto's):
//! events routed and attempts per 10 s over the last hour, the hook queues' backlog and
//! oldest waiting delivery, and the processes heard from.

use axum::extract::State;
use axum::Json;
use hookbus_contracts::payload::now_ms;
use hookbus_runtime::http::{ApiError, ErrorBody};
use hookbus_runtime::overview::{self, Overview};

use super::{store_unavailable, Shared};

#[utoipa::path(get, path = "/api/overview", tag = "overview",
    responses((status = 200, description = "Activity over the last hour, backlog, processes", body = Overview),
        (status = 401, description = "Missing or wrong token", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn get(State(state): State<Shared>) -> Result<Json<Overview>, ApiError> {
    let overview = overview::read(state.store.pool(), state.store.keys(), now_ms())
        .await
        .map_err(store_unavailable)?;
    Ok(Json(overview))
}
