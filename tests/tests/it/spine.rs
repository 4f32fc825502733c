//! The spine, end to end through real RabbitMQ, Redis and HTTP receivers: every event
//! reaches exactly its subscribers, signed both ways; fan-out; isolation of a slow
//! endpoint; and the ingest API's refusals, which publish nothing.

use std::collections::HashMap;
use std::time::Duration;

use hookbus_contracts::EventName;
use hookbus_tests::pipeline::{self, ingest_raw, queue_depth, Cleanup, INGEST_TOKEN};
use hookbus_tests::{check, eventually, Pipeline, Receiver};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_reaches_its_subscriber_and_no_other_signed_both_ways() {
    let p = Pipeline::start("events").await;
    let receiver = Receiver::start().await;
    let events: Vec<EventName> = EventName::all().collect();
    assert_eq!(events.len(), 29);
    let mut keys = HashMap::new();
    for (i, event) in events.iter().enumerate() {
        let hook = p
            .create_hook(&[event.as_str()], &receiver.url(&format!("h/{i}")))
            .await;
        keys.insert(
            format!("h/{i}"),
            (
                hook["id"].as_str().unwrap().to_owned(),
                hook["signingKey"].as_str().unwrap().to_owned(),
            ),
        );
    }
    p.wait_hooks(events.len()).await;

    let mut ids = HashMap::new();
    for event in &events {
        let (status, body) = p
            .ingest(json!({"event": event.as_str(), "userAgent": "test-agent"}))
            .await;
        assert_eq!(status, 202, "{body}");
        ids.insert(body["id"].as_str().unwrap().to_owned(), *event);
    }
    let got = receiver.wait_for(events.len(), WAIT).await;
    p.wait_settled().await;
    let got_after = receiver.received();
    assert_eq!(got.len(), events.len(), "missing deliveries");
    assert_eq!(
        got_after.len(),
        events.len(),
        "a hook got an event it does not want"
    );

    for r in got_after {
        let i: usize = r.path.trim_start_matches("h/").parse().unwrap();
        let (hook_id, key) = &keys[&r.path];
        let body = r.json();
        assert_eq!(
            body["event"],
            events[i].as_str(),
            "hook {i} got the wrong event"
        );
        assert_eq!(
            ids[r.header("webhook-id")],
            events[i],
            "webhook-id is the event id"
        );
        assert_eq!(body["hookId"], hook_id.as_str());
        assert!(
            std::str::from_utf8(&r.body)
                .unwrap()
                .ends_with(&format!(",\"hookId\":\"{hook_id}\"}}")),
            "hookId last"
        );
        assert_eq!(r.header("content-type"), "application/json");
        assert_eq!(r.header("user-agent"), "Logto (https://logto.io/)");
        r.verify(key).unwrap();
        assert!(
            r.verify("another-key").is_err(),
            "verification must be able to fail"
        );
    }
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_reaches_each_enabled_hook_once_and_unwanted_events_are_dropped() {
    let p = Pipeline::start("fanout").await;
    let receiver = Receiver::start().await;
    for path in ["a", "b", "c"] {
        p.create_hook(&["PostSignIn"], &receiver.url(path)).await;
    }
    let (status, _) = p
        .post_hook(json!({"events": ["PostSignIn"], "enabled": false, "config": {"url": receiver.url("disabled")}}))
        .await;
    assert_eq!(status, 201);
    p.wait_hooks(3).await;

    let (status, _) = p
        .ingest(json!({"event": "PostSignIn", "sessionId": "s"}))
        .await;
    assert_eq!(status, 202);
    let (status, _) = p.ingest(json!({"event": "Role.Created"})).await;
    assert_eq!(status, 202);
    receiver.wait_for(3, WAIT).await;
    p.wait_settled().await;
    let mut paths: Vec<String> = receiver.received().into_iter().map(|r| r.path).collect();
    paths.sort();
    assert_eq!(paths, ["a", "b", "c"]);

    let unmatched = "hookbus_router_events_total{outcome=\"unmatched\"}";
    eventually("the router to drop the unwanted event", WAIT, async || {
        check(p.router_metric(unmatched).await, |n| *n == 1.0)
    })
    .await;
    assert_eq!(
        queue_depth(&p.topology().events_queue()).await,
        Some(0),
        "the unwanted event was acked"
    );
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_endpoint_does_not_delay_another_hook() {
    let schedule = [Duration::from_millis(300)];
    let mut p = Pipeline::start_with("isolation", &schedule, 0).await;
    // The slow endpoint answers after 5 s, inside the attempt timeout: its attempts stay
    // under way (none times out and comes back) however long the fast hook's round takes.
    let mut config = hookbus_tests::pipeline::deliverer_config(&p.prefix, &schedule);
    config.attempt_timeout = Duration::from_secs(10);
    p.deliverers
        .push(hookbus_tests::pipeline::start_deliverer(config).await);
    let slow = Receiver::start().await;
    let fast = Receiver::start().await;
    slow.set_delay(Duration::from_millis(5000));
    p.create_hook(&["PostSignIn"], &slow.url("slow")).await;
    p.create_hook(&["PostSignIn"], &fast.url("fast")).await;
    p.wait_hooks(2).await;

    // Three rounds of the slow hook's in-flight limit.
    let limit =
        usize::from(hookbus_tests::pipeline::deliverer_config(&p.prefix, &[]).hook_in_flight);
    let n = 3 * limit;
    for _ in 0..n {
        assert_eq!(p.ingest(json!({"event": "PostSignIn"})).await.0, 202);
    }
    let got = fast.wait_for(n, WAIT).await;
    assert_eq!(got.len(), n);
    // The slow hook answers one round of its in-flight limit per 5 s; had the fast hook
    // queued behind it, the slow one would have had several rounds by now.
    let slow_started = slow.received().len();
    assert!(
        slow_started <= limit,
        "fast hook waited for {slow_started} slow requests"
    );
    assert!(slow_started >= 1, "the slow hook is being delivered to");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deliverer_holds_at_most_its_prefetch_across_all_hooks() {
    // 20 hooks whose endpoint hangs, 10 deliveries each: a deliverer allowed 40 messages
    // takes 2 of each hook's (its equal share), not the 10 a per-hook prefetch would let it
    // pull from every hook (after an outage, thousands of hooks times 128).
    let mut p = Pipeline::start_with("prefetch", &[Duration::from_secs(60)], 0).await;
    let hanging = Receiver::start().await;
    hanging.set_delay(Duration::from_secs(60));
    let mut queues = Vec::new();
    add_hooks(&p, &hanging, 0..20, &mut queues).await;
    let mut config = pipeline::deliverer_config(&p.prefix, &[Duration::from_secs(60)]);
    config.prefetch = 40;
    config.attempt_timeout = Duration::from_secs(60);
    config.drain_deadline = Duration::from_millis(500);
    p.deliverers.push(pipeline::start_deliverer(config).await);
    ingest_sign_ins(&p, 10).await;
    eventually(
        "the deliverer to hold its share of every hook",
        WAIT,
        async || {
            let held = held(&queues, 200).await;
            check(held, |held| *held == 40)
        },
    )
    .await;
    for _ in 0..20 {
        let started = hanging.received().len();
        assert!(started <= 40, "{started} deliveries under way");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(held(&queues, 200).await, 40, "no more taken while all hang");

    // 20 hooks more: the share falls to 1, and the first 20 consumers are started again with
    // it. Their old consumers keep the 2 deliveries each they hold until those end (here,
    // never: the endpoint hangs); without the restart the first 20 would go on taking 2.
    add_hooks(&p, &hanging, 20..40, &mut queues).await;
    for _ in 0..10 {
        assert_eq!(p.ingest(json!({"event": "PostSignIn"})).await.0, 202);
    }
    eventually(
        "the deliverer to take a share of 1 of every hook",
        WAIT,
        async || {
            let held = held(&queues, 600).await;
            check(held, |held| *held == 40 + 40)
        },
    )
    .await;
    p.stop().await;
}

/// Hooks `numbers` for `PostSignIn` at `receiver`, their queues added to `queues`.
async fn add_hooks(
    p: &Pipeline,
    receiver: &Receiver,
    numbers: std::ops::Range<usize>,
    queues: &mut Vec<String>,
) {
    for i in numbers.clone() {
        let hook = p
            .create_hook(&["PostSignIn"], &receiver.url(&format!("h/{i}")))
            .await;
        queues.push(p.topology().hook_queue(&pipeline::hook_id(&hook)));
    }
    p.wait_hooks(numbers.end).await;
}

async fn ingest_sign_ins(p: &Pipeline, n: usize) {
    for _ in 0..n {
        assert_eq!(p.ingest(json!({"event": "PostSignIn"})).await.0, 202);
    }
}

/// Deliveries taken from `queues` (ready no more), of the `published` they were given.
async fn held(queues: &[String], published: u32) -> u32 {
    let mut ready = 0;
    for queue in queues {
        ready += queue_depth(queue).await.unwrap_or(0);
    }
    published - ready
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_refusals_answer_as_documented_and_publish_nothing() {
    let prefix = pipeline::unique_prefix("ingest");
    let mut cleanup = Cleanup::new(&prefix, &[]);
    let producer = pipeline::start_producer(&prefix, pipeline::AMQP_URL, 1024).await;
    let http = reqwest::Client::new();
    let addr = producer.addr;
    let post =
        |token: Option<&'static str>, body: &[u8]| ingest_raw(&http, addr, token, body.to_vec());

    let (status, body) = post(Some(INGEST_TOKEN), b"{not json").await;
    assert_eq!(status, 400);
    assert!(body["message"].as_str().unwrap().contains("JSON"), "{body}");
    let (status, body) = post(Some(INGEST_TOKEN), br#"{"event":"User.Exploded"}"#).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("event.unknown"))
    );
    assert!(body["message"].as_str().unwrap().contains("User.Exploded"));
    let (status, _) = post(Some(INGEST_TOKEN), br#"{"userId":"u1"}"#).await;
    assert_eq!(status, 400);
    assert_eq!(post(None, br#"{"event":"PostSignIn"}"#).await.0, 401);
    assert_eq!(
        post(Some("wrong"), br#"{"event":"PostSignIn"}"#).await.0,
        401
    );
    let big = format!(r#"{{"event":"PostSignIn","pad":"{}"}}"#, "x".repeat(2048));
    assert_eq!(post(Some(INGEST_TOKEN), big.as_bytes()).await.0, 413);
    // An empty Idempotency-Key (an unset variable in a script) is refused, not ignored.
    let empty_key = http
        .post(format!("http://{addr}/api/events"))
        .bearer_auth(INGEST_TOKEN)
        .header("idempotency-key", "")
        .body(r#"{"event":"PostSignIn"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(empty_key.status(), 400);
    let body: serde_json::Value = empty_key.json().await.unwrap();
    assert_eq!(body["code"], "guard.invalid_input", "{body}");
    pipeline::assert_routing_errors_are_json(&http, addr, "/api/events", INGEST_TOKEN).await;

    let events_queue = hookbus_contracts::topology::Topology::new(&prefix).events_queue();
    assert_eq!(
        queue_depth(&events_queue).await,
        Some(0),
        "a refused request published something"
    );
    // The check above can fail: an accepted event is there.
    assert_eq!(
        post(Some(INGEST_TOKEN), br#"{"event":"PostSignIn"}"#)
            .await
            .0,
        202
    );
    assert_eq!(queue_depth(&events_queue).await, Some(1));
    producer.stop().await;

    // RabbitMQ unreachable: 503, and nothing is pretended.
    let down = pipeline::start_producer(&prefix, "amqp://guest:guest@127.0.0.1:1/%2f", 1024).await;
    let (status, body) = ingest_raw(
        &http,
        down.addr,
        Some(INGEST_TOKEN),
        br#"{"event":"PostSignIn"}"#.to_vec(),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    let ready = http
        .get(format!("http://{}/readyz", down.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    down.stop().await;
    cleanup.run().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hook_creation_validates_and_requires_the_admin_token() {
    let p = Pipeline::start("hooks").await;
    let url = format!("http://{}/api/hooks", p.router.addr);
    let body = json!({"events": ["PostSignIn"], "config": {"url": "https://example.com/h"}});
    let res = p.http.post(&url).json(&body).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let res = p
        .http
        .post(&url)
        .bearer_auth("wrong")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);

    let (status, hook) = p.post_hook(body).await;
    assert_eq!(status, 201);
    assert_eq!(hook["id"].as_str().unwrap().len(), 21);
    assert_eq!(hook["signingKey"].as_str().unwrap().len(), 32);
    assert_eq!(hook["enabled"], true);
    assert_eq!(hook["tenantId"], "default");

    let (status, err) = p
        .post_hook(json!({"events": [], "config": {"url": "https://example.com"}}))
        .await;
    assert_eq!(
        (status, err["code"].as_str()),
        (400, Some("hook.missing_events"))
    );
    let (status, err) = p
        .post_hook(json!({"events": ["Nope"], "config": {"url": "https://example.com"}}))
        .await;
    assert_eq!(status, 400);
    assert!(err["message"].as_str().unwrap().contains("Nope"), "{err}");
    let (status, err) = p
        .post_hook(json!({"events": ["PostSignIn"], "config": {"url": "ftp://example.com"}}))
        .await;
    assert_eq!(status, 400, "{err}");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_published_right_after_a_hook_is_created_reaches_it() {
    let p = Pipeline::start("fresh-hook").await;
    let receiver = Receiver::start().await;
    p.create_hook(&["PostSignIn"], &receiver.url("h")).await;
    // No waiting for caches: the router that answered 201 already routes by the new hook.
    assert_eq!(p.ingest(json!({"event": "PostSignIn"})).await.0, 202);
    assert_eq!(receiver.wait_for(1, WAIT).await.len(), 1);
    p.stop().await;
}
