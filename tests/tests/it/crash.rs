//! Crash safety: `kill -9` of a deliverer, then of the router, in the middle of 1,000
//! events. Once a replacement runs, every event id has arrived at least once (duplicates
//! are allowed, that is at-least-once; losses are not). And deliverers that share the
//! hooks: the hooks of one killed are taken over by the others.

use std::collections::HashSet;
use std::time::Duration;

use futures::StreamExt;
use hookbus_contracts::EventName;
use hookbus_producer::Publisher;
use hookbus_tests::pipeline::{self, Cleanup, AMQP_URL, WAIT};
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
    publish(prefix, EVENTS).await
}

/// Publishes `n` `User.Created` events through the SDK; their ids.
async fn publish(prefix: &str, n: usize) -> HashSet<String> {
    let publisher = Publisher::connect(AMQP_URL, prefix).await.unwrap();
    let name = EventName::parse("User.Created").unwrap();
    futures::stream::iter(0..n)
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

/// Publishes `n` events and waits until each has arrived.
async fn delivered(prefix: &str, receiver: &Receiver, n: usize, when: &str) {
    let ids = publish(prefix, n).await;
    let missing = receiver.missing(&ids, Duration::from_secs(60)).await;
    assert_eq!(missing, 0, "{missing} events not delivered {when}");
}

/// The hook queues each of `deliverers` consumes.
/// Each deliverer's hooks by `metric`: those it owns, or those it consumes (the active ones
/// it owns).
async fn hooks_of(
    http: &reqwest::Client,
    deliverers: &[std::net::SocketAddr],
    metric: &str,
) -> Vec<f64> {
    let mut counts = Vec::new();
    for addr in deliverers {
        let n = pipeline::metric(http, *addr, metric).await;
        counts.push(n.unwrap_or(-1.0));
    }
    counts
}

const OWNED: &str = hookbus_contracts::metric_names::HOOKS_OWNED;
const CONSUMING: &str = hookbus_contracts::metric_names::HOOK_CONSUMERS;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliverers_share_the_hooks_and_take_over_those_of_one_killed() {
    const HOOKS: usize = 12;
    let prefix = pipeline::unique_prefix("share");
    let mut cleanup = Cleanup::new(&prefix, &service::RETRY_SCHEDULE);
    let receiver = Receiver::start().await;
    for _ in 0..HOOKS {
        store_hook(&prefix, &receiver.url("h")).await;
    }
    let router = pipeline::start_router(&prefix).await;
    let addrs: Vec<std::net::SocketAddr> = (0..4)
        .map(|_| ([127, 0, 0, 1], hookbus_tests::servers::spare_port()).into())
        .collect();
    let mut deliverers: Vec<Child> = addrs
        .iter()
        .map(|addr| {
            let listen = addr.to_string();
            spawn_child(
                "deliverer",
                &prefix,
                &[("HOOKBUS_DELIVERER_LISTEN", &listen)],
            )
        })
        .collect();
    let http = reqwest::Client::new();
    let shared = |counts: &Vec<f64>, alive: usize| {
        counts.iter().take(alive).sum::<f64>() == (2 * HOOKS) as f64
            && counts.iter().take(alive).all(|n| *n >= 1.0)
    };

    // Each idle hook has two owners among the four; each deliverer has some.
    eventually(
        "four deliverers to share the hooks, two each",
        WAIT,
        async || check(hooks_of(&http, &addrs, OWNED).await, |c| shared(c, 4)),
    )
    .await;
    // Fewer events than a hook's limit of deliveries under way: no hook turns busy yet. The
    // hooks are active from now on: their owners consume them.
    delivered(&prefix, &receiver, 20, "by the shared hooks").await;
    eventually("the owners to consume the active hooks", WAIT, async || {
        check(hooks_of(&http, &addrs, CONSUMING).await, |c| shared(c, 4))
    })
    .await;

    // kill -9: no clean goodbye; its lease runs out and its hooks go to the others.
    let mut victim = deliverers.pop().unwrap();
    victim.start_kill().unwrap();
    victim.wait().await.unwrap();
    eventually(
        "three deliverers to take over the killed one's hooks",
        WAIT,
        async || {
            check(hooks_of(&http, &addrs[..3], CONSUMING).await, |c| {
                shared(c, 3)
            })
        },
    )
    .await;
    delivered(&prefix, &receiver, 20, "after the takeover").await;

    // A backlog: 200 deliveries per hook against an endpoint taking 2 s, more than its two
    // owners' 64 at once each; a consumer with its full limit under way reports the hook
    // busy, and every deliverer consumes it.
    receiver.set_delay(Duration::from_secs(2));
    let ids = publish(&prefix, 200).await;
    eventually(
        "every deliverer to consume every busy hook",
        WAIT,
        async || {
            check(hooks_of(&http, &addrs[..3], CONSUMING).await, |c| {
                c.iter().all(|n| *n == HOOKS as f64)
            })
        },
    )
    .await;
    receiver.set_delay(Duration::ZERO);
    let missing = receiver.missing(&ids, Duration::from_secs(90)).await;
    assert_eq!(missing, 0, "{missing} events of the backlog not delivered");

    router.stop().await;
    for mut d in deliverers {
        let _ = d.kill().await;
    }
    cleanup.run().await;
}
