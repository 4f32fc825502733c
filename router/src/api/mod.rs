//! The admin API on the router: Logto's hooks Management API under `/api/hooks`, plus
//! dead letters. Shapes, status codes and error codes follow Logto
//! (`docs/logto/wire.md`); every route needs `Authorization: Bearer
//! $HOOKBUS_ADMIN_TOKEN`.
//!
//! - [`hooks`]: list, create, get, patch, delete, rotate the signing key.
//! - [`logs`]: `recent-logs`; [`testing`]: `POST /api/hooks/:id/test`.
//! - [`dead_letters`]: list and replay a hook's dead letters.
//! - [`store`]: restore or accept a hook store that came back empty or older.
//! - [`portal`]: mint portal links, and the portal's API: the routes of one hook under
//!   `/api/portal/hooks/:id`, for the holder of a link to that hook instead of the token.
//! - [`overview`]: the console's overview: activity, backlog, processes.
//! - [`openapi`]: the document of the admin routes, at `GET /api/openapi.json`.

mod dead_letters;
mod hooks;
mod logs;
pub mod openapi;
mod overview;
mod portal;
mod store;
mod testing;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::middleware::from_fn_with_state;
use axum::routing::{get, patch, post};
use axum::Router;
use hookbus_contracts::target::TargetPolicy;
use hookbus_contracts::topology::Topology;
use hookbus_contracts::{Hook, HookId};
use hookbus_runtime::http::{require_bearer, ApiError, BearerToken};
use hookbus_runtime::logs::DeliveryLogs;
use hookbus_runtime::store::{HookCache, HookStore, StoreError, UpdateError};
use hookbus_send::Sender;

use crate::portal::PortalKey;

/// What the admin API needs, shared by its handlers.
pub struct AdminState {
    pub store: HookStore,
    /// This router's routing cache: refreshed before a change is acknowledged; every other
    /// router confirms it has loaded the change too (see `lease`), so an event published
    /// after the answer is routed by the new configuration whichever router routes it.
    pub cache: HookCache,
    pub logs: DeliveryLogs,
    pub policy: TargetPolicy,
    pub topology: Topology,
    pub amqp_url: String,
    /// How long a rotated signing key keeps signing beside the new one.
    pub key_overlap: Duration,
    /// Routers' lease: the longest a change waits for a router that stopped answering.
    pub lease: Duration,
    /// Sends `POST /test` payloads, through the same guarded client as deliveries.
    pub sender: Sender,
    /// Signs and checks portal links.
    pub portal: PortalKey,
    /// Spans of dead-letter replays.
    pub tracing: hookbus_runtime::telemetry::Tracing,
    /// `None` when activity is not tracked.
    pub activity: Option<Arc<crate::activity::Activator>>,
}

pub type Shared = Arc<AdminState>;

/// The admin routes; `token: None` (only with `HOOKBUS_ADMIN_OPEN=true`) serves them open.
/// The portal's routes are the same handlers for one hook, behind a portal link instead of
/// the token (open admin or not).
pub fn routes(state: AdminState, token: Option<Arc<str>>) -> Router {
    let state = Arc::new(state);
    let api = Router::new()
        .route("/api/hooks", get(hooks::list).post(hooks::create))
        .route(
            "/api/hooks/{id}",
            get(hooks::get_one)
                .patch(hooks::update)
                .delete(hooks::delete),
        )
        .route("/api/hooks/{id}/signing-key", patch(hooks::rotate_key))
        .route("/api/hooks/{id}/recent-logs", get(logs::recent))
        .route("/api/hooks/{id}/test", post(testing::test))
        .route("/api/hooks/{id}/dead-letters", get(dead_letters::list))
        .route(
            "/api/hooks/{id}/dead-letters/replay",
            post(dead_letters::replay),
        )
        .route("/api/events/dead-letters", get(dead_letters::list_events))
        .route(
            "/api/events/dead-letters/replay",
            post(dead_letters::replay_events),
        )
        .route("/api/hook-store/restore", post(store::restore))
        .route("/api/hook-store/accept", post(store::accept))
        .route("/api/hooks/{id}/portal-links", post(portal::mint))
        .route("/api/overview", get(overview::get))
        .with_state(state.clone());
    let api = match token {
        Some(token) => api.route_layer(from_fn_with_state(BearerToken(token), require_bearer)),
        None => api,
    };
    let portal = Router::new()
        .route("/api/portal/hooks/{id}", get(hooks::get_one))
        .route("/api/portal/hooks/{id}/recent-logs", get(logs::recent))
        .route("/api/portal/hooks/{id}/test", post(portal::test))
        .route(
            "/api/portal/hooks/{id}/dead-letters",
            get(dead_letters::list),
        )
        .route(
            "/api/portal/hooks/{id}/dead-letters/replay",
            post(dead_letters::replay),
        )
        .route_layer(from_fn_with_state(state.clone(), portal::require_portal))
        .with_state(state);
    api.merge(portal).route(
        "/api/openapi.json",
        get(|| async { axum::Json(<openapi::AdminApi as utoipa::OpenApi>::openapi()) }),
    )
}

