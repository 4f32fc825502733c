//! Portal links on the admin API (`POST /api/hooks/:id/portal-links`), and what guards the
//! portal's API: every `/api/portal/hooks/:id/...` route answers only a request whose
//! `Authorization: Portal <token>` carries a valid link to that very hook (401 for a
//! missing, altered or expired link; 403 for another hook's). The token travels in a header,
//! never a cookie, so that no other site can make a browser use it.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use hookbus_contracts::payload::now_ms;
use hookbus_contracts::EventName;
use hookbus_runtime::http::{credentials, ApiError, ErrorBody};
use serde::{Deserialize, Serialize};

use super::{invalid, load_hook, testing, Shared};
use crate::portal::PortalError;

/// A link lasts a day unless asked otherwise, and a month at most: a link cannot be revoked
/// one by one (only by changing `HOOKBUS_PORTAL_SECRET` or deleting the hook).
const DEFAULT_LIFETIME_S: u64 = 24 * 3600;
const MAX_LIFETIME_S: u64 = 30 * 24 * 3600;

/// The optional body of `POST /api/hooks/:id/portal-links`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortalLinkRequest {
    /// Seconds the link stays valid: 86400 (a day) by default, at most 2592000 (30 days).
    expires_in: Option<u64>,
}

/// A minted portal link.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PortalLink {
    /// `/portal/{token}`, on the router's own address (behind a proxy, on its public one).
    url: String,
    /// What the portal page sends as `Authorization: Portal {token}`.
    token: String,
    hook_id: String,
    /// Epoch ms after which the link is refused.
    expires_at: i64,
}

#[utoipa::path(post, path = "/api/hooks/{id}/portal-links", tag = "portal",
    params(("id" = String, Path)), request_body(content = Option<PortalLinkRequest>),
    responses((status = 201, description = "A link to a page scoped to this hook", body = PortalLink),
        (status = 400, body = ErrorBody), (status = 404, description = "No such hook", body = ErrorBody), (status = 401, description = "Missing or wrong token", body = ErrorBody)))]
pub async fn mint(
    State(state): State<Shared>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<PortalLink>), ApiError> {
    let request: PortalLinkRequest = if body.iter().all(u8::is_ascii_whitespace) {
        PortalLinkRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| invalid(e.to_string()))?
    };
    let lifetime = request.expires_in.unwrap_or(DEFAULT_LIFETIME_S);
    if !(1..=MAX_LIFETIME_S).contains(&lifetime) {
        return Err(invalid(format!(
            "`expiresIn` must be between 1 and {MAX_LIFETIME_S} seconds"
        )));
    }
    let hook = load_hook(&state, &id).await?;
    let expires_at = now_ms() + lifetime as i64 * 1000;
    let token = state.portal.mint(&hook.id, expires_at);
    tracing::info!(hook_id = %hook.id, expires_at, "portal link minted");
    let link = PortalLink {
        url: format!("/portal/{token}"),
        token,
        hook_id: hook.id.as_str().to_owned(),
        expires_at,
    };
    Ok((StatusCode::CREATED, Json(link)))
}

/// Middleware of the portal's routes: the link must be valid and for the hook in the path.
pub async fn require_portal(
    State(state): State<Shared>,
    Path(params): Path<HashMap<String, String>>,
    req: Request,
    next: Next,
) -> Response {
    let token = credentials(req.headers(), "Portal");
    let granted = match state.portal.verify(token, now_ms()) {
        Ok(hook) => hook,
        Err(err) => {
            let code = match err {
                PortalError::Expired => "portal.link_expired",
                PortalError::Malformed | PortalError::BadSignature => "portal.link_invalid",
            };
            return ApiError::new(StatusCode::UNAUTHORIZED, code, err.to_string()).into_response();
        }
    };
    if params.get("id").map(String::as_str) != Some(granted.as_str()) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "portal.other_hook",
            "this portal link is for another hook",
        )
        .into_response();
    }
    next.run(req).await
}

/// The portal's test request: which events; always sent to the hook's own endpoint, so that
/// a link cannot make the router post to an address of its holder's choosing.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortalTest {
    events: Vec<EventName>,
}

/// `POST /api/portal/hooks/:id/test`.
pub async fn test(
    State(state): State<Shared>,
    Path(id): Path<String>,
    body: Result<Json<PortalTest>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let Json(request) = body.map_err(|e| invalid(e.body_text()))?;
    let hook = load_hook(&state, &id).await?;
    let config = hook.config.clone();
    testing::send_tests(&state, &hook, request.events, config).await
}
