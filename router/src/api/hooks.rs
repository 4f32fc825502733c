//! `/api/hooks` and `/api/hooks/:id`: Logto's hook CRUD, and signing-key rotation.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::Json;
use hookbus_contracts::hook::{HookError, HookInput, HookPatch};
use hookbus_contracts::payload::now_ms;
use hookbus_contracts::{Hook, HookId, SigningKey};
use hookbus_runtime::http::ApiError;
use hookbus_runtime::overview;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

use hookbus_runtime::http::ErrorBody;

use super::{
    hook_id, invalid, load_hook, not_found, store_unavailable, truthy, update_error, Page, Shared,
};

fn hook_error(err: HookError) -> ApiError {
    ApiError::bad_request(err.code(), err.to_string())
}

fn json_error(err: JsonRejection) -> ApiError {
    invalid(err.body_text())
}

/// hookbus's figures of a hook beside Logto's `executionStats`, for the console's hooks list
/// (`includeDeliveryStats=true`).
#[derive(Debug, Clone, Copy, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryStats {
    /// 99th percentile of attempt durations over 24 h, as the bound of its bucket (ms): "at
    /// most"; `null` without attempts.
    pub p99_duration_ms: Option<u64>,
    /// Deliveries waiting in the hook's queue, as a deliverer last measured it; `null` when
    /// no deliverer measured it in the last minute.
    pub backlog: Option<u64>,
    /// Estimated age of the oldest waiting delivery (ms).
    pub oldest_waiting_ms: Option<u64>,
}

/// Which figures to add to each hook.
#[derive(Debug, Clone, Copy)]
struct Figures {
    execution: bool,
    delivery: bool,
}

impl Figures {
    fn from_query(query: &HashMap<String, String>) -> Figures {
        Figures {
            execution: truthy(query, "includeExecutionStats"),
            delivery: truthy(query, "includeDeliveryStats"),
        }
    }
}

/// Hooks as the API shows them, with `executionStats` and `deliveryStats` when asked for.
async fn shown(state: &Shared, hooks: &[Hook], figures: Figures) -> Result<Vec<Value>, ApiError> {
    let mut shown: Vec<Value> = hooks
        .iter()
        .map(|h| serde_json::to_value(h.for_api()).expect("a hook always serializes"))
        .collect();
    if !figures.execution && !figures.delivery {
        return Ok(shown);
    }
    let ids: Vec<HookId> = hooks.iter().map(|h| h.id.clone()).collect();
    let now = now_ms();
    let stats = state
        .logs
        .stats(&ids, now)
        .await
        .map_err(store_unavailable)?;
    let readings = if figures.delivery {
        overview::readings(state.store.pool(), state.store.keys(), &ids, now)
            .await
            .map_err(store_unavailable)?
    } else {
        Vec::new()
    };
    for (i, (value, stats)) in shown.iter_mut().zip(stats).enumerate() {
        if figures.execution {
            value["executionStats"] =
                serde_json::to_value(stats.execution).expect("stats serialize");
        }
        if figures.delivery {
            let reading = readings.get(i).copied().flatten();
            let delivery = DeliveryStats {
                p99_duration_ms: stats.p99_ms(),
                backlog: reading.map(|r| r.messages),
                oldest_waiting_ms: reading.map(|r| r.oldest_age_at(now)),
            };
            value["deliveryStats"] = serde_json::to_value(delivery).expect("stats serialize");
        }
    }
    Ok(shown)
}

#[utoipa::path(get, path = "/api/hooks", tag = "hooks",
    params(("page" = Option<usize>, Query, description = "Page number, from 1"),
        ("page_size" = Option<usize>, Query, description = "Page size (default 20, at most 100)"),
        ("includeExecutionStats" = Option<bool>, Query, description = "Add 24 h executionStats"),
        ("includeDeliveryStats" = Option<bool>, Query, description = "Add deliveryStats (p99 attempt duration over 24 h, backlog, oldest waiting delivery); hookbus's, not Logto's"),
        ("q" = Option<String>, Query, description = "Only hooks whose name or URL contains this (case-insensitive); hookbus's, not Logto's")),
    responses((status = 200, description = "Hooks, newest first; paginated lists set Total-Number and Link", body = Vec<Hook>),
        (status = 400, body = ErrorBody), (status = 401, description = "Missing or wrong token", body = ErrorBody)))]
pub async fn list(
    State(state): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
    uri: Uri,
) -> Result<(HeaderMap, Json<Vec<Value>>), ApiError> {
    let page = Page::from_query(&query)?;
    let search = query
        .get("q")
        .map(|q| q.trim().to_lowercase())
        .filter(|q| !q.is_empty());
    let (hooks, headers) = match (search, page) {
        (Some(needle), page) => {
            let found = search_hooks(&state, &needle);
            let total = found.len();
            let (skip, take) = page.map_or((0, total), |p| (p.offset(), p.size));
            let hooks = found.into_iter().skip(skip).take(take);
            let hooks = hooks.map(|hook| hook.as_ref().clone()).collect();
            let headers = page.map_or_else(HeaderMap::new, |p| p.headers(total, &uri));
            (hooks, headers)
        }
        (None, Some(page)) => {
            let (hooks, total) = state
                .store
                .page(page.offset(), page.size)
                .await
                .map_err(store_unavailable)?;
            (hooks, page.headers(total, &uri))
        }
        (None, None) => (
            state.store.load_all().await.map_err(store_unavailable)?,
            HeaderMap::new(),
        ),
    };
    let body = shown(&state, &hooks, Figures::from_query(&query)).await?;
    Ok((headers, Json(body)))
}

