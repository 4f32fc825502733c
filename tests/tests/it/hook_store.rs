//! The hook cache every router and deliverer routes by, against a real Redis: a change
//! reaches it as the hook that changed, not as a reload of every hook (at 100,000 hooks a
//! reload reads them all), and the cases the change log cannot vouch for still reload
//! everything.

use deadpool_redis::redis::AsyncCommands;
use hookbus_contracts::hook::{Hook, HookInput};
use hookbus_contracts::keys::RedisKeys;
use hookbus_contracts::target::TargetPolicy;
use hookbus_runtime::store::{self, HookCache};
use hookbus_tests::cleanup::cleanup;
use hookbus_tests::pipeline::{unique_prefix, REDIS_URL, WAIT};
use hookbus_tests::wait::{check, eventually};
use serde_json::json;

fn hook(url: &str) -> Hook {
    let input: HookInput = serde_json::from_value(json!({
        "events": ["PostSignIn"], "config": {"url": url}
    }))
    .unwrap();
    input.validate(&TargetPolicy::default()).unwrap()
}

/// Hooks A and B, stored.
async fn store_a_and_b(store: &store::HookStore) -> (Hook, Hook) {
    let (a, b) = (
        hook("https://a.example.com/h"),
        hook("https://b.example.com/h"),
    );
    store.insert(&a).await.unwrap();
    store.insert(&b).await.unwrap();
    (a, b)
}

/// The URL `cache` holds for `hook`, once its snapshot has reached at least `version`.
async fn cached_url(cache: &HookCache, version: u64, hook: &Hook) -> Option<String> {
    eventually(
        format!("the cache to load version {version}"),
        WAIT,
        async || check(cache.snapshot().version, |v| *v >= version),
    )
    .await;
    cache.snapshot().get(&hook.id).map(|h| h.config.url.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_change_reaches_the_cache_as_that_hook_alone() {
    let prefix = unique_prefix("hook-changes");
    let keys = RedisKeys::new(&prefix);
    let readiness = hookbus_runtime::health::Readiness::default();
    let tasks = tokio_util::task::TaskTracker::new();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let (store, cache) = store::start(REDIS_URL, keys.clone(), &readiness, &tasks, &shutdown)
        .expect("the hook store");
    let (a, b) = store_a_and_b(&store).await;
    let loaded = store.version().await.unwrap();
    assert_eq!(
        cached_url(&cache, loaded, &b).await.as_deref(),
        Some("https://b.example.com/h")
    );

    // B's record rewritten behind the store's back: only a reload of every hook reads it.
    let mut redis = store.pool().get().await.unwrap();
    let rewrite = async |redis: &mut deadpool_redis::Connection, url: &str| {
        let mut moved = b.clone();
        moved.config.url = url.to_owned();
        let json = serde_json::to_string(&moved).unwrap();
        redis.set::<_, _, ()>(keys.hook(&b.id), json).await.unwrap();
    };
    rewrite(&mut redis, "https://b.example.com/behind").await;

    let changed = store
        .update(&a.id, |h| {
            h.config.url = "https://a.example.com/changed".into();
            Ok::<(), ()>(())
        })
        .await
        .unwrap();
    let version = store.version().await.unwrap();
    assert_eq!(
        cached_url(&cache, version, &changed).await.as_deref(),
        Some("https://a.example.com/changed")
    );
    assert_eq!(
        cached_url(&cache, version, &b).await.as_deref(),
        Some("https://b.example.com/h"),
        "a change to A read B again: the cache reloaded every hook"
    );
    store.delete(&a.id).await.unwrap();
    assert_eq!(
        cached_url(&cache, store.version().await.unwrap(), &a).await,
        None
    );

    // A version bumped without the change log (a writer of an older hookbus during an
    // upgrade) cannot say what changed: every hook is read again.
    rewrite(&mut redis, "https://b.example.com/upgrade").await;
    let bumped: u64 = redis.incr(keys.hooks_version(), 1).await.unwrap();
    assert_eq!(
        cached_url(&cache, bumped, &b).await.as_deref(),
        Some("https://b.example.com/upgrade")
    );

    // A restore writes hooks without the change log: every hook is read again too.
    rewrite(&mut redis, "https://b.example.com/restored").await;
    let restored = store
        .restore(&cache.snapshot(), cache.epoch().as_deref())
        .await
        .unwrap();
    assert_eq!(
        cached_url(&cache, restored, &b).await.as_deref(),
        Some("https://b.example.com/restored")
    );

    shutdown.cancel();
    tasks.close();
    tasks.wait().await;
    cleanup(&prefix, &[]).await;
}

/// The upgrade edge: a writer of an older hookbus (no change log) changes A, then one of
/// this version changes B before any cache has looked. The log's latest change is then the
/// store's version, yet A's change is not in it: the newer writer, finding the version
/// ahead of the log, marks it as a gap, and a cache that knew less reads every hook.
#[tokio::test]
async fn a_logged_change_after_an_unlogged_one_still_reloads_everything() {
    let prefix = unique_prefix("hook-changes-upgrade");
    let keys = RedisKeys::new(&prefix);
    let store = store::HookStore::new(REDIS_URL, keys.clone()).unwrap();
    let (a, b) = store_a_and_b(&store).await;
    let known = store.version().await.unwrap();

    let mut older = a.clone();
    older.config.url = "https://a.example.com/older-writer".into();
    let mut redis = store.pool().get().await.unwrap();
    redis
        .set::<_, _, ()>(keys.hook(&a.id), serde_json::to_string(&older).unwrap())
        .await
        .unwrap();
    redis
        .incr::<_, _, u64>(keys.hooks_version(), 1)
        .await
        .unwrap();
    store
        .update(&b.id, |h| {
            h.config.url = "https://b.example.com/newer-writer".into();
            Ok::<(), ()>(())
        })
        .await
        .unwrap();

    let changes = store.changes_since(known).await.unwrap();
    assert!(
        changes.is_none(),
        "the log vouched for {:?} alone: A's change would wait for a full reload",
        changes.map(|c| c.hooks.into_iter().map(|(id, _)| id).collect::<Vec<_>>())
    );
    cleanup(&prefix, &[]).await;
}