impl AdminState {
    /// Makes every router route by the configuration just written before the change is
    /// answered: this one reloads, the change is announced to the others, and the answer
    /// waits until each live router's lease states it (or has run out).
    async fn apply_everywhere(&self) {
        if let Err(err) = self.cache.reload(&self.store).await {
            tracing::warn!(error = %err, "change stored; this router will see it at its next refresh");
        }
        let version = match self.store.announce().await {
            Ok(version) => version,
            Err(err) => {
                tracing::warn!(error = %err, "change stored but not announced; routers poll for it");
                self.cache.snapshot().version
            }
        };
        if !crate::lease::await_applied(&self.store, version, self.lease).await {
            tracing::warn!(
                version,
                "a router did not confirm the change within its lease; it has stopped routing"
            );
        }
    }

    /// Refuses a hook change while the store is older than the configuration routed by: it
    /// would be applied to a store that lost hooks, and the version it bumps would hide the
    /// regression.
    fn writable(&self) -> Result<(), ApiError> {
        if self.cache.is_regressed() {
            return Err(ApiError::unavailable(
                "the hook store came back older than the configuration hookbus routes by; \
                 restore it (POST /api/hook-store/restore) or accept it \
                 (POST /api/hook-store/accept) first; nothing was changed",
            ));
        }
        Ok(())
    }

    /// Makes an enabled hook active, so that its deliverers drain what waited in its queue
    /// while it was disabled (an empty queue is deleted by the next sweep).
    async fn wake(&self, hook: &HookId) -> Result<(), ApiError> {
        let Some(activity) = &self.activity else {
            return Ok(());
        };
        activity
            .store()
            .hold(&[(hook, Duration::ZERO)])
            .await
            .map_err(store_unavailable)
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "entity.not_exists_with_id",
        format!("The entity with id `{id}` does not exist."),
    )
}

fn store_unavailable(err: StoreError) -> ApiError {
    tracing::warn!(error = %err, "hook store unavailable");
    ApiError::unavailable("the hook store is unavailable; nothing was changed")
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("guard.invalid_input", message)
}

fn update_error(id: &str, err: UpdateError<ApiError>) -> ApiError {
    match err {
        UpdateError::NotFound => not_found(id),
        UpdateError::Refused(err) => err,
        UpdateError::Store(err) => store_unavailable(err),
    }
}

/// A hook id from the path; one that cannot exist is simply not found.
fn hook_id(id: &str) -> Result<HookId, ApiError> {
    HookId::parse(id).ok_or_else(|| not_found(id))
}

/// The hook the path names, or Logto's 404.
async fn load_hook(state: &AdminState, id: &str) -> Result<Hook, ApiError> {
    state
        .store
        .get(&hook_id(id)?)
        .await
        .map_err(store_unavailable)?
        .ok_or_else(|| not_found(id))
}

