//! Delivery logs and execution stats, in Redis, for Logto's `recent-logs` and
//! `executionStats`.
//!
//! One record per attempt goes into the hook's sorted set, scored by time; each write trims
//! the set to the last 24 hours and to [`LOGS_PER_HOOK`] records, and bodies are cut to a
//! bound, so one hook's logs stay bounded whatever its traffic. Stats are counters in
//! hourly hashes that expire after a day: `executionStats` sums 24 small hashes instead of
//! scanning records.

use std::collections::HashMap;

use deadpool_redis::redis::{self, AsyncCommands};
use deadpool_redis::Pool;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::ids::HookId;
use crate::keys::RedisKeys;
use crate::store::StoreError;

pub const LOGS_PER_HOOK: isize = 500;
pub const LOG_WINDOW_MS: i64 = 24 * 3600 * 1000;
/// A request body larger than this is logged as a truncated string.
pub const MAX_LOGGED_REQUEST_BYTES: usize = 16 * 1024;
pub const MAX_LOGGED_RESPONSE_BYTES: usize = 4 * 1024;
const HOUR_MS: i64 = 3600 * 1000;

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
    pub offset: usize,
    pub limit: usize,
}

#[derive(Clone)]
pub struct DeliveryLogs {
    pool: Pool,
    keys: RedisKeys,
}

impl DeliveryLogs {
    pub fn new(pool: Pool, keys: RedisKeys) -> DeliveryLogs {
        DeliveryLogs { pool, keys }
    }

    /// Stores attempts' records (given oldest first) and counts them, in one round trip. Per
    /// hook of the batch:
    /// one `ZADD` of all its records, one trim by age and by count, one expiry, and its
    /// counters added up per hour, so the commands grow with the hooks in a batch, not with
    /// its records. A success also ends its hook's failing streak (see
    /// [`crate::store::HookStore::failing_since`]).
    pub async fn record_all(&self, records: &[LogRecord]) -> Result<(), StoreError> {
        let mut by_hook: HashMap<&HookId, Vec<&LogRecord>> = HashMap::new();
        for record in records {
            by_hook
                .entry(&record.payload.hook_id)
                .or_default()
                .push(record);
        }
        let mut pipe = redis::pipe();
        for (hook, records) in by_hook {
            let logs = self.keys.logs(hook);
            // Only the newest `LOGS_PER_HOOK` of a busy hook's batch would survive the trim:
            // the older ones are counted in the stats but never written.
            let kept = records.len().saturating_sub(LOGS_PER_HOOK as usize);
            let members: Vec<(i64, String)> = records[kept..]
                .iter()
                .map(|r| {
                    (
                        r.created_at,
                        serde_json::to_string(r).expect("a log record always serializes"),
                    )
                })
                .collect();
            let newest = members.iter().map(|(at, _)| *at).max().unwrap_or_default();
            pipe.zadd_multiple(&logs, &members)
                .ignore()
                .zrembyscore(&logs, "-inf", newest - LOG_WINDOW_MS)
                .ignore()
                .zremrangebyrank(&logs, 0, -(LOGS_PER_HOOK + 1))
                .ignore()
                .pexpire(&logs, LOG_WINDOW_MS + HOUR_MS)
                .ignore();
            let mut hours: HashMap<i64, (i64, i64)> = HashMap::new();
            for r in &records {
                let counts = hours.entry(r.created_at.div_euclid(HOUR_MS)).or_default();
                counts.0 += 1;
                counts.1 += i64::from(r.is_success());
            }
            for (hour, (requests, successes)) in hours {
                let stats = self.keys.stats(hook, hour);
                pipe.hincr(&stats, "requests", requests).ignore();
                if successes > 0 {
                    pipe.hincr(&stats, "successes", successes).ignore();
                }
                pipe.pexpire(&stats, LOG_WINDOW_MS + HOUR_MS).ignore();
            }
            if records.iter().any(|r| r.is_success()) {
                pipe.del(self.keys.failing_since(hook)).ignore();
            }
        }
        let mut conn = self.pool.get().await?;
        pipe.query_async::<()>(&mut *conn).await?;
        Ok(())
    }

    /// Records of a hook in the query's window, newest first, and how many matched.
    pub async fn recent(
        &self,
        hook: &HookId,
        query: &LogQuery,
    ) -> Result<(Vec<LogRecord>, usize), StoreError> {
        let mut conn = self.pool.get().await?;
        let raw: Vec<String> = conn
            .zrevrangebyscore(self.keys.logs(hook), query.end_ms, query.start_ms)
            .await?;
        let matching: Vec<LogRecord> = raw
            .iter()
            .filter_map(|r| serde_json::from_str::<LogRecord>(r).ok())
            .filter(|r| query.log_key.as_ref().is_none_or(|k| &r.key == k))
            .collect();
        let total = matching.len();
        Ok((
            matching
                .into_iter()
                .skip(query.offset)
                .take(query.limit)
                .collect(),
            total,
        ))
    }

    /// Requests and successes of each hook over the last 24 hourly buckets.
    pub async fn stats(
        &self,
        hooks: &[HookId],
        now_ms: i64,
    ) -> Result<Vec<ExecutionStats>, StoreError> {
        if hooks.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.pool.get().await?;
        let hour = now_ms.div_euclid(HOUR_MS);
        let mut pipe = redis::pipe();
        for hook in hooks {
            for h in hour - 23..=hour {
                pipe.cmd("HMGET")
                    .arg(self.keys.stats(hook, h))
                    .arg("requests")
                    .arg("successes");
            }
        }
        let buckets: Vec<(Option<u64>, Option<u64>)> = pipe.query_async(&mut *conn).await?;
        Ok(buckets
            .chunks(24)
            .map(|hours| ExecutionStats {
                request_count: hours.iter().map(|(r, _)| r.unwrap_or(0)).sum(),
                success_count: hours.iter().map(|(_, s)| s.unwrap_or(0)).sum(),
            })
            .collect())
    }
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
