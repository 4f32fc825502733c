//! Retries, dead letters and poison messages, through real RabbitMQ retry tiers with a
//! short schedule.

use std::time::Duration;

use hookbus_contracts::HookId;
use hookbus_runtime::broker;
use hookbus_tests::pipeline::{
    self, hook_id, queue_depth, take_one, wait_depth, AMQP_URL, REDIS_URL,
};
use hookbus_tests::{check, eventually, Pipeline, Receiver};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(20);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_endpoint_is_retried_with_the_same_webhook_id_until_it_succeeds() {
    let p = Pipeline::start_with("retry", &[ms(200), ms(400)], 1).await;
    let receiver = Receiver::start().await;
    receiver.script(&[500, 503]);
    let hook = p.create_hook(&["PostSignIn"], &receiver.url("h")).await;
    p.wait_hooks(1).await;
    let (_, body) = p.ingest(json!({"event": "PostSignIn"})).await;

    let got = receiver.wait_for(3, WAIT).await;
    p.wait_settled().await;
    assert_eq!(
        receiver.received().len(),
        3,
        "delivered on the third attempt, then no more"
    );
    for r in &got {
        assert_eq!(r.header("webhook-id"), body["id"].as_str().unwrap());
        r.verify(hook["signingKey"].as_str().unwrap()).unwrap();
    }
    assert_eq!(
        got[0].body, got[2].body,
        "every attempt sends the same payload"
    );
    // The waits happened in the retry tiers (jitter takes up to 10 % off).
    assert!(
        got[1].at - got[0].at >= ms(180),
        "first retry after {:?}",
        got[1].at - got[0].at
    );
    assert!(
        got[2].at - got[1].at >= ms(360),
        "second retry after {:?}",
        got[2].at - got[1].at
    );
    assert_eq!(
        queue_depth(&p.topology().dead_queue(&hook_id(&hook))).await,
        None,
        "nothing dead-lettered"
    );
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured_within_the_schedule() {
    let p = Pipeline::start_with("retry-after", &[ms(100), ms(1500)], 1).await;
    let receiver = Receiver::start().await;
    receiver.script(&[429]);
    receiver.add_response_header("retry-after", "1");
    p.create_hook(&["PostSignIn"], &receiver.url("h")).await;
    p.wait_hooks(1).await;
    p.ingest(json!({"event": "PostSignIn"})).await;
    let got = receiver.wait_for(2, WAIT).await;
    assert_eq!(got.len(), 2);
    let waited = got[1].at - got[0].at;
    assert!(
        waited >= ms(1000),
        "Retry-After: 1 ignored, retried after {waited:?}"
    );
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_down_through_the_schedule_lands_in_the_dead_letters_with_the_reason() {
    let p = Pipeline::start_with("dead", &[ms(100), ms(200)], 1).await;
    let receiver = Receiver::start().await;
    receiver.set_status(500);
    let hook = p.create_hook(&["User.Created"], &receiver.url("h")).await;
    p.wait_hooks(1).await;
    let (_, body) = p
        .ingest(json!({"event": "User.Created", "data": {"id": "u1"}}))
        .await;
    let dead = p.topology().dead_queue(&hook_id(&hook));
    wait_depth(&dead, 1, WAIT).await;
    assert_eq!(
        receiver.received().len(),
        3,
        "one attempt plus one per schedule entry"
    );
    let (data, reason) = take_one(&dead).await.unwrap();
    assert_eq!(reason.as_deref(), Some("HTTP 500 after 3 attempts"));
    let parked = hookbus_contracts::Delivery::decode(&data).unwrap();
    assert_eq!(parked.event.id.as_str(), body["id"].as_str().unwrap());
    assert_eq!(parked.attempts, 3);
    assert!(parked.first_attempt_at_ms.unwrap() <= parked.last_attempt_at_ms.unwrap());
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_dead_letters_at_once_and_disables_the_hook() {
    let p = Pipeline::start("gone").await;
    let receiver = Receiver::start().await;
    receiver.set_status(410);
    let hook = p.create_hook(&["PostSignIn"], &receiver.url("h")).await;
    p.wait_hooks(1).await;
    p.ingest(json!({"event": "PostSignIn"})).await;
    wait_depth(&p.topology().dead_queue(&hook_id(&hook)), 1, WAIT).await;
    assert_eq!(receiver.received().len(), 1, "410 is never retried");

    let store = hookbus_runtime::store::HookStore::new(
        REDIS_URL,
        hookbus_contracts::keys::RedisKeys::new(&p.prefix),
    )
    .unwrap();
    let hooks = store.load_all().await.unwrap();
    assert!(!hooks[0].enabled, "the hook was disabled");
    // Disabled: new events are not routed to it, once the router has loaded the change
    // (its lease states the version it routes by).
    p.wait_hooks(0).await;
    let version = store.version().await.unwrap();
    eventually("the router to load the disabled hook", WAIT, async || {
        check(store.routers_behind(version).await.unwrap(), Vec::is_empty)
    })
    .await;
    p.ingest(json!({"event": "PostSignIn"})).await;
    p.wait_settled().await;
    assert_eq!(receiver.received().len(), 1);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_failure_is_not_retried() {
    let p = Pipeline::start("permanent").await;
    let receiver = Receiver::start().await;
    receiver.script(&[302]);
    let hook = p.create_hook(&["PostSignIn"], &receiver.url("h")).await;
    p.wait_hooks(1).await;
    p.ingest(json!({"event": "PostSignIn"})).await;
    let dead = p.topology().dead_queue(&hook_id(&hook));
    wait_depth(&dead, 1, WAIT).await;
    let (_, reason) = take_one(&dead).await.unwrap();
    assert!(
        reason.unwrap().contains("302"),
        "the reason names the status"
    );
    assert_eq!(
        receiver.received().len(),
        1,
        "a redirect is neither followed nor retried"
    );
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_are_parked_with_a_reason_and_nothing_crashes() {
    let p = Pipeline::start("poison").await;
    let receiver = Receiver::start().await;
    let hook = p.create_hook(&["PostSignIn"], &receiver.url("h")).await;
    p.wait_hooks(1).await;
    p.activate(&hook_id(&hook)).await;
    let conn = broker::connect(AMQP_URL, "hookbus-test").await.unwrap();
    let ch = broker::confirm_channel(&conn).await.unwrap();
    let t = p.topology();
    // Garbage on the events exchange, and on a hook's queue.
    broker::publish_confirmed(
        &ch,
        &t.events_exchange(),
        "PostSignIn",
        b"\xff not an event",
        broker::persistent_json("x"),
    )
    .await
    .unwrap();
    broker::publish_confirmed(
        &ch,
        &t.deliveries_exchange(),
        hook["id"].as_str().unwrap(),
        b"{}",
        broker::persistent_json("y"),
    )
    .await
    .unwrap();
    wait_depth(&t.events_dead_queue(), 1, WAIT).await;
    wait_depth(&t.dead_queue(&hook_id(&hook)), 1, WAIT).await;
    let (_, reason) = take_one(&t.events_dead_queue()).await.unwrap();
    assert!(reason.unwrap().starts_with("unreadable event"));
    let (body, reason) = take_one(&t.dead_queue(&hook_id(&hook))).await.unwrap();
    assert!(reason.unwrap().starts_with("unreadable delivery"));
    assert_eq!(body, b"{}", "parked as it came");

    // Still alive: a good event goes through.
    p.ingest(json!({"event": "PostSignIn"})).await;
    assert_eq!(receiver.wait_for(1, WAIT).await.len(), 1);
    let _ = conn.close(200, "".into()).await;
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_and_replay_delivers_exactly_the_parked_events() {
    let p = Pipeline::start_with("replay", &[ms(100)], 1).await;
    let receiver = Receiver::start().await;
    receiver.set_status(503);
    let hook = p
        .create_hook(&["PostSignIn", "User.Created"], &receiver.url("h"))
        .await;
    let id = hook["id"].as_str().unwrap().to_owned();
    p.wait_hooks(1).await;
    let mut parked = Vec::new();
    // One at a time, so that the order they die in (the list's order) is known.
    for (n, event) in ["PostSignIn", "User.Created", "User.Created"]
        .into_iter()
        .enumerate()
    {
        let (_, body) = p.ingest(json!({"event": event})).await;
        parked.push(body["id"].as_str().unwrap().to_owned());
        wait_depth(
            &p.topology().dead_queue(&hook_id(&hook)),
            n as u32 + 1,
            WAIT,
        )
        .await;
    }

    let api = |path: &str| format!("http://{}/api/hooks/{id}{path}", p.router.addr);
    let res = p
        .http
        .get(api("/dead-letters?page=1&page_size=2"))
        .bearer_auth(pipeline::ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["total-number"], "3");
    let listed: serde_json::Value = res.json().await.unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert_eq!(listed[0]["eventId"], parked[0].as_str(), "oldest first");
    assert_eq!(listed[0]["event"], "PostSignIn");
    assert_eq!(listed[0]["reason"], "HTTP 503 after 2 attempts");
    assert_eq!(listed[0]["attempts"], 2);
    assert_eq!(listed[0]["payload"]["event"], "PostSignIn");
    assert_eq!(
        queue_depth(&p.topology().dead_queue(&hook_id(&hook))).await,
        Some(3),
        "listing takes nothing away"
    );

    // The endpoint is back: replay only User.Created, then the rest.
    receiver.set_status(204);
    let before = receiver.received().len();
    let replay = |body: serde_json::Value| {
        p.http
            .post(api("/dead-letters/replay"))
            .bearer_auth(pipeline::ADMIN_TOKEN)
            .json(&body)
            .send()
    };
    let res: serde_json::Value = replay(json!({"events": ["User.Created"]}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(res, json!({"replayed": 2}));
    let got = receiver.wait_for(before + 2, WAIT).await;
    let mut ids: Vec<String> = got[before..]
        .iter()
        .map(|r| r.header("webhook-id").to_owned())
        .collect();
    ids.sort();
    let mut expected = parked[1..].to_vec();
    expected.sort();
    assert_eq!(
        ids, expected,
        "the replayed deliveries keep their webhook-id"
    );
    assert_eq!(
        queue_depth(&p.topology().dead_queue(&hook_id(&hook))).await,
        Some(1)
    );

    let res: serde_json::Value = replay(json!({})).await.unwrap().json().await.unwrap();
    assert_eq!(res, json!({"replayed": 1}));
    let got = receiver.wait_for(before + 3, WAIT).await;
    assert_eq!(got[before + 2].header("webhook-id"), parked[0]);
    // Settled: the three routed deliveries died, and the three replayed ended too.
    eventually("the replayed deliveries to end", WAIT, async || {
        let settled = p.settled().await;
        check(settled, |s| {
            s.ended == s.deliveries + 3.0 && s.in_flight == 0.0 && s.routed == s.published
        })
    })
    .await;
    assert_eq!(
        receiver.received().len(),
        before + 3,
        "exactly the parked events"
    );
    assert_eq!(
        queue_depth(&p.topology().dead_queue(&hook_id(&hook))).await,
        Some(0)
    );
    let bad = p
        .http
        .post(api("/dead-letters/replay"))
        .bearer_auth(pipeline::ADMIN_TOKEN)
        .json(&json!({"colour": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_command_replays_dead_letters() {
    let p = Pipeline::start_with("replay-cli", &[ms(100)], 1).await;
    let receiver = Receiver::start().await;
    receiver.set_status(500);
    let hook = p.create_hook(&["PostSignIn"], &receiver.url("h")).await;
    p.wait_hooks(1).await;
    p.ingest(json!({"event": "PostSignIn"})).await;
    wait_depth(&p.topology().dead_queue(&hook_id(&hook)), 1, WAIT).await;
    receiver.set_status(204);
    let command = hookbus_router::Command::DeadLetters(hookbus_router::DeadLetterCommand::Replay {
        which: hookbus_router::WhichDeadLetters {
            hook: Some(hook["id"].as_str().unwrap().to_owned()),
            events_queue: false,
        },
        events: vec![],
        event_ids: vec![],
        since: None,
        until: None,
    });
    hookbus_router::run_command(&pipeline::common(&p.prefix), &Default::default(), &command)
        .await
        .unwrap();
    assert_eq!(receiver.wait_for(3, WAIT).await.len(), 3);
    assert_eq!(
        queue_depth(&p.topology().dead_queue(&hook_id(&hook))).await,
        Some(0)
    );

    // Looking creates nothing: a hook none of whose deliveries died has no dead-letter
    // queue, and listing leaves it so; an id no hook has is an error that names it.
    let list = |hook: String| {
        hookbus_router::Command::DeadLetters(hookbus_router::DeadLetterCommand::List {
            which: hookbus_router::WhichDeadLetters {
                hook: Some(hook),
                events_queue: false,
            },
            limit: 10,
        })
    };
    let quiet = p.create_hook(&["User.Created"], &receiver.url("q")).await;
    hookbus_router::run_command(
        &pipeline::common(&p.prefix),
        &Default::default(),
        &list(hook_id(&quiet).to_string()),
    )
    .await
    .unwrap();
    let stranger = HookId::generate();
    let err = hookbus_router::run_command(
        &pipeline::common(&p.prefix),
        &Default::default(),
        &list(stranger.to_string()),
    )
    .await
    .expect_err("an unknown hook is an error");
    assert!(err.to_string().contains(stranger.as_str()), "{err}");
    for id in [hook_id(&quiet), stranger] {
        assert_eq!(
            queue_depth(&p.topology().dead_queue(&id)).await,
            None,
            "declared"
        );
    }
    p.stop().await;
}

/// Waits until the deliverer owns `n` enabled hooks (it has loaded them).
async fn consuming(p: &Pipeline, deliverer: std::net::SocketAddr, n: f64) {
    let what = format!("the deliverer to own {n} hooks");
    eventually(what, WAIT, async || {
        let consumers = hookbus_contracts::metric_names::HOOKS_OWNED;
        check(pipeline::metric(&p.http, deliverer, consumers).await, |c| {
            *c == Some(n)
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_failing_longer_than_the_window_is_disabled_and_its_backlog_dead_lettered() {
    let schedule = [ms(300); 20];
    let p = Pipeline::start_with("auto-disable", &schedule, 0).await;
    let mut config = pipeline::deliverer_config(&p.prefix, &schedule);
    config.auto_disable_after = Duration::from_secs(1);
    config.hook_in_flight = 1;
    let deliverer = pipeline::start_deliverer(config).await;
    let store = hookbus_runtime::store::HookStore::new(
        REDIS_URL,
        hookbus_contracts::keys::RedisKeys::new(&p.prefix),
    )
    .unwrap();

    // A hook that fails once, recovers, and fails once more after the window: not disabled.
    let flaky = Receiver::start().await;
    flaky.script(&[500]);
    let flaky_hook = p.create_hook(&["User.Created"], &flaky.url("h")).await;
    consuming(&p, deliverer.addr, 1.0).await;
    p.ingest(json!({"event": "User.Created"})).await;
    flaky.wait_for(2, WAIT).await;
    // Not a wait for a signal: the second failure must come after the window has passed.
    tokio::time::sleep(ms(1500)).await;
    flaky.script(&[500]);
    p.ingest(json!({"event": "User.Created"})).await;
    flaky.wait_for(4, WAIT).await;
    assert!(
        store
            .get(&hook_id(&flaky_hook))
            .await
            .unwrap()
            .unwrap()
            .enabled,
        "a recovered hook was disabled"
    );

    // A hook that never succeeds: disabled once the window has passed, backlog parked.
    let down = Receiver::start().await;
    down.set_status(500);
    // Slow failures: while one attempt is under way the others wait in the queue, a backlog.
    down.set_delay(ms(200));
    let hook = p.create_hook(&["PostSignIn"], &down.url("h")).await;
    consuming(&p, deliverer.addr, 2.0).await;
    for _ in 0..10 {
        p.ingest(json!({"event": "PostSignIn"})).await;
    }
    eventually("the failing hook to be disabled", WAIT, async || {
        let enabled = store.get(&hook_id(&hook)).await.unwrap().unwrap().enabled;
        check(enabled, |e| !e)
    })
    .await;
    // Nothing is lost: once the retry tier has emptied, each of the ten is either in the dead
    // letters (the backlog, moved when the hook was disabled) or waiting in the paused queue
    // (retries that came back from the tier afterwards).
    let t = p.topology();
    let (dead, queue, tier) = (
        t.dead_queue(&hook_id(&hook)),
        t.hook_queue(&hook_id(&hook)),
        t.retry_tier(ms(300)),
    );
    let what = "dead letters + queued to make 10 once the retry tier is empty";
    let (parked, _, _) = eventually(what, WAIT, async || {
        let depths = (
            queue_depth(&dead).await,
            queue_depth(&queue).await,
            queue_depth(&tier).await,
        );
        match depths {
            (Some(d), Some(q), Some(0)) if d + q == 10 => Ok((d, q, 0)),
            seen => Err(seen),
        }
    })
    .await;
    assert!(
        parked >= 2,
        "the backlog was not dead-lettered, only the delivery that tripped the window"
    );
    let (_, reason) = take_one(&dead).await.unwrap();
    assert_eq!(
        reason.as_deref(),
        Some("failing for more than 1s: hook disabled")
    );
    assert_eq!(
        pipeline::metric(
            &p.http,
            deliverer.addr,
            "hookbus_hooks_disabled_total{reason=\"failing\"}"
        )
        .await,
        Some(1.0)
    );
    deliverer.stop().await;
    p.stop().await;
}
