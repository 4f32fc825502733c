//! Signing keys never appear in logs, metrics or error messages. This test binary installs
//! a global log subscriber (hookbus at TRACE, everything else at DEBUG), runs a full hook
//! life cycle with deliveries, failures, a key rotation and a test send, then searches all
//! it captured for every signing key the API returned. It is a binary of its own, outside
//! `tests/tests/it`: the subscriber is process-wide, and would slow and capture every
//! other test running beside it.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hookbus_tests::pipeline::ADMIN_TOKEN;
use hookbus_tests::{Pipeline, Receiver};
use reqwest::Method;
use serde_json::{json, Value};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_signing_key_is_ever_logged_exported_or_returned_in_an_error() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_env_filter("debug,hookbus_contracts=trace,hookbus_router=trace,hookbus_deliverer=trace,hookbus_producer=trace")
        .with_writer(move || writer.clone())
        .init();

    let p = Pipeline::start_with("secrets", &[Duration::from_millis(100)], 1).await;
    let receiver = Receiver::start().await;
    receiver.script(&[500, 500, 500]);
    let call = |method: Method, path: String, body: Option<Value>| {
        let mut req = p
            .http
            .request(method, format!("http://{}{path}", p.router.addr))
            .bearer_auth(ADMIN_TOKEN);
        if let Some(body) = body {
            req = req.json(&body);
        }
        async move {
            let res = req.send().await.unwrap();
            res.text().await.unwrap()
        }
    };
    let mut keys = Vec::new();
    let mut texts = Vec::new();
    let hook = p
        .create_hook(&["PostSignIn", "User.Created"], &receiver.url("h"))
        .await;
    let id = hook["id"].as_str().unwrap().to_owned();
    keys.push(hook["signingKey"].as_str().unwrap().to_owned());
    p.wait_hooks(1).await;
    for event in ["PostSignIn", "User.Created", "PostSignIn"] {
        p.ingest(json!({"event": event, "userId": "u1"})).await;
    }
    receiver.wait_for(5, Duration::from_secs(20)).await;
    let rotated: Value = serde_json::from_str(
        &call(Method::PATCH, format!("/api/hooks/{id}/signing-key"), None).await,
    )
    .unwrap();
    keys.push(rotated["signingKey"].as_str().unwrap().to_owned());
    // The deliverer signs the next deliveries with the new key (and the retiring one).
    p.wait_deliverers_current().await;
    p.ingest(json!({"event": "PostSignIn"})).await;
    receiver.set_status(401);
    p.ingest(json!({"event": "PostSignIn"})).await;
    let test = json!({"events": ["PostSignIn"], "config": {"url": receiver.url("t")}});
    texts.push(call(Method::POST, format!("/api/hooks/{id}/test"), Some(test)).await);
    texts.push(
        call(
            Method::PATCH,
            format!("/api/hooks/{id}"),
            Some(json!({"signingKey": keys[1]})),
        )
        .await,
    );
    texts.push(
        call(
            Method::PATCH,
            format!("/api/hooks/{id}"),
            Some(json!({"config": {"url": "ftp://x"}})),
        )
        .await,
    );
    texts.push(call(Method::GET, format!("/api/hooks/{id}/recent-logs"), None).await);
    texts.push(call(Method::GET, format!("/api/hooks/{id}/dead-letters"), None).await);
    // Every delivery has ended (and been logged) before the metrics are read.
    p.wait_settled().await;
    for addr in [p.producer.addr, p.router.addr, p.deliverers[0].addr] {
        texts.push(
            p.http
                .get(format!("http://{addr}/metrics"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        );
    }
    p.stop().await;

    let logs = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
    assert!(
        logs.contains(&id),
        "the capture works: the hook id is logged"
    );
    assert!(logs.lines().count() > 50, "the capture holds a full run");
    for key in &keys {
        assert!(!logs.contains(key.as_str()), "a signing key was logged");
        for text in &texts {
            assert!(
                !text.contains(key.as_str()),
                "a signing key was returned in an error, a log record or a metric"
            );
        }
    }
}
