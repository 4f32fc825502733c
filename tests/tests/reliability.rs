//! The loss and hang paths found in review, each with the test that showed it: two routers
//! answering hook changes, returns on a shared confirm channel, a store that comes back
//! older, a broker that blocks publishers, proxies in the environment, re-enabling a failed
//! hook, settles that keep failing, looking at dead letters, poison ids, the drain, and what
//! a disabled hook receives.

use std::collections::HashSet;
use std::time::Duration;

use hookbus_contracts::HookId;
use hookbus_tests::pipeline::{self, Pipeline, ADMIN_TOKEN};
use hookbus_tests::{service, Receiver};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(20);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn hook_id(hook: &Value) -> HookId {
    HookId::parse(hook["id"].as_str().unwrap()).unwrap()
}

/// `PATCH /api/hooks/:id` on the router at `router`.
async fn patch_hook(
    http: &reqwest::Client,
    router: std::net::SocketAddr,
    id: &HookId,
    body: Value,
) -> (u16, Value) {
    let res = http
        .patch(format!("http://{router}/api/hooks/{id}"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await
        .expect("router answers");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// Waits until the metric at `addr` reaches at least `n`.
async fn metric_reaches(http: &reqwest::Client, addr: std::net::SocketAddr, name: &str, n: f64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while pipeline::metric(http, addr, name).await.unwrap_or(0.0) < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} at {addr} never reached {n}"
        );
        tokio::time::sleep(ms(20)).await;
    }
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
    let p = Pipeline::start_with("proxy-env", &[ms(300)], 0).await;
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
        "hookbus_deliverer_hook_consumers",
        1.0,
    )
    .await;
    p.ingest(json!({"event": "User.Created"})).await;
    let store = hookbus_contracts::store::HookStore::new(
        pipeline::REDIS_URL,
        hookbus_contracts::keys::RedisKeys::new(&p.prefix),
    )
    .unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while store.get(&id).await.unwrap().unwrap().enabled {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the failing hook was never disabled"
        );
        tokio::time::sleep(ms(50)).await;
    }

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
    let deadline = tokio::time::Instant::now() + WAIT;
    while attempts() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the re-enabled hook's event never arrived"
        );
        tokio::time::sleep(ms(20)).await;
    }
    receiver.set_status(204);
    let deadline = tokio::time::Instant::now() + WAIT;
    while attempts() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the failed attempt was never retried: the old failing streak disabled the hook again"
        );
        tokio::time::sleep(ms(20)).await;
    }
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
