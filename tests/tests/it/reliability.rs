//! The loss and hang paths found in review, each with the test that showed it: two routers
//! answering hook changes, returns on a shared confirm channel, a store that comes back
//! older, a broker that blocks publishers, proxies in the environment, re-enabling a failed
//! hook, settles that keep failing, looking at dead letters, poison ids, the drain, and what
//! a disabled hook receives.

use std::collections::HashSet;
use std::time::Duration;

use hookbus_contracts::topology::QueueType;
use hookbus_contracts::HookId;
use hookbus_tests::pipeline::{
    self, hook_id, readiness, take_one, wait_depth, Cleanup, Pipeline, ADMIN_TOKEN,
};
use hookbus_tests::{check, eventually, service, Receiver};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(20);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// `PATCH /api/hooks/:id` on the router at `router`.
async fn patch_hook(
    http: &reqwest::Client,
    router: std::net::SocketAddr,
    id: &HookId,
    body: Value,
) -> (u16, Value) {
    let path = format!("/api/hooks/{id}");
    pipeline::admin(http, router, reqwest::Method::PATCH, &path, Some(body)).await
}

/// Waits until the metric at `addr` reaches at least `n`.
async fn metric_reaches(http: &reqwest::Client, addr: std::net::SocketAddr, name: &str, n: f64) {
    eventually(format!("{name} at {addr} to reach {n}"), WAIT, async || {
        check(pipeline::metric(http, addr, name).await, |v| {
            v.unwrap_or(0.0) >= n
        })
    })
    .await;
}

/// Waits until the hook `id` is disabled in `store`.
async fn disabled(store: &hookbus_runtime::store::HookStore, id: &HookId) {
    eventually("the failing hook to be disabled", WAIT, async || {
        let enabled = store.get(id).await.unwrap().unwrap().enabled;
        check(enabled, |e| !e)
    })
    .await;
}

