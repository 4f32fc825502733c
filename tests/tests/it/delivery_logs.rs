//! Delivery logs stay bounded under load: a busy hook keeps its newest records only, and its
//! execution stats still count every attempt (real Redis, a prefix of its own).

use hookbus_contracts::keys::RedisKeys;
use hookbus_contracts::logs::{self, HookRequest, LogPayload, LogQuery, LogRecord};
use hookbus_contracts::payload::now_ms;
use hookbus_contracts::HookId;
use hookbus_runtime::logs::DeliveryLogs;
use hookbus_runtime::store::HookStore;
use hookbus_tests::pipeline::{unique_prefix, Cleanup, REDIS_URL};

fn record(hook: &HookId, attempt: u32, created_at: i64) -> LogRecord {
    timed(hook, attempt, created_at, 1, true)
}

fn timed(hook: &HookId, attempt: u32, created_at: i64, duration_ms: u64, ok: bool) -> LogRecord {
    let key = "TriggerHook.PostSignIn".to_owned();
    LogRecord {
        id: uuid::Uuid::now_v7().to_string(),
        key: key.clone(),
        payload: LogPayload {
            key,
            result: if ok { "Success" } else { "Error" }.into(),
            hook_id: hook.clone(),
            hook_request: HookRequest {
                body: logs::logged_body(br#"{"event":"PostSignIn"}"#),
            },
            response: None,
            error: None,
            webhook_id: format!("evt-{attempt}"),
            attempt,
            duration_ms,
        },
        created_at,
    }
}

#[tokio::test]
async fn a_busy_hook_keeps_its_newest_records_and_counts_every_attempt() {
    let prefix = unique_prefix("logs-bound");
    let mut cleanup = Cleanup::new(&prefix, &[]);
    let keys = RedisKeys::new(&prefix);
    let store = HookStore::new(REDIS_URL, keys.clone()).unwrap();
    let logs = DeliveryLogs::new(store.pool().clone(), keys);
    let hook = HookId::generate();
    let start = now_ms() - 10_000;
    let batch: Vec<LogRecord> = (0..700)
        .map(|i| record(&hook, i, start + i64::from(i)))
        .collect();
    logs.record_all(&batch).await.unwrap();
    logs.record_all(&[record(&hook, 700, start + 700)])
        .await
        .unwrap();

    let query = LogQuery {
        start_ms: start - 1,
        end_ms: now_ms() + 1,
        log_key: None,
        result: None,
        offset: 0,
        limit: 1000,
    };
    let (kept, total) = logs.recent(&hook, &query).await.unwrap();
    let bound = logs::LOGS_PER_HOOK as usize;
    assert_eq!((kept.len(), total), (bound, bound));
    assert_eq!(kept[0].payload.attempt, 700, "newest first");
    assert_eq!(kept[bound - 1].payload.attempt, 701 - bound as u32);
    let stats = logs.stats(&[hook], now_ms()).await.unwrap();
    assert_eq!(stats[0].execution.request_count, 701);
    assert_eq!(stats[0].execution.success_count, 701);
    cleanup.run().await;
}

/// The console's figures come from the same writes: a p99 from the duration buckets, the
/// result filter, and the pipeline's activity per 10 s.
#[tokio::test]
async fn attempts_count_towards_the_p99_the_result_filter_and_the_activity() {
    let prefix = unique_prefix("logs-figures");
    let mut cleanup = Cleanup::new(&prefix, &[]);
    let keys = RedisKeys::new(&prefix);
    let store = HookStore::new(REDIS_URL, keys.clone()).unwrap();
    let logs = DeliveryLogs::new(store.pool().clone(), keys.clone());
    let hook = HookId::generate();
    let now = now_ms();
    // 98 fast successes, 2 slow failures: the p99 falls among the slow ones.
    let batch: Vec<LogRecord> = (0..100)
        .map(|i| {
            let slow = i >= 98;
            let duration = if slow { 2_000 } else { 8 };
            timed(&hook, i, now - 100 + i64::from(i), duration, !slow)
        })
        .collect();
    logs.record_all(&batch).await.unwrap();

    let stats = logs
        .stats(std::slice::from_ref(&hook), now_ms())
        .await
        .unwrap();
    assert_eq!(stats[0].p99_ms(), Some(2_500), "{:?}", stats[0].durations);
    let query = LogQuery {
        start_ms: now - 1_000,
        end_ms: now_ms() + 1,
        log_key: None,
        result: Some("Error".into()),
        offset: 0,
        limit: 100,
    };
    let (failed, total) = logs.recent(&hook, &query).await.unwrap();
    assert_eq!(total, 2);
    assert!(failed.iter().all(|r| !r.is_success()));

    let overview = hookbus_runtime::overview::read(store.pool(), &keys, now_ms())
        .await
        .unwrap();
    let delivered: u64 = overview.activity.iter().map(|p| p.delivered).sum();
    let failed: u64 = overview.activity.iter().map(|p| p.failed).sum();
    assert_eq!((delivered, failed), (98, 2));
    assert_eq!(overview.activity.len(), 360);
    cleanup.run().await;
}
