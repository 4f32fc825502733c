//! Logto's hooks Management API on the router, route by route, against the spec
//! (`docs/logto/wire.md`), with real deliveries behind the stats and logs.

use std::time::Duration;

use hookbus_tests::pipeline::{Cleanup, ADMIN_TOKEN};
use hookbus_tests::receiver::verify_standard;
use hookbus_tests::{check, eventually, Pipeline, Receiver};
use reqwest::Method;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(20);

struct Api<'a> {
    p: &'a Pipeline,
}

impl Api<'_> {
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut req = self
            .p
            .http
            .request(method, format!("http://{}{path}", self.p.router.addr))
            .bearer_auth(ADMIN_TOKEN);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.unwrap();
        let (status, headers) = (res.status().as_u16(), res.headers().clone());
        (status, headers, res.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (u16, reqwest::header::HeaderMap, Value) {
        self.call(Method::GET, path, None).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crud_follows_logto() {
    let p = Pipeline::start("crud").await;
    let api = Api { p: &p };
    let first = p
        .create_hook(&["PostSignIn"], "https://example.com/a")
        .await;
    let second = p
        .create_hook(&["User.Created"], "https://example.com/b")
        .await;
    let id = second["id"].as_str().unwrap();

    let (status, _, got) = api.get(&format!("/api/hooks/{id}")).await;
    assert_eq!((status, &got), (200, &second));
    let (status, headers, all) = api.get("/api/hooks").await;
    assert_eq!(status, 200);
    assert!(
        headers.get("total-number").is_none(),
        "no pagination unless asked"
    );
    let ids: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [id, first["id"].as_str().unwrap()], "newest first");

    let patch =
        json!({"name": "renamed", "config": {"url": "https://example.com/c"}, "enabled": false});
    let (status, _, patched) = api
        .call(Method::PATCH, &format!("/api/hooks/{id}"), Some(patch))
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["name"], "renamed");
    assert_eq!(
        patched["config"],
        json!({"url": "https://example.com/c"}),
        "config replaced whole"
    );
    assert_eq!(patched["enabled"], false);
    assert_eq!(
        patched["events"],
        json!(["User.Created"]),
        "untouched fields stay"
    );
    assert_eq!(patched["signingKey"], second["signingKey"]);

    let (status, _, err) = api
        .call(
            Method::PATCH,
            &format!("/api/hooks/{id}"),
            Some(json!({"colour": "red"})),
        )
        .await;
    assert_eq!(status, 400);
    assert!(err["message"].as_str().unwrap().contains("colour"), "{err}");
    let (status, _, err) = api
        .call(
            Method::PATCH,
            &format!("/api/hooks/{id}"),
            Some(json!({"events": []})),
        )
        .await;
    assert_eq!(
        (status, err["code"].as_str()),
        (400, Some("hook.missing_events"))
    );
    let (status, _, err) = api
        .call(
            Method::PATCH,
            &format!("/api/hooks/{id}"),
            Some(json!({"config": {"url": "http://x.example", "headers": {"bad header": "v"}}})),
        )
        .await;
    assert_eq!(status, 400, "{err}");

    let (status, _, rotated) = api
        .call(Method::PATCH, &format!("/api/hooks/{id}/signing-key"), None)
        .await;
    assert_eq!(status, 200);
    assert_ne!(rotated["signingKey"], second["signingKey"]);
    assert_eq!(rotated["signingKey"].as_str().unwrap().len(), 32);
    assert!(
        rotated.get("retiringKey").is_none(),
        "the old key is never shown"
    );

    let (status, _, _) = api
        .call(Method::DELETE, &format!("/api/hooks/{id}"), None)
        .await;
    assert_eq!(status, 204);
    for (method, path) in [
        (Method::GET, format!("/api/hooks/{id}")),
        (Method::PATCH, format!("/api/hooks/{id}")),
        (Method::DELETE, format!("/api/hooks/{id}")),
        (Method::PATCH, format!("/api/hooks/{id}/signing-key")),
        (Method::GET, format!("/api/hooks/{id}/recent-logs")),
        (Method::GET, "/api/hooks/no-such-hook".to_owned()),
    ] {
        let body = (method == Method::PATCH).then(|| json!({}));
        let (status, _, err) = api.call(method.clone(), &path, body).await;
        assert_eq!(
            (status, err["code"].as_str()),
            (404, Some("entity.not_exists_with_id")),
            "{method} {path}"
        );
    }
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_paginate_with_total_number_and_link() {
    let p = Pipeline::start("pages").await;
    let api = Api { p: &p };
    for _ in 0..5 {
        p.create_hook(&["PostSignIn"], "https://example.com/h")
            .await;
    }
    let (status, headers, page) = api.get("/api/hooks?page=2&page_size=2").await;
    assert_eq!(status, 200);
    assert_eq!(page.as_array().unwrap().len(), 2);
    assert_eq!(headers["total-number"], "5");
    let link = headers["link"].to_str().unwrap();
    assert!(link.contains("page=3&page_size=2>; rel=\"next\""), "{link}");
    assert!(link.contains("page=1&page_size=2>; rel=\"prev\""), "{link}");
    assert!(link.contains("page=3&page_size=2>; rel=\"last\""), "{link}");
    let (_, headers, last) = api.get("/api/hooks?page=3&page_size=2").await;
    assert_eq!(last.as_array().unwrap().len(), 1);
    assert!(!headers["link"].to_str().unwrap().contains("rel=\"next\""));
    assert_eq!(api.get("/api/hooks?page_size=101").await.0, 400);
    assert_eq!(api.get("/api/hooks?page=0").await.0, 400);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_and_recent_logs_count_every_attempt() {
    let p = Pipeline::start_with("stats", &[Duration::from_millis(100)], 1).await;
    let api = Api { p: &p };
    let receiver = Receiver::start().await;
    receiver.script(&[500]);
    let hook = p
        .create_hook(&["PostSignIn", "User.Created"], &receiver.url("h"))
        .await;
    let id = hook["id"].as_str().unwrap();
    p.wait_hooks(1).await;
    p.ingest(json!({"event": "PostSignIn"})).await;
    receiver.wait_for(2, WAIT).await;
    p.ingest(json!({"event": "User.Created"})).await;
    p.ingest(json!({"event": "User.Created"})).await;
    receiver.wait_for(4, WAIT).await;

    let stats = eventually("the stats to count 4 requests", WAIT, async || {
        let (_, _, got) = api
            .get(&format!("/api/hooks/{id}?includeExecutionStats=true"))
            .await;
        check(got["executionStats"].clone(), |s| s["requestCount"] == 4)
    })
    .await;
    assert_eq!(stats, json!({"requestCount": 4, "successCount": 3}));
    let (_, _, listed) = api.get("/api/hooks?includeExecutionStats=1").await;
    assert_eq!(listed[0]["executionStats"], stats);
    let (_, _, plain) = api.get(&format!("/api/hooks/{id}")).await;
    assert!(plain.get("executionStats").is_none());

    let (status, headers, logs) = api.get(&format!("/api/hooks/{id}/recent-logs")).await;
    assert_eq!(status, 200);
    assert_eq!(headers["total-number"], "4");
    let logs = logs.as_array().unwrap().clone();
    let failed: Vec<&Value> = logs
        .iter()
        .filter(|l| l["payload"]["result"] == "Error")
        .collect();
    assert_eq!(failed.len(), 1);
    let failed = failed[0];
    assert_eq!(failed["key"], "TriggerHook.PostSignIn");
    assert_eq!(failed["payload"]["response"]["statusCode"], 500);
    assert_eq!(failed["payload"]["hookId"], id);
    assert_eq!(
        failed["payload"]["hookRequest"]["body"]["event"],
        "PostSignIn"
    );
    assert_eq!(failed["payload"]["hookRequest"]["body"]["hookId"], id);
    assert!(
        logs.windows(2)
            .all(|w| w[0]["createdAt"].as_i64() >= w[1]["createdAt"].as_i64()),
        "newest first"
    );

    let (_, headers, only) = api
        .get(&format!(
            "/api/hooks/{id}/recent-logs?logKey=TriggerHook.User.Created"
        ))
        .await;
    assert_eq!(headers["total-number"], "2");
    assert!(only
        .as_array()
        .unwrap()
        .iter()
        .all(|l| l["key"] == "TriggerHook.User.Created"));
    let future = hookbus_contracts::payload::now_ms() + 3_600_000;
    let (_, headers, _) = api
        .get(&format!("/api/hooks/{id}/recent-logs?start_time={future}"))
        .await;
    assert_eq!(headers["total-number"], "0");
    let (_, _, paged) = api
        .get(&format!("/api/hooks/{id}/recent-logs?page=2&page_size=3"))
        .await;
    assert_eq!(paged.as_array().unwrap().len(), 1);
    assert_eq!(
        api.get(&format!("/api/hooks/{id}/recent-logs?start_time=yesterday"))
            .await
            .0,
        400
    );
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_refuses_a_missing_or_wrong_token() {
    let p = Pipeline::start("auth").await;
    let hook = p
        .create_hook(&["PostSignIn"], "https://example.com/h")
        .await;
    let id = hook["id"].as_str().unwrap();
    let routes = [
        (Method::GET, "/api/hooks".to_owned()),
        (Method::POST, "/api/hooks".to_owned()),
        (Method::GET, format!("/api/hooks/{id}")),
        (Method::PATCH, format!("/api/hooks/{id}")),
        (Method::DELETE, format!("/api/hooks/{id}")),
        (Method::PATCH, format!("/api/hooks/{id}/signing-key")),
        (Method::GET, format!("/api/hooks/{id}/recent-logs")),
        (Method::POST, format!("/api/hooks/{id}/test")),
        (Method::GET, format!("/api/hooks/{id}/dead-letters")),
        (Method::POST, format!("/api/hooks/{id}/dead-letters/replay")),
    ];
    for (method, path) in routes {
        for token in [None, Some("wrong"), Some("")] {
            let mut req = p
                .http
                .request(method.clone(), format!("http://{}{path}", p.router.addr))
                .json(&json!({}));
            if let Some(token) = token {
                req = req.bearer_auth(token);
            }
            let status = req.send().await.unwrap().status().as_u16();
            assert_eq!(status, 401, "{method} {path} with {token:?}");
        }
    }
    let (status, _, _) = Api { p: &p }.get(&format!("/api/hooks/{id}")).await;
    assert_eq!(status, 200, "the hook was not touched");
    hookbus_tests::pipeline::assert_routing_errors_are_json(
        &p.http,
        p.router.addr,
        "/api/hooks",
        hookbus_tests::pipeline::ADMIN_TOKEN,
    )
    .await;
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_test_route_sends_signed_test_payloads_and_reports_the_answer() {
    let p = Pipeline::start("test-route").await;
    let api = Api { p: &p };
    let receiver = Receiver::start().await;
    let hook = p
        .create_hook(&["PostSignIn"], "https://example.com/h")
        .await;
    let id = hook["id"].as_str().unwrap();
    let key = hook["signingKey"].as_str().unwrap();
    let body =
        json!({"events": ["PostSignIn", "User.Created"], "config": {"url": receiver.url("t")}});
    let (status, _, _) = api
        .call(
            Method::POST,
            &format!("/api/hooks/{id}/test"),
            Some(body.clone()),
        )
        .await;
    assert_eq!(status, 204);
    let got = receiver.wait_for(2, WAIT).await;
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].json()["event"], "PostSignIn");
    assert_eq!(got[0].json()["sessionId"], "fake-session-id");
    assert_eq!(got[1].json()["path"], "/fake-path/:id");
    assert_eq!(got[1].json()["data"], json!({"result": "success"}));
    for r in &got {
        r.verify(key).unwrap();
    }

    receiver.set_status(500);
    let (status, _, err) = api
        .call(Method::POST, &format!("/api/hooks/{id}/test"), Some(body))
        .await;
    assert_eq!(
        (status, err["code"].as_str()),
        (422, Some("hook.endpoint_responded_with_error")),
        "{err}"
    );
    assert_eq!(err["data"]["responseStatus"], 500);

    let closed = json!({"events": ["PostSignIn"], "config": {"url": "http://127.0.0.1:1/nothing"}});
    let (status, _, err) = api
        .call(Method::POST, &format!("/api/hooks/{id}/test"), Some(closed))
        .await;
    assert_eq!(
        (status, err["code"].as_str()),
        (422, Some("hook.send_test_payload_failed")),
        "{err}"
    );
    let bad = json!({"events": ["Nope"], "config": {"url": receiver.url("t")}});
    assert_eq!(
        api.call(Method::POST, &format!("/api/hooks/{id}/test"), Some(bad))
            .await
            .0,
        400
    );
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_key_rotation_both_keys_sign_until_the_overlap_ends() {
    let p = Pipeline::start("rotation").await;
    let api = Api { p: &p };
    let receiver = Receiver::start().await;
    let hook = p.create_hook(&["PostSignIn"], &receiver.url("h")).await;
    let id = hook["id"].as_str().unwrap();
    let old_key = hook["signingKey"].as_str().unwrap().to_owned();
    let (_, _, rotated) = api
        .call(Method::PATCH, &format!("/api/hooks/{id}/signing-key"), None)
        .await;
    let new_key = rotated["signingKey"].as_str().unwrap().to_owned();
    p.wait_hooks(1).await;
    p.wait_deliverers_current().await; // they sign with the new key
    p.ingest(json!({"event": "PostSignIn"})).await;
    let got = receiver.wait_for(1, WAIT).await;
    let r = &got[0];
    let header = r.header("webhook-signature");
    assert_eq!(header.split(' ').count(), 2, "{header}");
    let standard = |key: &str| {
        verify_standard(
            key,
            r.header("webhook-id"),
            r.header("webhook-timestamp"),
            &r.body,
            header,
        )
    };
    standard(&new_key).unwrap();
    standard(&old_key).unwrap();
    r.verify(&new_key).unwrap();
    assert!(
        r.verify(&old_key).is_err(),
        "Logto's header uses the new key"
    );
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_changes_take_effect_within_a_second_while_events_flow() {
    let p = Pipeline::start("live").await;
    let api = Api { p: &p };
    let before = Receiver::start().await;
    let after = Receiver::start().await;
    let hook = p.create_hook(&["PostSignIn"], &before.url("h")).await;
    let id = hook["id"].as_str().unwrap();
    p.wait_hooks(1).await;
    p.ingest(json!({"event": "PostSignIn"})).await;
    before.wait_for(1, WAIT).await;

    // New URL: within a second, every deliverer has it, and everything goes there.
    let patch = json!({"config": {"url": after.url("h")}});
    assert_eq!(
        api.call(Method::PATCH, &format!("/api/hooks/{id}"), Some(patch))
            .await
            .0,
        200
    );
    let changed = tokio::time::Instant::now();
    p.wait_deliverers_current().await;
    assert!(
        changed.elapsed() < Duration::from_secs(1),
        "the deliverers took {:?} to load the new URL",
        changed.elapsed()
    );
    for _ in 0..5 {
        p.ingest(json!({"event": "PostSignIn"})).await;
    }
    assert_eq!(after.wait_for(5, WAIT).await.len(), 5);
    assert_eq!(before.received().len(), 1);

    // Disabled: nothing more arrives (the router routes by the change once it answered);
    // re-enabled: deliveries resume.
    let disable = json!({"enabled": false});
    assert_eq!(
        api.call(Method::PATCH, &format!("/api/hooks/{id}"), Some(disable))
            .await
            .0,
        200
    );
    p.ingest(json!({"event": "PostSignIn"})).await;
    p.wait_settled().await;
    assert_eq!(after.received().len(), 5, "a disabled hook got an event");
    let enable = json!({"enabled": true});
    assert_eq!(
        api.call(Method::PATCH, &format!("/api/hooks/{id}"), Some(enable))
            .await
            .0,
        200
    );
    p.ingest(json!({"event": "PostSignIn"})).await;
    assert_eq!(after.wait_for(6, WAIT).await.len(), 6);

    // Deleted: nothing more arrives.
    assert_eq!(
        api.call(Method::DELETE, &format!("/api/hooks/{id}"), None)
            .await
            .0,
        204
    );
    p.ingest(json!({"event": "PostSignIn"})).await;
    p.wait_settled().await;
    assert_eq!(after.received().len(), 6, "a deleted hook got an event");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_the_router_refuses_to_start_unless_opened_on_purpose() {
    let prefix = hookbus_tests::pipeline::unique_prefix("no-token");
    let mut cleanup = Cleanup::new(&prefix, &[]);
    let config = |open: bool| hookbus_router::Config {
        common: hookbus_tests::pipeline::common(&prefix),
        targets: hookbus_tests::pipeline::targets(),
        activity: Default::default(),
        listen: String::new(),
        admin_token: None,
        admin_open: open,
        prefetch: 8,
        key_rotation_overlap: Duration::from_secs(60),
        attempt_timeout: Duration::from_secs(2),
        drain_deadline: Duration::from_secs(1),
        lease: Duration::from_secs(3),
        console: Default::default(),
        telemetry: Default::default(),
        command: None,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let refused = hookbus_router::run(config(false), listener, Default::default()).await;
    assert!(matches!(refused, Err(hookbus_router::RunError::NoToken)));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let open = tokio::spawn(hookbus_router::run(
        config(true),
        listener,
        shutdown.clone(),
    ));
    let http = reqwest::Client::new();
    let status = eventually("the open router to answer", WAIT, async || {
        match http.get(format!("http://{addr}/api/hooks")).send().await {
            Ok(res) => Ok(res.status().as_u16()),
            Err(err) => Err(err.to_string()),
        }
    })
    .await;
    assert_eq!(status, 200, "opened on purpose: no token needed");
    shutdown.cancel();
    open.await.unwrap().unwrap();
    cleanup.run().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_hooks_queues_are_removed_even_when_its_router_stopped_first() {
    use hookbus_contracts::keys::RedisKeys;
    use hookbus_contracts::HookId;
    use hookbus_runtime::store::HookStore;
    use hookbus_tests::pipeline::{queue_depth, REDIS_URL};

    let p = Pipeline::start("deleted-queues").await;
    let api = Api { p: &p };
    let receiver = Receiver::start().await;
    let mut ids = Vec::new();
    for path in ["a", "b"] {
        let hook = p.create_hook(&["PostSignIn"], &receiver.url(path)).await;
        ids.push(HookId::parse(hook["id"].as_str().unwrap()).unwrap());
    }
    p.wait_hooks(2).await;
    for id in &ids {
        p.activate(id).await;
    }
    let topology = p.topology();
    let exists = |id: &HookId| {
        let queue = topology.hook_queue(id);
        async move { queue_depth(&queue).await.is_some() }
    };
    eventually("both hooks' queues to exist", WAIT, async || {
        check((exists(&ids[0]).await, exists(&ids[1]).await), |e| {
            *e == (true, true)
        })
    })
    .await;

    // One deleted through the API; the other left as a router that crashed right after the
    // deletion leaves it: gone from the store, its queues untouched.
    let path = format!("/api/hooks/{}", ids[0]);
    assert_eq!(api.call(Method::DELETE, &path, None).await.0, 204);
    let store = HookStore::new(REDIS_URL, RedisKeys::new(&p.prefix)).unwrap();
    assert!(store.delete(&ids[1]).await.unwrap());

    eventually(
        "both deleted hooks' queues to be removed",
        WAIT,
        async || {
            check((exists(&ids[0]).await, exists(&ids[1]).await), |e| {
                *e == (false, false)
            })
        },
    )
    .await;
    assert!(
        store.deleted_before(i64::MAX, 10).await.unwrap().is_empty(),
        "the sweep forgot the hooks it cleaned up"
    );
    p.stop().await;
}
