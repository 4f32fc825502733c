//! Cost follows activity: a hook's queue exists and is consumed only while the hook has
//! something to deliver, and nothing is lost on the way in or out of idleness. Two routers
//! and two deliverers on one prefix, with an idle period of a fraction of a second so that
//! queues are deleted and declared again many times within a test.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use hookbus_contracts::activity::Idle;
use hookbus_contracts::hook::HookInput;
use hookbus_contracts::keys::RedisKeys;
use hookbus_contracts::metric_names as name;
use hookbus_contracts::topology::Topology;
use hookbus_contracts::{Delivery, Event, EventName, HookId};
use hookbus_runtime::activity::{Activated, HookActivity};
use hookbus_runtime::broker;
use hookbus_runtime::declare::Declare;
use hookbus_runtime::store::HookStore;
use hookbus_tests::pipeline::{self, hook_id, queue_depth, router_config, start_router_with};
use hookbus_tests::{check, eventually, Cleanup, Pipeline, Receiver};
use serde_json::json;

const IDLE: Duration = Duration::from_secs(1);
/// The race test's idle period: short, so that queues are deleted several times a second.
const SHORT_IDLE: Duration = Duration::from_millis(300);
/// Hooks of the race test, one event each.
const RACING: usize = 24;
const WAIT: Duration = Duration::from_secs(30);
/// Deletions for idleness that make the race test count: with the *retiring* check removed,
/// events were lost at 200 (the window is a few milliseconds).
const DELETIONS: f64 = 200.0;