/// A TCP listener that counts the connections made to it and closes them: what a proxy
/// would see.
async fn connection_counter() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(stream);
        }
    });
    (port, count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_variables_in_the_environment_do_not_carry_deliveries() {
    // The child deliverer's retry schedule, so that the cleanup deletes its tier.
    let p = Pipeline::start_with("proxy-env", &service::RETRY_SCHEDULE, 0).await;
    let (proxy_port, proxied) = connection_counter().await;
    let proxy = format!("http://127.0.0.1:{proxy_port}");
    let mut deliverer =
        service::command(env!("CARGO_BIN_EXE_hookbus-svc"), &["deliverer"], &p.prefix)
            .envs([
                ("HTTP_PROXY", proxy.as_str()),
                ("HTTPS_PROXY", proxy.as_str()),
                ("ALL_PROXY", proxy.as_str()),
                ("http_proxy", proxy.as_str()),
                ("all_proxy", proxy.as_str()),
            ])
            .spawn()
            .expect("hookbus-svc starts");
    let receiver = Receiver::start().await;
    p.create_hook(&["User.Created"], &receiver.url("h")).await;
    let (status, _) = p.ingest(json!({"event": "User.Created"})).await;
    assert_eq!(status, 202);
    let got = receiver.wait_for(1, WAIT).await;
    assert_eq!(got.len(), 1, "the delivery did not reach its endpoint");
    assert_eq!(
        proxied.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "a delivery went through the proxy of the environment"
    );
    let _ = deliverer.kill().await;
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn re_enabling_an_auto_disabled_hook_starts_its_failing_streak_afresh() {
    let schedule = [ms(200); 30];
    let p = Pipeline::start_with("re-enable", &schedule, 0).await;
    let mut config = pipeline::deliverer_config(&p.prefix, &schedule);
    config.auto_disable_after = Duration::from_secs(1);
    let deliverer = pipeline::start_deliverer(config).await;
    let receiver = Receiver::start().await;
    receiver.set_status(500);
    let hook = p.create_hook(&["User.Created"], &receiver.url("h")).await;
    let id = hook_id(&hook);
    metric_reaches(
        &p.http,
        deliverer.addr,
        hookbus_contracts::metric_names::HOOKS_OWNED,
        1.0,
    )
    .await;
    p.ingest(json!({"event": "User.Created"})).await;
    let store = hookbus_runtime::store::HookStore::new(
        pipeline::REDIS_URL,
        hookbus_contracts::keys::RedisKeys::new(&p.prefix),
    )
    .unwrap();
    disabled(&store, &id).await;

    // Re-enabled: its next failure is retried (and then succeeds), not dead-lettered by
    // the streak of before.
    let (status, _) = patch_hook(&p.http, p.router.addr, &id, json!({"enabled": true})).await;
    assert_eq!(status, 200);
    let (status, accepted) = p.ingest(json!({"event": "User.Created"})).await;
    assert_eq!(status, 202);
    let event_id = accepted["id"].as_str().unwrap().to_owned();
    let attempts = || {
        receiver
            .received()
            .iter()
            .filter(|r| r.header("webhook-id") == event_id)
            .count()
    };
    eventually("the re-enabled hook's event to arrive", WAIT, async || {
        check(attempts(), |n| *n > 0)
    })
    .await;
    receiver.set_status(204);
    let what = "the failed attempt to be retried (not dead-lettered by the old failing streak)";
    eventually(what, WAIT, async || check(attempts(), |n| *n >= 2)).await;
    assert!(store.get(&id).await.unwrap().unwrap().enabled);
    deliverer.stop().await;
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_hook_receives_nothing_published_while_it_was_disabled() {
    let p = Pipeline::start("disabled-drops").await;
    let receiver = Receiver::start().await;
    let hook = p.create_hook(&["User.Created"], &receiver.url("h")).await;
    let id = hook_id(&hook);
    p.wait_hooks(1).await;
    let (status, _) = patch_hook(&p.http, p.router.addr, &id, json!({"enabled": false})).await;
    assert_eq!(status, 200);
    let (status, _) = p.ingest(json!({"event": "User.Created"})).await;
    assert_eq!(status, 202);
    // The router has settled it (no hook wants it) before the hook comes back.
    metric_reaches(
        &p.http,
        p.router.addr,
        "hookbus_router_events_total{outcome=\"unmatched\"}",
        1.0,
    )
    .await;
    let (status, _) = patch_hook(&p.http, p.router.addr, &id, json!({"enabled": true})).await;
    assert_eq!(status, 200);
    p.wait_hooks(1).await;
    let (_, accepted) = p.ingest(json!({"event": "User.Created"})).await;
    let after = accepted["id"].as_str().unwrap().to_owned();
    let got = receiver.wait_for(1, WAIT).await;
    // The event after re-enabling is routed after the one before it: once it has arrived,
    // the earlier one would have too.
    assert_eq!(got.len(), 1, "an event published while disabled arrived");
    assert_eq!(got[0].header("webhook-id"), after);
    p.stop().await;
}

/// A direct exchange with one queue bound to `bound`; deleted with the prefix.
async fn exchange_with_one_binding(prefix: &str) -> (lapin::Connection, String, String) {
    use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
    use lapin::types::FieldTable;
    let conn = hookbus_runtime::broker::connect(pipeline::AMQP_URL, "hookbus-test")
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    let exchange = format!("{prefix}.deliveries");
    let queue = format!("{prefix}.events");
    ch.exchange_declare(
        exchange.as_str().into(),
        lapin::ExchangeKind::Direct,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.queue_declare(
        queue.as_str().into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.queue_bind(
        queue.as_str().into(),
        exchange.as_str().into(),
        "bound".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    (conn, exchange, queue)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unroutable_returns_are_attributed_to_their_own_publish() {
    use futures::StreamExt;
    let prefix = pipeline::unique_prefix("returns");
    let mut cleanup = Cleanup::new(&prefix, &[]);
    let (conn, exchange, _) = exchange_with_one_binding(&prefix).await;
    let conn = std::sync::Arc::new(conn);
    // The router's publishing path: 256 publishes at once through its confirm channels,
    // every other one to a key no queue takes. (On one shared channel, 185 of 2,000 were
    // reported the wrong way round.)
    let pool = hookbus_runtime::broker::ConfirmPool::open(conn.clone(), 32)
        .await
        .unwrap();
    let results: Vec<(bool, Result<(), hookbus_runtime::broker::PublishError>)> =
        futures::stream::iter(0..4000)
            .map(|i| {
                let (pool, exchange) = (&pool, &exchange);
                async move {
                    let bound = i % 2 == 0;
                    let key = if bound { "bound" } else { "nowhere" };
                    let props = hookbus_runtime::broker::persistent_json(&format!("m{i}"));
                    let lent = pool.lend().await.unwrap();
                    let result = hookbus_runtime::broker::publish_confirmed(
                        lent.channel(),
                        exchange,
                        key,
                        b"{}",
                        props,
                    )
                    .await;
                    (bound, result)
                }
            })
            .buffer_unordered(256)
            .collect()
            .await;
    let unbound_reported_delivered = results.iter().filter(|(b, r)| !b && r.is_ok()).count();
    let bound_reported_returned = results.iter().filter(|(b, r)| *b && r.is_err()).count();
    let _ = conn.close(200, "".into()).await;
    cleanup.run().await;
    assert_eq!(
        (unbound_reported_delivered, bound_reported_returned),
        (0, 0),
        "returns attributed to the wrong publish"
    );
}

/// Publishes `PostSignIn` (wanted by a hook of its own) until `stop`, so that both routers
/// are busy while hooks change.
fn busy_stream(
    p: &Pipeline,
    stop: tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let (http, addr) = (p.http.clone(), p.producer.addr);
    tokio::spawn(async move {
        while !stop.is_cancelled() {
            let body = serde_json::to_vec(&json!({"event": "PostSignIn"})).unwrap();
            pipeline::ingest_raw(&http, addr, Some(pipeline::INGEST_TOKEN), body).await;
            // The stream's pace, not a wait.
            tokio::time::sleep(ms(2)).await;
        }
    })
}

/// Sums a metric over several processes.
async fn metric_sum(http: &reqwest::Client, addrs: &[std::net::SocketAddr], name: &str) -> f64 {
    let mut sum = 0.0;
    for addr in addrs {
        sum += pipeline::metric(http, *addr, name).await.unwrap_or(0.0);
    }
    sum
}

/// Waits until the routers have published `n` deliveries of `User.Created` in all.
async fn routed_reaches(p: &Pipeline, routers: &[std::net::SocketAddr], n: usize) {
    let name = "hookbus_router_deliveries_published_total{event=\"User.Created\"}";
    eventually(format!("{n} deliveries routed"), WAIT, async || {
        check(
            metric_sum(&p.http, routers, name).await as usize,
            |routed| *routed >= n,
        )
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_answered_by_one_router_is_routed_by_every_router() {
    let p = Pipeline::start_with("two-routers", &[ms(300)], 2).await;
    let second = pipeline::start_router(&p.prefix).await;
    let third = pipeline::start_router(&p.prefix).await;
    p.wait_ready(second.addr).await;
    p.wait_ready(third.addr).await;
    let routers = [p.router.addr, second.addr, third.addr];
    let receiver = Receiver::start().await;
    p.create_hook(&["PostSignIn"], &receiver.url("busy")).await;
    let stop = tokio_util::sync::CancellationToken::new();
    let busy = busy_stream(&p, stop.clone());

    // Create a hook through one router, publish at once; the next cycle through another.
    const CYCLES: usize = 24;
    let mut hooks = Vec::new();
    let mut published: Vec<String> = Vec::new();
    for cycle in 0..CYCLES {
        let router = routers[cycle % routers.len()];
        let res = p
            .http
            .post(format!("http://{router}/api/hooks"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({"events": ["User.Created"], "config": {"url": receiver.url(&format!("h{cycle}"))}}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        hooks.push(hook_id(&res.json().await.unwrap()));
        let (status, accepted) = p.ingest(json!({"event": "User.Created"})).await;
        assert_eq!(status, 202);
        published.push(accepted["id"].as_str().unwrap().to_owned());
        // Routed before the next change: an event still queued when a later change is
        // answered is routed by that later configuration, which is right but not what this
        // cycle checks.
        routed_reaches(&p, &routers, (1..=cycle + 1).sum()).await;
    }
    // Hook k must get every event published from cycle k on.
    let expected: usize = (1..=CYCLES).sum();
    let got_for = |cycle: usize| -> HashSet<String> {
        receiver
            .received()
            .iter()
            .filter(|r| r.path == format!("h{cycle}"))
            .map(|r| r.header("webhook-id").to_owned())
            .collect()
    };
    let what = format!(
        "all {expected} deliveries (one missing is an event published after a router's 201 \
         routed without the new hook); missing"
    );
    eventually(what, WAIT, async || {
        let missing: usize = (0..CYCLES)
            .map(|k| {
                let got = got_for(k);
                published[k..]
                    .iter()
                    .filter(|id| !got.contains(*id))
                    .count()
            })
            .sum();
        check(missing, |m| *m == 0)
    })
    .await;

    // Disable each through one router; an event published after the 200 must not reach it.
    let mut after_disable = Vec::new();
    for (k, id) in hooks.iter().enumerate() {
        let router = routers[(k + 1) % routers.len()];
        let (status, _) = patch_hook(&p.http, router, id, json!({"enabled": false})).await;
        assert_eq!(status, 200);
        let (_, accepted) = p.ingest(json!({"event": "User.Created"})).await;
        after_disable.push(accepted["id"].as_str().unwrap().to_owned());
        let after: usize = (0..=k).map(|j| CYCLES - 1 - j).sum();
        routed_reaches(&p, &routers, (1..=CYCLES).sum::<usize>() + after).await;
    }
    stop.cancel();
    busy.await.unwrap();
    // Every event has been settled by some router before anything is concluded.
    let published_events =
        pipeline::metric(&p.http, p.producer.addr, "hookbus_events_published_total")
            .await
            .unwrap();
    eventually("the routers to settle every event", WAIT, async || {
        let settled = metric_sum(&p.http, &routers, "hookbus_router_events_total").await;
        check(settled, |n| *n >= published_events)
    })
    .await;
    // Routed exactly: event k of the first phase to hooks 0..=k, event k of the second to
    // the hooks not disabled yet (k+1..).
    let routed = metric_sum(
        &p.http,
        &routers,
        "hookbus_router_deliveries_published_total{event=\"User.Created\"}",
    )
    .await;
    let after: usize = (0..CYCLES).map(|k| CYCLES - 1 - k).sum();
    assert_eq!(
        routed as usize,
        expected + after,
        "deliveries routed to hooks disabled before the event, or missing"
    );
    second.stop().await;
    third.stop().await;
    p.stop().await;
}

/// `POST /api/events` with an optional `Idempotency-Key`; status, `Retry-After`, body.
async fn ingest_keyed(
    http: &reqwest::Client,
    addr: std::net::SocketAddr,
    key: Option<&str>,
) -> (u16, Option<String>, Value) {
    let mut req = http
        .post(format!("http://{addr}/api/events"))
        .bearer_auth(pipeline::INGEST_TOKEN)
        .timeout(Duration::from_secs(20))
        .json(&json!({"event": "User.Created"}));
    if let Some(key) = key {
        req = req.header("idempotency-key", key);
    }
    let res = req.send().await.expect("the producer answers in time");
    let status = res.status().as_u16();
    let retry_after = res
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, retry_after, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_blocks_publishers_gets_answers_not_hangs() {
    use hookbus_tests::servers::RabbitNode;
    let node = RabbitNode::start().await;
    let servers = pipeline::Servers {
        amqp_url: node.amqp_url(),
        ..pipeline::Servers::default()
    };
    let prefix = pipeline::unique_prefix("blocked");
    let mut cleanup = Cleanup::on(&servers, &prefix, &[]);
    let mut config = pipeline::producer_config(&prefix, &servers, 256 * 1024);
    config.publish_timeout = Duration::from_secs(1);
    let producer = pipeline::start_producer_with(config).await;
    let http = reqwest::Client::new();
    let ready = async || readiness(&http, producer.addr).await.map(drop);
    eventually("the producer to be ready", Duration::from_secs(60), ready).await;
    let (status, _, _) = ingest_keyed(&http, producer.addr, None).await;
    assert_eq!(status, 202);

    // A memory alarm: RabbitMQ blocks every publishing connection.
    assert!(node.ctl(&["set_vm_memory_high_watermark", "0"]).await);
    let started = tokio::time::Instant::now();
    let (status, retry_after, body) = ingest_keyed(&http, producer.addr, Some("k-1")).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(retry_after.as_deref(), Some("1"));
    assert!(started.elapsed() < Duration::from_secs(10));
    // The first attempt is unsettled: its key is held, the retry publishes nothing.
    let (status, _, body) = ingest_keyed(&http, producer.addr, Some("k-1")).await;
    assert_eq!(status, 409, "{body}");
    let what = "/readyz to fail while RabbitMQ blocks publishers";
    eventually(what, Duration::from_secs(5), async || {
        match readiness(&http, producer.addr).await {
            Ok(body) => Err(body),
            Err(_) => Ok(()),
        }
    })
    .await;
    // The SDK answers with an error of its own kind, in time.
    let sdk = hookbus_producer::Publisher::connect(&node.amqp_url(), &prefix)
        .await
        .unwrap()
        .with_timeout(Duration::from_secs(1));
    let name = hookbus_contracts::EventName::parse("User.Created").unwrap();
    let err = tokio::time::timeout(
        Duration::from_secs(5),
        sdk.publish_event(name, Default::default()),
    )
    .await
    .expect("the SDK publish returns within its deadline")
    .unwrap_err();
    assert!(
        matches!(
            err,
            hookbus_runtime::broker::PublishError::Timeout(_)
                | hookbus_runtime::broker::PublishError::Blocked
        ),
        "{err}"
    );

    // The alarm clears: the first attempt is confirmed, and the retry gets its answer.
    assert!(node.ctl(&["set_vm_memory_high_watermark", "0.4"]).await);
    let what = "the retry to get the first attempt's answer";
    let replayed = eventually(what, Duration::from_secs(30), async || {
        let (status, _, body) = ingest_keyed(&http, producer.addr, Some("k-1")).await;
        check((status, body), |(status, _)| *status == 202)
    })
    .await
    .1;
    assert!(replayed["id"].is_string());
    let ready = async || readiness(&http, producer.addr).await.map(drop);
    eventually(
        "the producer to be ready again",
        Duration::from_secs(10),
        ready,
    )
    .await;
    let (status, _, _) = ingest_keyed(&http, producer.addr, None).await;
    assert_eq!(status, 202);
    producer.stop().await;
    cleanup.run().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_ids_and_misrouted_deliveries_are_parked_without_a_crash() {
    use hookbus_runtime::broker;
    let p = Pipeline::start("poison-ids").await;
    let receiver = Receiver::start().await;
    let hook = p.create_hook(&["PostSignIn"], &receiver.url("h")).await;
    let other = p
        .create_hook(&["User.Created"], &receiver.url("other"))
        .await;
    p.wait_hooks(2).await;
    let (id, other_id) = (hook_id(&hook), hook_id(&other));
    p.activate(&id).await;
    let conn = broker::connect(pipeline::AMQP_URL, "hookbus-test")
        .await
        .unwrap();
    let ch = broker::confirm_channel(&conn).await.unwrap();
    let t = p.topology();
    let delivery = |hook: &str, event_id: &str| {
        serde_json::to_vec(&json!({"v": "1", "hookId": hook, "event": {
            "id": event_id, "name": "PostSignIn", "acceptedAtMs": 1, "payload": {"event": "PostSignIn"}
        }, "attempts": 0}))
        .unwrap()
    };
    // An event id that cannot be a header value, and a delivery for another hook.
    for (body, msg_id) in [
        (delivery(id.as_str(), "evt\u{7}\r\nx-injected: 1"), "a"),
        (
            delivery(other_id.as_str(), "0190f0f0-0000-7000-8000-000000000001"),
            "b",
        ),
    ] {
        broker::publish_confirmed(
            &ch,
            &t.deliveries_exchange(),
            id.as_str(),
            &body,
            broker::persistent_json(msg_id),
        )
        .await
        .unwrap();
    }
    wait_depth(&t.dead_queue(&id), 2, WAIT).await;
    let mut reasons = Vec::new();
    while let Some((_, reason)) = take_one(&t.dead_queue(&id)).await {
        reasons.push(reason.unwrap_or_default());
    }
    reasons.sort();
    assert!(reasons[0].contains("queue of hook"), "{reasons:?}");
    assert!(reasons[1].starts_with("unreadable delivery"), "{reasons:?}");
    assert!(receiver.received().is_empty(), "a poison delivery was sent");
    // Still alive.
    p.ingest(json!({"event": "PostSignIn"})).await;
    assert_eq!(receiver.wait_for(1, WAIT).await.len(), 1);
    let _ = conn.close(200, "".into()).await;
    p.stop().await;
}

/// A policy on the shared broker for this test's queues only (`pattern` starts with the
/// test's prefix), cleared when dropped.
struct Policy(String);

impl Policy {
    /// Sets the policy and waits until `queue` has it.
    async fn set(name: &str, pattern: &str, definition: &str, queue: &str) -> Policy {
        let ok = tokio::process::Command::new("rabbitmqctl")
            .args(["set_policy", "--apply-to", "queues", "--priority", "100"])
            .args([name, pattern, definition])
            .stdout(std::process::Stdio::null())
            .status()
            .await
            .is_ok_and(|s| s.success());
        assert!(ok, "rabbitmqctl set_policy failed");
        applied(name, queue, true).await;
        Policy(name.to_owned())
    }

    /// Clears the policy and waits until `queue` no longer has it.
    async fn clear(self, queue: &str) {
        let name = self.0.clone();
        drop(self);
        applied(&name, queue, false).await;
    }
}

/// Waits until `rabbitmqctl list_queues` shows `queue` with the policy `name`, or without.
async fn applied(name: &str, queue: &str, wanted: bool) {
    let what = format!("{queue} to have policy {name}: {wanted}");
    eventually(what, WAIT, async || {
        let out = tokio::process::Command::new("rabbitmqctl")
            .args(["list_queues", "-q", "--no-table-headers", "name", "policy"])
            .output()
            .await
            .unwrap();
        let listed = String::from_utf8_lossy(&out.stdout).into_owned();
        let line = listed
            .lines()
            .find(|l| l.starts_with(queue))
            .map(str::to_owned);
        let has = line.as_ref().is_some_and(|l| l.trim_end().ends_with(name));
        check(line, |_| has == wanted)
    })
    .await;
}

impl Drop for Policy {
    fn drop(&mut self) {
        let _ = std::process::Command::new("rabbitmqctl")
            .args(["clear_policy", &self.0])
            .stdout(std::process::Stdio::null())
            .status();
    }
}

const REFUSE_ALL: &str = r#"{"max-length":0,"overflow":"reject-publish"}"#;

/// The shared servers with classic delivery queues: a quorum queue admits one message past a
/// zero length limit, so only a classic queue refuses every publish under [`REFUSE_ALL`].
/// What these tests check, how the services settle a publish the broker refuses, is the
/// same for either kind.
fn refusing_servers() -> pipeline::Servers {
    pipeline::Servers {
        hook_queues: QueueType::Classic,
        ..pipeline::Servers::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_the_broker_refuses_is_parked_not_attempted_in_a_loop() {
    let schedule = [ms(300)];
    let p = Pipeline::start_on("settle-loop", refusing_servers(), &schedule, 1).await;
    // The retry tier refuses messages (a queue at its length limit).
    let tier = p.topology().retry_tier(schedule[0]);
    let _policy = Policy::set(&p.prefix, &format!("^{tier}$"), REFUSE_ALL, &tier).await;
    let receiver = Receiver::start().await;
    receiver.set_status(500);
    let hook = p.create_hook(&["User.Created"], &receiver.url("h")).await;
    p.wait_hooks(1).await;
    p.ingest(json!({"event": "User.Created"})).await;
    let dead = p.topology().dead_queue(&hook_id(&hook));
    wait_depth(&dead, 1, WAIT).await;
    let (_, reason) = take_one(&dead).await.unwrap();
    let reason = reason.unwrap();
    assert!(reason.contains("retry could not be scheduled"), "{reason}");
    assert_eq!(
        receiver.received().len(),
        1,
        "the endpoint was attempted again for a retry that could not be settled"
    );
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_the_broker_refuses_to_route_backs_off_then_is_parked() {
    let p = Pipeline::start_on("route-loop", refusing_servers(), &[ms(300), ms(600)], 1).await;
    let receiver = Receiver::start().await;
    let hook = p.create_hook(&["User.Created"], &receiver.url("h")).await;
    p.wait_hooks(1).await;
    p.activate(&hook_id(&hook)).await;
    // The hook's queue refuses messages.
    let queue = p.topology().hook_queue(&hook_id(&hook));
    let policy = Policy::set(&p.prefix, &format!("^{queue}$"), REFUSE_ALL, &queue).await;
    p.ingest(json!({"event": "User.Created"})).await;
    // Within a second, an immediate requeue would have gone round dozens of times. (A
    // measurement window, not a wait for a signal: the check is how often in that time.)
    tokio::time::sleep(Duration::from_secs(1)).await;
    let requeued = pipeline::metric(
        &p.http,
        p.router.addr,
        "hookbus_router_events_total{outcome=\"requeued\"}",
    )
    .await
    .unwrap_or(0.0);
    assert!(requeued <= 5.0, "requeued {requeued} times in a second");
    let dead = p.topology().events_dead_queue();
    wait_depth(&dead, 1, WAIT).await;
    let events_dead = |method: reqwest::Method, path: &'static str| {
        let (http, addr) = (p.http.clone(), p.router.addr);
        async move {
            let path = format!("/api/events/dead-letters{path}");
            let body = (method == reqwest::Method::POST).then(|| json!({}));
            pipeline::admin(&http, addr, method, &path, body).await
        }
    };
    let (_, listed) = events_dead(reqwest::Method::GET, "").await;
    let reason = listed[0]["reason"].as_str().unwrap();
    assert!(reason.contains("could not be routed"), "{listed}");
    assert_eq!(listed[0]["event"], "User.Created");

    // Once the queue takes messages again, the parked event is replayed to the router.
    policy.clear(&queue).await;
    let (_, replayed) = events_dead(reqwest::Method::POST, "/replay").await;
    assert!(replayed["replayed"].as_u64().is_some(), "{replayed}");
    assert_eq!(receiver.wait_for(1, WAIT).await.len(), 1, "never replayed");
    assert_eq!(receiver.received().len(), 1);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempts_that_finish_during_the_drain_are_logged_and_counted() {
    let mut p = Pipeline::start("journal-drain").await;
    let receiver = Receiver::start().await;
    // Long enough that the deliverer is told to stop while the attempt is under way.
    receiver.set_delay(ms(1500));
    let hook = p.create_hook(&["User.Created"], &receiver.url("h")).await;
    let id = hook_id(&hook);
    p.wait_hooks(1).await;
    p.ingest(json!({"event": "User.Created"})).await;
    receiver.wait_for(1, WAIT).await;
    // SIGTERM (the shutdown token) mid-attempt: the drain lets it finish.
    p.deliverers.pop().unwrap().stop().await;
    let get = |path: String| {
        let (http, addr) = (p.http.clone(), p.router.addr);
        async move { pipeline::admin(&http, addr, reqwest::Method::GET, &path, None).await }
    };
    let (_, shown) = get(format!("/api/hooks/{id}?includeExecutionStats=true")).await;
    assert_eq!(
        shown["executionStats"]["requestCount"], 1,
        "the attempt that finished during the drain was not counted: {shown}"
    );
    let (_, logs) = get(format!("/api/hooks/{id}/recent-logs")).await;
    assert_eq!(logs.as_array().map(Vec::len), Some(1), "not logged: {logs}");
    p.stop().await;
}

/// Deletes every Redis key of `prefix`: what a Redis restarted without persistence holds.
async fn wipe_redis(prefix: &str) {
    use deadpool_redis::redis::{self, AsyncCommands};
    let pool = deadpool_redis::Config::from_url(pipeline::REDIS_URL)
        .create_pool(Some(deadpool_redis::Runtime::Tokio1))
        .unwrap();
    let mut conn = pool.get().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut *conn)
        .await
        .unwrap();
    let _: () = conn.del(keys).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_store_that_comes_back_empty_keeps_routing_until_restored() {
    let p = Pipeline::start("store-regressed").await;
    let receiver = Receiver::start().await;
    let hook = p.create_hook(&["User.Created"], &receiver.url("h")).await;
    let id = hook_id(&hook);
    p.wait_hooks(1).await;
    p.ingest(json!({"event": "User.Created"})).await;
    receiver.wait_for(1, WAIT).await;

    // Redis loses the prefix, then the version climbs back past what the processes knew.
    wipe_redis(&p.prefix).await;
    for addr in [p.router.addr, p.deliverers[0].addr] {
        let what = format!("{addr} to report the regression on /readyz");
        eventually(what, WAIT, async || match readiness(&p.http, addr).await {
            Err((503, body)) if body["hook_store"] == false => Ok(()),
            seen => Err(seen),
        })
        .await;
    }
    {
        use deadpool_redis::redis::AsyncCommands;
        let pool = deadpool_redis::Config::from_url(pipeline::REDIS_URL)
            .create_pool(Some(deadpool_redis::Runtime::Tokio1))
            .unwrap();
        let mut conn = pool.get().await.unwrap();
        let _: () = conn
            .set(format!("{}:hooks:version", p.prefix), 1000)
            .await
            .unwrap();
    }
    assert_eq!(
        pipeline::metric(&p.http, p.router.addr, "hookbus_hook_store_consistent").await,
        Some(0.0)
    );
    // Still routed and delivered by the last good snapshot, through two refresh periods.
    for n in 2..=3 {
        p.ingest(json!({"event": "User.Created"})).await;
        assert_eq!(
            receiver.wait_for(n, WAIT).await.len(),
            n,
            "an event for a hook hookbus knew was dropped after the store regressed"
        );
        // Not a wait for a signal: time passes (two refresh periods of the hook cache) while
        // the processes keep the last good snapshot, which is what is checked.
        tokio::time::sleep(ms(450)).await;
    }
    // Changes wait for the operator.
    let (status, _) = p
        .post_hook(json!({"events": ["PostSignIn"], "config": {"url": receiver.url("x")}}))
        .await;
    assert_eq!(status, 503);

    // The way out: the router writes its last good snapshot back.
    let res = p
        .http
        .post(format!("http://{}/api/hook-store/restore", p.router.addr))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    for addr in [p.router.addr, p.deliverers[0].addr] {
        let what = format!("{addr} to be ready again");
        eventually(what, WAIT, async || {
            readiness(&p.http, addr).await.map(drop)
        })
        .await;
    }
    let res = p
        .http
        .get(format!("http://{}/api/hooks/{id}", p.router.addr))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "the hook was not written back");
    p.ingest(json!({"event": "User.Created"})).await;
    assert_eq!(receiver.wait_for(4, WAIT).await.len(), 4);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_survive_being_listed_many_times() {
    let p = Pipeline::start("dead-listing").await;
    let receiver = Receiver::start().await;
    receiver.set_status(400);
    let hook = p.create_hook(&["User.Created"], &receiver.url("h")).await;
    let id = hook_id(&hook);
    p.wait_hooks(1).await;
    for _ in 0..3 {
        p.ingest(json!({"event": "User.Created"})).await;
    }
    let dead = p.topology().dead_queue(&id);
    wait_depth(&dead, 3, WAIT).await;
    // RabbitMQ 4's default for quorum queues: a message returned 20 times is dropped.
    let _policy = Policy::set(
        &p.prefix,
        &format!("^{dead}$"),
        r#"{"delivery-limit":20}"#,
        &dead,
    )
    .await;
    let list = || async {
        let res = p
            .http
            .get(format!(
                "http://{}/api/hooks/{id}/dead-letters",
                p.router.addr
            ))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let letters: Vec<Value> = res.json().await.unwrap();
        letters
            .iter()
            .map(|l| l["eventId"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let first = list().await;
    assert_eq!(first.len(), 3);
    for n in 0..25 {
        assert_eq!(list().await, first, "listing {n} changed the dead letters");
    }
    assert_eq!(pipeline::queue_depth(&dead).await, Some(3));
    p.stop().await;
}
