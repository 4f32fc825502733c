//! The Redis side of the console's overview (shapes and arithmetic are the contracts'
//! `overview`): every process writes what only it knows, and the router's API reads the
//! sum, so that the overview shows the whole pipeline whichever router answers.
//!
//! - Activity: deliverers count attempts with their delivery logs (`logs`); a router counts
//!   events routed in memory and adds them to the shared bucket every second
//!   ([`RoutedCounter`]), so routing costs no Redis round trip per event.
//! - Queue readings: deliverers write the depths they measure for their metrics
//!   ([`write_readings`]).
//! - Presence: each process announces itself and its readiness every five seconds
//!   ([`announce`]) and withdraws on a clean shutdown.
//!
//! All of it is best effort: Redis down costs the overview its figures, never a delivery.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use deadpool_redis::redis::{self, AsyncCommands};
use deadpool_redis::Pool;
use hookbus_contracts::ids::HookId;
use hookbus_contracts::keys::RedisKeys;
use hookbus_contracts::overview::{
    activity_bucket, activity_buckets, ActivityPoint, Presence, QueueReading, Tally,
    ACTIVITY_BUCKET_MS, ACTIVITY_WINDOW_MS, PRESENCE_EVERY_MS, PRESENCE_FORGET_MS,
    READING_FRESH_MS,
};
use hookbus_contracts::payload::now_ms;
use tokio_util::sync::CancellationToken;

use crate::health::Readiness;
use crate::store::StoreError;

/// Adds `n` to an activity bucket, which expires once it has left the window.
pub(crate) fn count_activity(
    pipe: &mut redis::Pipeline,
    keys: &RedisKeys,
    bucket: i64,
    tally: Tally,
    n: u64,
) {
    let key = keys.activity(bucket);
    pipe.hincr(&key, tally.field(), n)
        .ignore()
        .pexpire(&key, ACTIVITY_WINDOW_MS + ACTIVITY_BUCKET_MS)
        .ignore();
}

/// Events routed by this process and not yet added to the shared activity.
#[derive(Clone, Default)]
pub struct RoutedCounter(Arc<AtomicU64>);

impl RoutedCounter {
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// Adds the count to the current bucket every second until `shutdown`, and once more on
    /// the way out. A failed write keeps the count for the next one.
    pub async fn flush_every_second(
        self,
        pool: Pool,
        keys: RedisKeys,
        shutdown: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            let last = tokio::select! {
                _ = shutdown.cancelled() => true,
                _ = tick.tick() => false,
            };
            let n = self.0.swap(0, Ordering::Relaxed);
            if n > 0 {
                let mut pipe = redis::pipe();
                count_activity(
                    &mut pipe,
                    &keys,
                    activity_bucket(now_ms()),
                    Tally::Routed,
                    n,
                );
                if let Err(err) = query(&pool, &pipe).await {
                    tracing::debug!(error = %err, "activity not counted yet");
                    self.0.fetch_add(n, Ordering::Relaxed);
                }
            }
            if last {
                return;
            }
        }
    }
}

async fn query(pool: &Pool, pipe: &redis::Pipeline) -> Result<(), StoreError> {
    let mut conn = pool.get().await?;
    pipe.query_async::<()>(&mut *conn).await?;
    Ok(())
}

/// Writes queue readings of hooks, replacing the previous ones of those hooks. The hash
/// expires when no deliverer writes it any more.
pub async fn write_readings(
    pool: &Pool,
    keys: &RedisKeys,
    readings: &[(HookId, QueueReading)],
) -> Result<(), StoreError> {
    if readings.is_empty() {
        return Ok(());
    }
    let fields: Vec<(&str, String)> = readings
        .iter()
        .map(|(hook, reading)| {
            let json = serde_json::to_string(reading).expect("a reading serializes");
            (hook.as_str(), json)
        })
        .collect();
    let mut pipe = redis::pipe();
    pipe.hset_multiple(keys.backlog(), &fields)
        .ignore()
        .pexpire(keys.backlog(), READING_FRESH_MS)
        .ignore();
    query(pool, &pipe).await
}

/// The fresh readings of these hooks, in order (`None`: not measured lately).
pub async fn readings(
    pool: &Pool,
    keys: &RedisKeys,
    hooks: &[HookId],
    now: i64,
) -> Result<Vec<Option<QueueReading>>, StoreError> {
    if hooks.is_empty() {
        return Ok(Vec::new());
    }
    let mut conn = pool.get().await?;
    let fields: Vec<&str> = hooks.iter().map(HookId::as_str).collect();
    let raw: Vec<Option<String>> = redis::cmd("HMGET")
        .arg(keys.backlog())
        .arg(&fields)
        .query_async(&mut *conn)
        .await?;
    Ok(raw
        .into_iter()
        .map(|r| {
            r.and_then(|r| serde_json::from_str::<QueueReading>(&r).ok())
                .filter(|r| r.is_fresh(now))
        })
        .collect())
}

/// Every hook queue's backlog, summed from the fresh readings.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Backlog {
    /// Deliveries waiting in hook queues (retries waiting in a tier are not counted).
    pub messages: u64,
    /// Age of the oldest waiting delivery (estimated), ms; 0 when nothing waits.
    pub oldest_waiting_ms: u64,
    /// The hook it waits for.
    pub oldest_hook_id: Option<String>,
    /// Hooks with something waiting.
    pub hooks_waiting: usize,
    /// Hooks measured lately (deliverers measure at most `HOOKBUS_PER_HOOK_METRICS`).
    pub hooks_measured: usize,
}