/// Hooks whose name or URL contains `needle` (lowercase), newest first. Searched in this
/// router's in-memory snapshot of every hook: a scan of 10,000 hooks takes about a
/// millisecond and no Redis round trip, and the snapshot is current (this router reloads it
/// before answering a change, and polls for other routers' changes every 200 ms).
fn search_hooks(state: &Shared, needle: &str) -> Vec<Arc<Hook>> {
    let snapshot = state.cache.snapshot();
    let mut found: Vec<Arc<Hook>> = snapshot
        .hooks()
        .filter(|hook| {
            hook.name.to_lowercase().contains(needle)
                || hook.config.url.to_lowercase().contains(needle)
        })
        .cloned()
        .collect();
    found.sort_by(|a, b| (b.created_at, b.id.as_str()).cmp(&(a.created_at, a.id.as_str())));
    found
}

#[utoipa::path(post, path = "/api/hooks", tag = "hooks", request_body = HookInput,
    responses((status = 201, description = "The hook, with its generated signingKey", body = Hook),
        (status = 400, description = "Invalid input (code hook.missing_events, guard.invalid_input)", body = ErrorBody), (status = 401, description = "Missing or wrong token", body = ErrorBody)))]
pub async fn create(
    State(state): State<Shared>,
    body: Result<Json<HookInput>, JsonRejection>,
) -> Result<(StatusCode, Json<Hook>), ApiError> {
    let Json(input) = body.map_err(json_error)?;
    state.writable()?;
    let hook = input.validate(&state.policy).map_err(hook_error)?;
    state.store.insert(&hook).await.map_err(store_unavailable)?;
    state.apply_everywhere().await;
    tracing::info!(hook_id = %hook.id, events = ?hook.events, "hook created");
    Ok((StatusCode::CREATED, Json(hook.for_api())))
}

#[utoipa::path(get, path = "/api/hooks/{id}", tag = "hooks",
    params(("id" = String, Path), ("includeExecutionStats" = Option<bool>, Query), ("includeDeliveryStats" = Option<bool>, Query)),
    responses((status = 200, body = Hook), (status = 404, description = "No such hook", body = ErrorBody), (status = 401, description = "Missing or wrong token", body = ErrorBody)))]
pub async fn get_one(
    State(state): State<Shared>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let hook = load_hook(&state, &id).await?;
    let mut shown = shown(&state, &[hook], Figures::from_query(&query)).await?;
    Ok(Json(shown.remove(0)))
}

#[utoipa::path(patch, path = "/api/hooks/{id}", tag = "hooks", params(("id" = String, Path)),
    request_body = HookPatch,
    responses((status = 200, description = "The updated hook (config is replaced whole)", body = Hook),
        (status = 400, body = ErrorBody), (status = 404, description = "No such hook", body = ErrorBody), (status = 401, description = "Missing or wrong token", body = ErrorBody)))]
pub async fn update(
    State(state): State<Shared>,
    Path(id): Path<String>,
    body: Result<Json<HookPatch>, JsonRejection>,
) -> Result<Json<Hook>, ApiError> {
    let Json(patch) = body.map_err(json_error)?;
    state.writable()?;
    if patch.enabled == Some(true) {
        let hook = load_hook(&state, &id).await?.id;
        state.wake(&hook).await?;
    }
    let hook = state
        .store
        .update(&hook_id(&id)?, |hook| {
            patch.apply(hook, &state.policy).map_err(hook_error)
        })
        .await
        .map_err(|e| update_error(&id, e))?;
    state.apply_everywhere().await;
    tracing::info!(hook_id = %hook.id, enabled = hook.enabled, "hook updated");
    Ok(Json(hook.for_api()))
}

#[utoipa::path(patch, path = "/api/hooks/{id}/signing-key", tag = "hooks", params(("id" = String, Path)),
    responses((status = 200, description = "The hook with a new signingKey; the old one keeps signing webhook-signature for the overlap", body = Hook), (status = 404, description = "No such hook", body = ErrorBody), (status = 401, description = "Missing or wrong token", body = ErrorBody)))]
pub async fn rotate_key(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Result<Json<Hook>, ApiError> {
    state.writable()?;
    let overlap = state.key_overlap;
    let hook = state
        .store
        .update(&hook_id(&id)?, |hook| {
            hook.rotate_key(SigningKey::generate(), overlap, now_ms());
            Ok::<(), ApiError>(())
        })
        .await
        .map_err(|e| update_error(&id, e))?;
    state.apply_everywhere().await;
    tracing::info!(hook_id = %hook.id, overlap = ?overlap, "signing key rotated");
    Ok(Json(hook.for_api()))
}

/// Deletes the hook, its logs, and (shortly after) its queue and dead letters: pending
/// deliveries of a deleted hook are dropped, never sent to its old URL.
#[utoipa::path(delete, path = "/api/hooks/{id}", tag = "hooks", params(("id" = String, Path)),
    responses((status = 204, description = "Deleted, with its pending deliveries and dead letters"), (status = 404, description = "No such hook", body = ErrorBody), (status = 401, description = "Missing or wrong token", body = ErrorBody)))]
pub async fn delete(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let hook = hook_id(&id)?;
    state.writable()?;
    if !state.store.delete(&hook).await.map_err(store_unavailable)? {
        return Err(not_found(&id));
    }
    state.apply_everywhere().await;
    // Its queues go a little later (`deleted_queues`).
    tracing::info!(hook_id = %hook, "hook deleted");
    Ok(StatusCode::NO_CONTENT)
}
