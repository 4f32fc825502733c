//! Crash safety: `kill -9` of a deliverer, then of the router, in the middle of 1,000
//! events. Once a replacement runs, every event id has arrived at least once (duplicates
//! are allowed, that is at-least-once; losses are not).

use std::collections::HashSet;
use std::time::Duration;

use futures::StreamExt;
use hookbus_contracts::EventName;
use hookbus_producer::Publisher;
use hookbus_tests::pipeline::{self, Cleanup, AMQP_URL};
use hookbus_tests::{check, eventually, service, Receiver};
use tokio::process::Child;

const EVENTS: usize = 1000;

/// A service in a child process, killed when dropped (so a failing test leaves none).
fn spawn_child(role: &str, prefix: &str, extra_env: &[(&str, &str)]) -> Child {
    service::command(env!("CARGO_BIN_EXE_hookbus-svc"), &[role], prefix)
        .envs(extra_env.iter().copied())
        .spawn()
        .expect("hookbus-svc starts")
}

/// Stores a hook the way the admin API does (the router under test may be down).
async fn store_hook(prefix: &str, url: &str) {
    let input: hookbus_contracts::hook::HookInput = serde_json::from_value(
        serde_json::json!({"events": ["User.Created"], "config": {"url": url}}),
    )
    .unwrap();
    let hook = input.validate(&pipeline::targets().policy()).unwrap();
    let store = hookbus_runtime::store::HookStore::new(
        pipeline::REDIS_URL,
        hookbus_contracts::keys::RedisKeys::new(prefix),
    )
    .unwrap();
    store.insert(&hook).await.unwrap();
}

async fn publish_all(prefix: &str) -> HashSet<String> {
    let publisher = Publisher::connect(AMQP_URL, prefix).await.unwrap();
    let name = EventName::parse("User.Created").unwrap();
    futures::stream::iter(0..EVENTS)
        .map(|i| {
            let publisher = publisher.clone();
            async move {
                let fields = serde_json::json!({"data": {"id": format!("u{i}")}})
                    .as_object()
                    .unwrap()
                    .clone();
                publisher
                    .publish_event(name, fields)
                    .await
                    .unwrap()
                    .to_string()
            }
        })
        .buffer_unordered(64)
        .collect()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_deliverer_mid_stream_loses_nothing() {
    let prefix = pipeline::unique_prefix("kill-deliverer");
    let mut cleanup = Cleanup::new(&prefix, &service::RETRY_SCHEDULE);
    let receiver = Receiver::start().await;
    // Slow enough that the kill lands with deliveries in flight and a backlog queued.
    receiver.set_delay(Duration::from_millis(5));
    store_hook(&prefix, &receiver.url("h")).await;
    let router = pipeline::start_router(&prefix).await;
    let mut victim = spawn_child("deliverer", &prefix, &[]);

    let ids = publish_all(&prefix).await;
    assert_eq!(ids.len(), EVENTS);
    receiver.wait_for(EVENTS / 5, Duration::from_secs(60)).await;
    victim.start_kill().unwrap();
    victim.wait().await.unwrap();
    let at_kill = receiver.received().len();
    assert!(
        at_kill < EVENTS,
        "the kill came too late to test anything ({at_kill} delivered)"
    );

    let mut replacement = spawn_child("deliverer", &prefix, &[]);
    let missing = receiver.missing(&ids, Duration::from_secs(90)).await;
    assert_eq!(
        missing, 0,
        "{missing} events lost after kill -9 (killed at {at_kill})"
    );
    router.stop().await;
    let _ = replacement.kill().await;
    cleanup.run().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_router_mid_stream_loses_nothing() {
    let prefix = pipeline::unique_prefix("kill-router");
    let mut cleanup = Cleanup::new(&prefix, &service::RETRY_SCHEDULE);
    let receiver = Receiver::start().await;
    store_hook(&prefix, &receiver.url("h")).await;
    let deliverer = pipeline::start_deliverer(pipeline::deliverer_config(
        &prefix,
        &[Duration::from_secs(1)],
    ))
    .await;
    // One event at a time, so that routing 1,000 takes long enough to be interrupted.
    let mut victim = spawn_child("router", &prefix, &[("HOOKBUS_ROUTER_PREFETCH", "1")]);

    let ids = publish_all(&prefix).await;
    receiver
        .wait_for(EVENTS / 10, Duration::from_secs(60))
        .await;
    victim.start_kill().unwrap();
    victim.wait().await.unwrap();
    let unrouted =
        pipeline::queue_depth(&hookbus_contracts::topology::Topology::new(&prefix).events_queue())
            .await;
    assert!(
        unrouted > Some(0),
        "the kill came after routing finished: it tests nothing"
    );

    let mut replacement = spawn_child("router", &prefix, &[]);
    let missing = receiver.missing(&ids, Duration::from_secs(90)).await;
    assert_eq!(
        missing, 0,
        "{missing} events lost after kill -9 ({unrouted:?} unrouted at the kill)"
    );
    deliverer.stop().await;
    // Gone before the cleanup, or it could declare again what the cleanup deletes.
    let _ = replacement.kill().await;
    cleanup.run().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_deliverer_while_retries_wait_in_the_tiers_loses_nothing() {
    let prefix = pipeline::unique_prefix("kill-retrying");
    let mut cleanup = Cleanup::new(&prefix, &service::RETRY_SCHEDULE);
    let receiver = Receiver::start().await;
    store_hook(&prefix, &receiver.url("h")).await;
    let router = pipeline::start_router(&prefix).await;
    // Every attempt fails until the endpoint recovers: deliveries wait 1 s in the retry tier
    // between attempts, and have attempts to spare.
    let schedule = [("HOOKBUS_RETRY_SCHEDULE", "1s,1s,1s,1s,1s,1s,1s,1s")];
    let mut victim = spawn_child("deliverer", &prefix, &schedule);
    receiver.set_status(500);
    let ids = publish_all(&prefix).await;
    receiver.wait_for(EVENTS, Duration::from_secs(60)).await;
    victim.start_kill().unwrap();
    victim.wait().await.unwrap();
    let tier =
        hookbus_contracts::topology::Topology::new(&prefix).retry_tier(Duration::from_secs(1));
    let waiting = pipeline::queue_depth(&tier).await;
    assert!(
        waiting > Some(0),
        "nothing was waiting in the retry tier at the kill"
    );
    let recovered_at = receiver.received().len();
    receiver.set_status(204);
    let mut replacement = spawn_child("deliverer", &prefix, &schedule);
    let what = format!(
        "every event delivered after the recovery ({waiting:?} were waiting in the retry tier at the kill)"
    );
    eventually(what, Duration::from_secs(90), async || {
        let after: HashSet<String> = receiver
            .received()
            .iter()
            .skip(recovered_at)
            .map(|r| r.header("webhook-id").to_owned())
            .collect();
        check(ids.difference(&after).count(), |lost| *lost == 0)
    })
    .await;
    router.stop().await;
    let _ = replacement.kill().await;
    cleanup.run().await;
}