/// The pipeline at a glance, as `GET /api/overview` answers.
#[derive(Debug, Clone, Default, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Overview {
    pub bucket_seconds: i64,
    /// The last hour, oldest bucket first; the last one is still filling.
    pub activity: Vec<ActivityPoint>,
    pub backlog: Backlog,
    /// Processes heard from in the last hour; `live` says who answered lately.
    pub processes: Vec<ProcessShown>,
}

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProcessShown {
    #[serde(flatten)]
    pub presence: Presence,
    pub live: bool,
}

/// Reads the overview at `now`.
pub async fn read(pool: &Pool, keys: &RedisKeys, now: i64) -> Result<Overview, StoreError> {
    let mut conn = pool.get().await?;
    let buckets: Vec<i64> = activity_buckets(now).collect();
    let mut pipe = redis::pipe();
    for bucket in &buckets {
        pipe.cmd("HMGET")
            .arg(keys.activity(*bucket))
            .arg(&Tally::ALL.map(Tally::field)[..]);
    }
    let counts: Vec<Vec<Option<u64>>> = pipe.query_async(&mut *conn).await?;
    let activity = buckets
        .iter()
        .zip(counts)
        .map(|(bucket, counts)| {
            let count = |i: usize| counts.get(i).copied().flatten().unwrap_or(0);
            ActivityPoint {
                at: bucket * ACTIVITY_BUCKET_MS,
                routed: count(0),
                delivered: count(1),
                failed: count(2),
            }
        })
        .collect();
    let raw: HashMap<String, String> = conn.hgetall(keys.backlog()).await?;
    let backlog = summarize(
        raw.iter().filter_map(|(hook, r)| {
            let reading = serde_json::from_str::<QueueReading>(r).ok()?;
            Some((hook.as_str(), reading))
        }),
        now,
    );
    let raw: HashMap<String, String> = conn.hgetall(keys.processes()).await?;
    let mut processes = Vec::new();
    let mut forgotten = Vec::new();
    for (field, json) in raw {
        match serde_json::from_str::<Presence>(&json) {
            Ok(p) if now - p.seen_at <= PRESENCE_FORGET_MS => processes.push(ProcessShown {
                live: p.is_live(now),
                presence: p,
            }),
            _ => forgotten.push(field),
        }
    }
    if !forgotten.is_empty() {
        conn.hdel::<_, _, ()>(keys.processes(), forgotten).await?;
    }
    processes.sort_by(|a, b| {
        (b.live, &a.presence.role, a.presence.started_at).cmp(&(
            a.live,
            &b.presence.role,
            b.presence.started_at,
        ))
    });
    Ok(Overview {
        bucket_seconds: ACTIVITY_BUCKET_MS / 1000,
        activity,
        backlog,
        processes,
    })
}

/// Sums fresh readings; the oldest waiting delivery is the oldest head of any queue.
fn summarize<'a>(readings: impl Iterator<Item = (&'a str, QueueReading)>, now: i64) -> Backlog {
    let mut backlog = Backlog::default();
    for (hook, reading) in readings.filter(|(_, r)| r.is_fresh(now)) {
        backlog.hooks_measured += 1;
        if reading.messages == 0 {
            continue;
        }
        backlog.messages += reading.messages;
        backlog.hooks_waiting += 1;
        let age = reading.oldest_age_at(now);
        if backlog.oldest_hook_id.is_none() || age > backlog.oldest_waiting_ms {
            backlog.oldest_waiting_ms = age;
            backlog.oldest_hook_id = Some(hook.to_owned());
        }
    }
    backlog
}

/// Announces this process every [`PRESENCE_EVERY_MS`] until `shutdown`, then withdraws.
pub async fn announce(
    pool: Pool,
    keys: RedisKeys,
    role: &'static str,
    readiness: Readiness,
    shutdown: CancellationToken,
) {
    let mut presence = Presence {
        role: role.to_owned(),
        instance: uuid::Uuid::now_v7().simple().to_string(),
        host: hostname(),
        ready: false,
        down: Vec::new(),
        started_at: now_ms(),
        seen_at: 0,
    };
    let mut tick = tokio::time::interval(Duration::from_millis(PRESENCE_EVERY_MS as u64));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        let state = readiness.state();
        presence.ready = state.iter().all(|(_, up)| *up);
        presence.down = state
            .iter()
            .filter(|(_, up)| !up)
            .map(|(name, _)| (*name).to_owned())
            .collect();
        presence.seen_at = now_ms();
        let json = serde_json::to_string(&presence).expect("a presence serializes");
        let mut pipe = redis::pipe();
        pipe.hset(keys.processes(), presence.field(), json).ignore();
        if let Err(err) = query(&pool, &pipe).await {
            tracing::debug!(error = %err, "presence not announced");
        }
    }
    let mut pipe = redis::pipe();
    pipe.hdel(keys.processes(), presence.field()).ignore();
    let _ = query(&pool, &pipe).await;
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(messages: u64, oldest_age_ms: u64, at: i64) -> QueueReading {
        QueueReading {
            messages,
            oldest_age_ms,
            at,
        }
    }

    #[test]
    fn the_backlog_sums_fresh_readings_and_finds_the_oldest_head() {
        let now = 100_000;
        let readings = [
            ("a", reading(5, 2_000, now - 1_000)),
            ("b", reading(0, 0, now)),
            ("c", reading(7, 4_000, now - 5_000)),
            ("stale", reading(1_000, 90_000, now - READING_FRESH_MS - 1)),
        ];
        let backlog = summarize(readings.into_iter(), now);
        assert_eq!(
            backlog,
            Backlog {
                messages: 12,
                oldest_waiting_ms: 9_000,
                oldest_hook_id: Some("c".into()),
                hooks_waiting: 2,
                hooks_measured: 3,
            }
        );
    }
}