/// Logto's truthy query values (`includeExecutionStats=true|1|yes`).
fn truthy(query: &HashMap<String, String>, key: &str) -> bool {
    query
        .get(key)
        .is_some_and(|v| matches!(v.as_str(), "" | "1" | "true" | "yes" | "y"))
}

/// A page requested with Logto's `page` (from 1) and `page_size` (default 20, at most 100).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Page {
    number: usize,
    size: usize,
}

impl Page {
    const DEFAULT_SIZE: usize = 20;
    const MAX_SIZE: usize = 100;

    /// `None` when the query asks for no page.
    fn from_query(query: &HashMap<String, String>) -> Result<Option<Page>, ApiError> {
        if !query.contains_key("page") && !query.contains_key("page_size") {
            return Ok(None);
        }
        let number = parse_positive(query, "page")?.unwrap_or(1);
        let size = parse_positive(query, "page_size")?.unwrap_or(Self::DEFAULT_SIZE);
        if size > Self::MAX_SIZE {
            return Err(invalid(format!(
                "`page_size` must be at most {}",
                Self::MAX_SIZE
            )));
        }
        Ok(Some(Page { number, size }))
    }

    fn offset(self) -> usize {
        (self.number - 1) * self.size
    }

    /// `Total-Number` and `Link` (first, prev, next, last), as Logto's paginated lists.
    fn headers(self, total: usize, uri: &Uri) -> HeaderMap {
        let last = total.div_ceil(self.size).max(1);
        let link = |page: usize, rel: &str| {
            format!("<{}>; rel=\"{rel}\"", with_page(uri, page, self.size))
        };
        let mut links = vec![link(1, "first")];
        if self.number > 1 {
            links.push(link(self.number - 1, "prev"));
        }
        if self.number < last {
            links.push(link(self.number + 1, "next"));
        }
        links.push(link(last, "last"));
        let mut headers = HeaderMap::new();
        headers.insert("total-number", HeaderValue::from(total));
        if let Ok(v) = HeaderValue::from_str(&links.join(", ")) {
            headers.insert("link", v);
        }
        headers
    }
}

fn parse_positive(query: &HashMap<String, String>, key: &str) -> Result<Option<usize>, ApiError> {
    query
        .get(key)
        .map(|v| {
            v.parse::<usize>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| invalid(format!("`{key}` must be a positive integer")))
        })
        .transpose()
}

/// `uri` with its `page` and `page_size` replaced.
fn with_page(uri: &Uri, page: usize, size: usize) -> String {
    let kept: Vec<&str> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty() && !kv.starts_with("page=") && !kv.starts_with("page_size="))
        .collect();
    let mut query = kept.join("&");
    if !query.is_empty() {
        query.push('&');
    }
    format!("{}?{query}page={page}&page_size={size}", uri.path())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn pages_follow_logto() {
        assert_eq!(Page::from_query(&query(&[])).unwrap(), None);
        assert_eq!(
            Page::from_query(&query(&[("page", "2")])).unwrap(),
            Some(Page {
                number: 2,
                size: 20
            })
        );
        assert!(Page::from_query(&query(&[("page_size", "101")])).is_err());
        assert!(Page::from_query(&query(&[("page", "0")])).is_err());
        assert!(Page::from_query(&query(&[("page", "x")])).is_err());
    }

    #[test]
    fn link_headers_name_first_prev_next_last() {
        let uri: Uri = "/api/hooks?includeExecutionStats=1&page=2&page_size=2"
            .parse()
            .unwrap();
        let headers = Page { number: 2, size: 2 }.headers(5, &uri);
        assert_eq!(headers["total-number"], "5");
        assert_eq!(
            headers["link"],
            concat!(
                "</api/hooks?includeExecutionStats=1&page=1&page_size=2>; rel=\"first\", ",
                "</api/hooks?includeExecutionStats=1&page=1&page_size=2>; rel=\"prev\", ",
                "</api/hooks?includeExecutionStats=1&page=3&page_size=2>; rel=\"next\", ",
                "</api/hooks?includeExecutionStats=1&page=3&page_size=2>; rel=\"last\""
            )
        );
    }
}