/// Queues the pipeline's router and `second` deleted for idleness.
async fn deletions(p: &Pipeline, second: &pipeline::Service) -> f64 {
    p.router_metric(name::IDLE_QUEUES_DELETED).await
        + pipeline::metric(&p.http, second.addr, name::IDLE_QUEUES_DELETED)
            .await
            .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_routed_as_their_hooks_queues_are_deleted_for_idleness_all_arrive() {
    let schedule = [Duration::from_millis(300)];
    let p = Pipeline::start_idle("idle-race", &schedule, 2, SHORT_IDLE).await;
    let mut second = router_config(&p.prefix, &p.servers);
    second.activity.hook_idle = SHORT_IDLE;
    let second = start_router_with(second).await;
    let receiver = Receiver::start().await;
    let events: Vec<&str> = EventName::all()
        .map(EventName::as_str)
        .take(RACING)
        .collect();
    let mut hooks = Vec::new();
    for (i, event) in events.iter().enumerate() {
        let hook = p
            .create_hook(&[event], &receiver.url(&format!("h/{i}")))
            .await;
        hooks.push(hook_id(&hook));
    }
    p.wait_hooks(RACING).await;
    // Created, not yet active: no queue on the broker.
    for hook in &hooks {
        assert_eq!(queue_depth(&p.topology().hook_queue(hook)).await, None);
    }

    // Each hook gets events at gaps around the time its queue is deleted (the idle period
    // plus up to a sweep), so that many land as the sweep looks at the queue.
    let mut sent: HashMap<String, usize> = HashMap::new();
    // At least 20 s, and on until the queues were deleted often enough for the race to have
    // been run (a loaded machine sweeps less often), within a minute.
    let (started, mut checked) = (Instant::now(), Instant::now());
    let mut deleted = 0.0;
    let mut gaps = 0u64;
    let mut next: Vec<Instant> = vec![Instant::now(); RACING];
    while started.elapsed() < Duration::from_secs(20)
        || (deleted < DELETIONS && started.elapsed() < Duration::from_secs(60))
    {
        if checked.elapsed() > Duration::from_secs(1) {
            deleted = deletions(&p, &second).await;
            checked = Instant::now();
        }
        let (i, at) = next
            .iter()
            .enumerate()
            .min_by_key(|(_, at)| **at)
            .map(|(i, at)| (i, *at))
            .unwrap();
        tokio::time::sleep_until(at.into()).await;
        let (status, body) = p.ingest(json!({"event": events[i]})).await;
        assert_eq!(status, 202, "{body}");
        sent.insert(body["id"].as_str().unwrap().to_owned(), i);
        // 250 ms to 650 ms, spread evenly by a counter (no rng needed).
        gaps += 1;
        let gap = Duration::from_millis(250 + (gaps * 137) % 400);
        next[i] = Instant::now() + gap;
    }
    // (`wait_settled` counts one router's events; two route here.)
    eventually("every event to arrive", WAIT, async || {
        let got: HashSet<String> = receiver
            .received()
            .iter()
            .map(|r| r.header("webhook-id").to_owned())
            .collect();
        check(
            sent.keys().filter(|id| !got.contains(*id)).count(),
            |missing| *missing == 0,
        )
    })
    .await;
    for r in receiver.received() {
        let i: usize = r.path.trim_start_matches("h/").parse().unwrap();
        assert_eq!(
            sent[r.header("webhook-id")],
            i,
            "an event reached another hook"
        );
    }
    let deleted = deletions(&p, &second).await;
    assert!(
        deleted >= DELETIONS,
        "the race was not run: only {deleted} queues were deleted for idleness"
    );
    for hook in &hooks {
        let dead = queue_depth(&p.topology().dead_queue(hook))
            .await
            .unwrap_or(0);
        assert_eq!(dead, 0, "hook {hook} has dead letters");
    }

    // Idle again: every consumer goes, nothing is left undelivered, and the sweep deletes
    // every queue. A deliverer that read a hook active just before the sweep deleted its
    // queue must not create it again: that queue would no longer be swept.
    eventually(
        "idle hooks to lose their consumers and their queues",
        WAIT,
        async || {
            let mut left = Vec::new();
            for hook in &hooks {
                left.push(queue_depth(&p.topology().hook_queue(hook)).await);
            }
            let consumers = p.deliverers_metric(name::HOOK_CONSUMERS).await;
            check((left, consumers), |(left, consumers)| {
                left.iter().all(Option::is_none) && *consumers == 0.0
            })
        },
    )
    .await;
    second.stop().await;
    p.stop().await;
}

/// A retry due after the hook would be idle keeps its queue, and a disabled hook's backlog
/// waits through idleness until the hook is enabled again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_retry_and_a_disabled_hooks_backlog_outlive_idleness() {
    // The retry waits three idle periods.
    let schedule = [Duration::from_secs(3), Duration::from_secs(3)];
    let p = Pipeline::start_idle("idle-hold", &schedule, 1, IDLE).await;
    let (late, paused) = (Receiver::start().await, Receiver::start().await);
    late.script(&[503]);
    paused.set_status(503);
    p.create_hook(&["User.Created"], &late.url("late")).await;
    let hook = p
        .create_hook(&["Role.Created"], &paused.url("paused"))
        .await;
    p.wait_hooks(2).await;

    for event in ["User.Created", "Role.Created"] {
        let (status, body) = p.ingest(json!({"event": event})).await;
        assert_eq!(status, 202, "{body}");
    }
    // The paused hook's first attempt failed: its retry waits in the tier while the hook
    // is disabled, then returns to a queue nobody consumes.
    paused.wait_for(1, WAIT).await;
    let path = format!("/api/hooks/{}", hook_id(&hook));
    let (status, _) = p
        .admin(
            reqwest::Method::PATCH,
            &path,
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(status, 200);
    let queue = p.topology().hook_queue(&hook_id(&hook));
    pipeline::wait_depth(&queue, 1, WAIT).await;

    // Three seconds after the first attempt, the retry came back to a live queue.
    let got = late.wait_for(2, WAIT).await;
    assert_eq!(
        got[0].header("webhook-id"),
        got[1].header("webhook-id"),
        "the retry of the first attempt"
    );

    // Well past the idle period and many sweeps: the backlog is still there.
    tokio::time::sleep(IDLE * 5).await;
    assert_eq!(
        queue_depth(&queue).await,
        Some(1),
        "a disabled hook's backlog went with its queue"
    );
    paused.set_status(200);
    let (status, _) = p
        .admin(
            reqwest::Method::PATCH,
            &path,
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(status, 200);
    let got = paused.wait_for(2, WAIT).await;
    assert_eq!(got[0].header("webhook-id"), got[1].header("webhook-id"));
    p.stop().await;
}

/// A prefix from before activity was tracked: every stored hook has a queue, one of them
/// holds a backlog. The first router of this version looks at each queue at once, not after
/// an idle period: the backlog is delivered, the empty queues are deleted, and deliverers
/// consume only the hook with work, so that a platform with many hooks does not start by
/// consuming every one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_stored_before_activity_was_tracked_are_looked_at_at_once() {
    const HOOKS: usize = 12;
    let schedule = [Duration::from_millis(300)];
    let prefix = pipeline::unique_prefix("idle-upgrade");
    let _cleanup = Cleanup::new(&prefix, &schedule);
    let receiver = Receiver::start().await;
    let store = HookStore::new(pipeline::REDIS_URL, RedisKeys::new(&prefix)).unwrap();
    let conn = broker::connect(pipeline::AMQP_URL, "hookbus-test")
        .await
        .unwrap();
    let ch = broker::confirm_channel(&conn).await.unwrap();
    let topology = Topology::new(&prefix);
    topology.declare_deliveries(&ch).await.unwrap();
    let mut hooks = Vec::new();
    for i in 0..HOOKS {
        let input: HookInput = serde_json::from_value(json!({
            "events": ["User.Created"],
            "config": {"url": receiver.url(&format!("h/{i}"))},
        }))
        .unwrap();
        let hook = input.validate(&pipeline::targets().policy()).unwrap();
        store.insert(&hook).await.unwrap();
        // As the version before activity did: a queue for every hook.
        topology.declare_hook(&ch, &hook.id).await.unwrap();
        hooks.push(hook.id);
    }
    let event = Event::new(
        EventName::parse("User.Created").unwrap(),
        Default::default(),
    );
    let backlog = Delivery::new(hooks[0].clone(), event.clone());
    broker::publish_confirmed(
        &ch,
        &topology.deliveries_exchange(),
        hooks[0].as_str(),
        &backlog.encode(),
        broker::persistent_json(event.id.as_str()),
    )
    .await
    .unwrap();
    let _ = conn.close(200, "".into()).await;

    // The default idle period: minutes.
    let router = pipeline::start_router(&prefix).await;
    let deliverer = pipeline::start_deliverer(pipeline::deliverer_config(&prefix, &schedule)).await;
    let got = receiver.wait_for(1, WAIT).await;
    assert_eq!(got[0].path, "h/0");
    assert_eq!(got[0].header("webhook-id"), event.id.as_str());
    eventually("the empty queues to be deleted", WAIT, async || {
        let mut left = 0;
        for hook in &hooks[1..] {
            left += usize::from(queue_depth(&topology.hook_queue(hook)).await.is_some());
        }
        check(left, |left| *left == 0)
    })
    .await;
    let http = reqwest::Client::new();
    assert_eq!(
        pipeline::metric(&http, deliverer.addr, name::HOOK_CONSUMERS).await,
        Some(1.0),
        "only the hook with a backlog is consumed"
    );
    assert_eq!(
        pipeline::metric(&http, deliverer.addr, name::HOOKS_OWNED).await,
        Some(HOOKS as f64)
    );
    deliverer.stop().await;
    router.stop().await;
}

/// One call that activates several fresh hooks names every one whose queue must be
/// declared, not only the first, and holds them back from deliverers until that is done: a
/// deliverer that consumed a quorum queue still being declared would have its connection
/// closed by RabbitMQ 3.10. Meanwhile other activations of those hooks wait.
#[tokio::test]
async fn fresh_hooks_are_active_only_once_their_queues_are_declared() {
    let prefix = pipeline::unique_prefix("activate-fresh");
    let _cleanup = Cleanup::new(&prefix, &[]);
    let keys = RedisKeys::new(&prefix);
    let store = HookStore::new(pipeline::REDIS_URL, keys.clone()).unwrap();
    let activity = HookActivity::new(store.pool().clone(), keys, Idle::new(IDLE).unwrap());
    let hooks: Vec<HookId> = (0..3).map(|_| HookId::generate()).collect();
    let all: Vec<&HookId> = hooks.iter().collect();
    assert_eq!(
        activity.activate(&all).await.unwrap(),
        Activated::Active(hooks.clone())
    );
    assert!(
        activity.active().await.unwrap().is_empty(),
        "not active yet"
    );
    assert!(matches!(
        activity.activate(&all[1..]).await.unwrap(),
        Activated::Changing(_)
    ));
    activity.end_declare(&hooks, true).await.unwrap();
    assert_eq!(activity.active().await.unwrap().len(), 3);
    assert_eq!(
        activity.activate(&all).await.unwrap(),
        Activated::Active(Vec::new()),
        "an active hook's queue exists"
    );
    // A declare that failed blocks nobody: the next activation declares again.
    let other = HookId::generate();
    assert_eq!(
        activity.activate(&[&other]).await.unwrap(),
        Activated::Active(vec![other.clone()])
    );
    activity
        .end_declare(std::slice::from_ref(&other), false)
        .await
        .unwrap();
    assert!(!activity.active().await.unwrap().contains_key(&other));
    assert_eq!(
        activity.activate(&[&other]).await.unwrap(),
        Activated::Active(vec![other])
    );
}
