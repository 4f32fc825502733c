//! Delivery logs and execution stats, in Redis, for Logto's `recent-logs` and
//! `executionStats`.
//!
//! One record per attempt goes into the hook's sorted set, scored by time; each write trims
//! the set to the last 24 hours and to [`LOGS_PER_HOOK`] records, and bodies are cut to a
//! bound (see the contracts' `logs`), so one hook's logs stay bounded whatever its traffic.
//! Stats are counters in hourly hashes that expire after a day: `executionStats` sums 24
//! small hashes instead of scanning records, and the same hashes count attempts per duration
//! bucket for the console's p99. Each batch also adds its deliveries and failures to the
//! pipeline's activity buckets (the contracts' `overview`).

use std::collections::HashMap;

use deadpool_redis::redis::{self, AsyncCommands};
use deadpool_redis::Pool;
use hookbus_contracts::ids::HookId;
use hookbus_contracts::keys::RedisKeys;
use hookbus_contracts::logs::{
    ExecutionStats, LogQuery, LogRecord, HOUR_MS, LOGS_PER_HOOK, LOG_WINDOW_MS,
};
use hookbus_contracts::overview::{
    activity_bucket, duration_field, duration_fields, duration_quantile, Tally, DURATION_BUCKETS,
};

use crate::overview::count_activity;
use crate::store::StoreError;

/// One hook's last 24 hours: Logto's counts, and its attempts per duration bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HookStats {
    pub execution: ExecutionStats,
    pub durations: [u64; DURATION_BUCKETS],
}

impl HookStats {
    /// The 99th percentile of attempt durations, as its bucket's bound (ms).
    pub fn p99_ms(&self) -> Option<u64> {
        duration_quantile(&self.durations, 0.99)
    }
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
        let mut activity: HashMap<(i64, Tally), u64> = HashMap::new();
        for record in records {
            let tally = if record.is_success() {
                Tally::Delivered
            } else {
                Tally::Failed
            };
            *activity
                .entry((activity_bucket(record.created_at), tally))
                .or_default() += 1;
        }
        for ((bucket, tally), n) in activity {
            count_activity(&mut pipe, &self.keys, bucket, tally, n);
        }
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
            let mut hours: HashMap<i64, HashMap<String, i64>> = HashMap::new();
            for r in &records {
                let counts = hours.entry(r.created_at.div_euclid(HOUR_MS)).or_default();
                *counts.entry("requests".into()).or_default() += 1;
                if r.is_success() {
                    *counts.entry("successes".into()).or_default() += 1;
                }
                *counts
                    .entry(duration_field(r.payload.duration_ms))
                    .or_default() += 1;
            }
            for (hour, counts) in hours {
                let stats = self.keys.stats(hook, hour);
                for (field, n) in counts {
                    pipe.hincr(&stats, field, n).ignore();
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
            .filter(|r| query.result.as_ref().is_none_or(|v| &r.payload.result == v))
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

    /// Requests, successes and attempt durations of each hook over the last 24 hourly
    /// buckets.
    pub async fn stats(&self, hooks: &[HookId], now_ms: i64) -> Result<Vec<HookStats>, StoreError> {
        if hooks.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.pool.get().await?;
        let hour = now_ms.div_euclid(HOUR_MS);
        let fields: Vec<String> = ["requests".to_owned(), "successes".to_owned()]
            .into_iter()
            .chain(duration_fields())
            .collect();
        let mut pipe = redis::pipe();
        for hook in hooks {
            for h in hour - 23..=hour {
                pipe.cmd("HMGET").arg(self.keys.stats(hook, h)).arg(&fields);
            }
        }
        let buckets: Vec<Vec<Option<u64>>> = pipe.query_async(&mut *conn).await?;
        Ok(buckets
            .chunks(24)
            .map(|hours| {
                let mut stats = HookStats::default();
                for counts in hours {
                    let count = |i: usize| counts.get(i).copied().flatten().unwrap_or(0);
                    stats.execution.request_count += count(0);
                    stats.execution.success_count += count(1);
                    for (i, bucket) in stats.durations.iter_mut().enumerate() {
                        *bucket += count(2 + i);
                    }
                }
                stats
            })
            .collect())
    }
}
