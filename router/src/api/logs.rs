//! `GET /api/hooks/:id/recent-logs`: one record per delivery attempt, newest first, over
//! the last 24 hours by default, filtered by `logKey`, `start_time`, `end_time` (epoch ms),
//! and hookbus's `result` (`Success` or `Error`).

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Uri};
use axum::Json;
use hookbus_contracts::logs::{LogQuery, LogRecord, LOG_WINDOW_MS};
use hookbus_contracts::payload::now_ms;
use hookbus_runtime::http::ApiError;

use hookbus_runtime::http::ErrorBody;

use super::{invalid, load_hook, store_unavailable, Page, Shared};

#[utoipa::path(get, path = "/api/hooks/{id}/recent-logs", tag = "hooks",
    params(("id" = String, Path), ("page" = Option<usize>, Query, description = "Page number, from 1"),
        ("page_size" = Option<usize>, Query, description = "Page size (default 20, at most 100)"),
        ("logKey" = Option<String>, Query, description = "TriggerHook.<event>"),
        ("result" = Option<String>, Query, description = "Success or Error (hookbus's, not Logto's)"),
        ("start_time" = Option<i64>, Query, description = "Epoch ms (default: 24 h ago)"),
        ("end_time" = Option<i64>, Query, description = "Epoch ms (default: now)")),
    responses((status = 200, description = "One record per attempt, newest first; Total-Number and Link set", body = Vec<LogRecord>),
        (status = 400, body = ErrorBody), (status = 404, description = "No such hook", body = ErrorBody), (status = 401, description = "Missing or wrong token", body = ErrorBody)))]
pub async fn recent(
    State(state): State<Shared>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    uri: Uri,
) -> Result<(HeaderMap, Json<Vec<LogRecord>>), ApiError> {
    let hook = load_hook(&state, &id).await?.id;
    let page = Page::from_query(&query)?.unwrap_or(Page {
        number: 1,
        size: Page::DEFAULT_SIZE,
    });
    let now = now_ms();
    let time = |key: &str, default: i64| {
        query
            .get(key)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| invalid(format!("`{key}` must be epoch milliseconds")))
            })
            .unwrap_or(Ok(default))
    };
    let log_query = LogQuery {
        start_ms: time("start_time", now - LOG_WINDOW_MS)?,
        end_ms: time("end_time", now)?,
        log_key: query.get("logKey").cloned(),
        result: match query.get("result").map(String::as_str) {
            None | Some("") => None,
            Some(r @ ("Success" | "Error")) => Some(r.to_owned()),
            Some(_) => return Err(invalid("`result` is `Success` or `Error`")),
        },
        offset: page.offset(),
        limit: page.size,
    };
    let (records, total) = state
        .logs
        .recent(&hook, &log_query)
        .await
        .map_err(store_unavailable)?;
    Ok((page.headers(total, &uri), Json(records)))
}
