//! HTTP API conventions shared by the ingest and admin APIs: Logto's error body
//! `{ "code", "message" }`, and bearer-token authentication compared in constant time.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use subtle::ConstantTimeEq;

/// An API error in Logto's shape.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Details some errors carry (Logto's `data`); boxed, as errors travel in `Result`s.
    pub data: Option<Box<serde_json::Value>>,
    /// Seconds to send as `Retry-After`.
    pub retry_after: Option<u32>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            data: None,
            retry_after: None,
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn with_data(mut self, data: serde_json::Value) -> ApiError {
        self.data = Some(Box::new(data));
        self
    }

    pub fn with_retry_after(mut self, seconds: u32) -> ApiError {
        self.retry_after = Some(seconds);
        self
    }

    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service.unavailable",
            message,
        )
    }
}

/// The JSON body of every error answer (Logto's shape).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub data: Option<serde_json::Value>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            code: self.code.to_owned(),
            message: self.message,
            data: self.data.map(|d| *d),
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

/// axum answers a path no route serves (404) and a method its route does not take (405)
/// with an empty body; this gives them the JSON error body of every other error, keeping
/// their `Allow` header. A 404 with a body of its own (`entity.not_exists_with_id`) passes
/// unchanged.
pub async fn json_routing_errors(response: Response) -> Response {
    use axum::body::HttpBody;
    let status = response.status();
    let allow = response.headers().get(header::ALLOW).cloned();
    let error = match status {
        StatusCode::NOT_FOUND => ApiError::new(status, "route.not_found", "no route has this path"),
        StatusCode::METHOD_NOT_ALLOWED => {
            let allowed = allow.as_ref().and_then(|v| v.to_str().ok()).unwrap_or("");
            let message = format!("this route takes {allowed} only");
            ApiError::new(status, "route.method_not_allowed", message)
        }
        _ => return response,
    };
    if response.body().size_hint().exact() != Some(0) {
        return response;
    }
    let mut json = error.into_response();
    if let Some(allow) = allow {
        json.headers_mut().insert(header::ALLOW, allow);
    }
    json
}

/// Declares the `bearer` security scheme every route of an API document requires.
pub fn add_bearer_scheme(openapi: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
    let scheme = SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build());
    openapi
        .components
        .get_or_insert_with(Default::default)
        .add_security_scheme("bearer", scheme);
}

/// The expected bearer token of an API.
#[derive(Clone)]
pub struct BearerToken(pub Arc<str>);

/// What `Authorization: {scheme} <credentials>` carries; empty when the header is missing
/// or has another scheme.
pub fn credentials<'a>(headers: &'a axum::http::HeaderMap, scheme: &str) -> &'a str {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix(scheme)?.strip_prefix(' '))
        .unwrap_or("")
}

/// Middleware: refuses a request whose `Authorization: Bearer` token is missing or wrong.
pub async fn require_bearer(
    State(token): State<BearerToken>,
    req: Request,
    next: Next,
) -> Response {
    let given = credentials(req.headers(), "Bearer");
    if bool::from(given.as_bytes().ct_eq(token.0.as_bytes())) && !token.0.is_empty() {
        next.run(req).await
    } else {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "auth.unauthorized",
            "missing or invalid bearer token",
        )
        .into_response()
    }
}
