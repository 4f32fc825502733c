//! `POST /api/hook-store/restore` and `POST /api/hook-store/accept`: the way out after the
//! hook store came back empty or older than the configuration the processes route by (a
//! Redis restarted without persistence, a failover to a lagging replica, a restore from a
//! backup). Until one of them is called, routing goes on by the last good snapshot and hook
//! changes are refused (see `StoreCheck`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use hookbus_runtime::http::{ApiError, ErrorBody};
use serde_json::{json, Value};

use super::{store_unavailable, Shared};

fn consistent() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "hook_store.consistent",
        "the hook store is consistent with this router's configuration; nothing to do",
    )
}

/// Writes this router's last good snapshot back (hooks missing from the store are added),
/// under a version above everything the processes knew; every process reloads it.
#[utoipa::path(post, path = "/api/hook-store/restore", tag = "hook store",
    responses((status = 200, description = "`{restored, version}`: hooks in the snapshot written back, and the new version"),
        (status = 409, description = "The store has not regressed", body = ErrorBody), (status = 401, description = "Missing or wrong token", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn restore(State(state): State<Shared>) -> Result<Json<Value>, ApiError> {
    if !state.cache.is_regressed() {
        return Err(consistent());
    }
    let snapshot = state.cache.snapshot();
    let version = state
        .store
        .restore(&snapshot, state.cache.epoch().as_deref())
        .await
        .map_err(store_unavailable)?;
    state.apply_everywhere().await;
    let restored = snapshot.hooks().count();
    tracing::warn!(
        restored,
        version,
        "hook store restored from the last good snapshot"
    );
    Ok(Json(json!({"restored": restored, "version": version})))
}

/// Takes the store as it is now for the truth: hooks it lost stay lost, and events for
/// them are no longer routed.
#[utoipa::path(post, path = "/api/hook-store/accept", tag = "hook store",
    responses((status = 200, description = "`{version}`: the version every process now loads"),
        (status = 409, description = "The store has not regressed", body = ErrorBody), (status = 401, description = "Missing or wrong token", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn accept(State(state): State<Shared>) -> Result<Json<Value>, ApiError> {
    if !state.cache.is_regressed() {
        return Err(consistent());
    }
    let version = state
        .store
        .accept(state.cache.snapshot().version)
        .await
        .map_err(store_unavailable)?;
    state.apply_everywhere().await;
    tracing::warn!(version, "hook store accepted as it is");
    Ok(Json(json!({"version": version})))
}
