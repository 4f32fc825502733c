//! Delivery logs and execution stats as Logto's `recent-logs` and `executionStats` show
//! them: the records and their bounds (the Redis side is the runtime crate's `logs`).
//! Every process that writes or reads logs agrees on these shapes and bounds.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::ids::HookId;

pub const LOGS_PER_HOOK: isize = 500;
pub const LOG_WINDOW_MS: i64 = 24 * 3600 * 1000;
/// A request body larger than this is logged as a truncated string.
pub const MAX_LOGGED_REQUEST_BYTES: usize = 16 * 1024;
pub const MAX_LOGGED_RESPONSE_BYTES: usize = 4 * 1024;
pub const HOUR_MS: i64 = 3600 * 1000;

/// One attempt, in Logto's log shape (plus hookbus's `webhookId`, `attempt`, `durationMs`).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogRecord {
    pub id: String,
    /// `TriggerHook.<event>`.
    pub key: String,
    pub payload: LogPayload,
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogPayload {
    pub key: String,
    /// `Success` or `Error`.
    pub result: String,
    pub hook_id: HookId,
    pub hook_request: HookRequest,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<LoggedResponse>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub webhook_id: String,
    pub attempt: u32,
    pub duration_ms: u64,
}

/// The request body is kept as the JSON text that was sent: logging it costs no parse.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HookRequest {
    #[schema(value_type = Object)]
    pub body: Box<RawValue>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoggedResponse {
    pub status_code: u16,
    pub body: String,
}

impl LogRecord {
    pub fn is_success(&self) -> bool {
        self.payload.result == "Success"
    }
}

/// The request body as logged: the JSON itself when small, else a string of its first bytes.
pub fn logged_body(body: &[u8]) -> Box<RawValue> {
    if body.len() <= MAX_LOGGED_REQUEST_BYTES {
        let raw = std::str::from_utf8(body)
            .ok()
            .and_then(|s| RawValue::from_string(s.to_owned()).ok());
        if let Some(raw) = raw {
            return raw;
        }
    }
    let cut = &body[..body.len().min(MAX_LOGGED_REQUEST_BYTES)];
    let text = format!("{}… ({} bytes)", String::from_utf8_lossy(cut), body.len());
    RawValue::from_string(serde_json::to_string(&text).expect("a string serializes"))
        .expect("a JSON string")
}

/// A response body cut to [`MAX_LOGGED_RESPONSE_BYTES`] on a character boundary.
pub fn logged_response(body: &str) -> String {
    let mut end = body.len().min(MAX_LOGGED_RESPONSE_BYTES);
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    body[..end].to_owned()
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionStats {
    pub request_count: u64,
    pub success_count: u64,
}

/// A `recent-logs` query: a time window, an optional `logKey`, a page.
#[derive(Debug, Clone)]
pub struct LogQuery {
    pub start_ms: i64,
    pub end_ms: i64,
    pub log_key: Option<String>,
    /// `Success` or `Error` only (hookbus's filter, not Logto's).
    pub result: Option<String>,
    pub offset: usize,
    pub limit: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logged_bodies_are_bounded() {
        assert_eq!(logged_body(br#"{"a":1}"#).get(), r#"{"a":1}"#);
        let big = vec![b'x'; MAX_LOGGED_REQUEST_BYTES + 10];
        let cut: serde_json::Value = serde_json::from_str(logged_body(&big).get()).unwrap();
        assert!(
            cut.as_str().unwrap().len() < MAX_LOGGED_REQUEST_BYTES + 40,
            "a big body is cut to a string"
        );
        let response = "é".repeat(MAX_LOGGED_RESPONSE_BYTES);
        assert!(logged_response(&response).len() <= MAX_LOGGED_RESPONSE_BYTES);
    }
}
