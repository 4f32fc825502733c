//! The test kit itself, since every other test leans on it: a test that panics still leaves
//! nothing under its prefix, and waits that time out fail with what was awaited and what
//! was seen instead of returning quietly.

use std::time::Duration;

use hookbus_tests::pipeline::{hook_id, queue_depth, REDIS_URL};
use hookbus_tests::{check, eventually, Pipeline, Receiver};
use serde_json::json;

/// The message of a panic caught by a task or a thread.
fn message(panic: Box<dyn std::any::Any + Send>) -> String {
    match panic.downcast::<String>() {
        Ok(text) => *text,
        Err(panic) => panic
            .downcast::<&str>()
            .map(|s| s.to_string())
            .unwrap_or_default(),
    }
}

/// Redis keys under `prefix`.
async fn redis_keys(prefix: &str) -> Vec<String> {
    let pool = deadpool_redis::Config::from_url(REDIS_URL)
        .create_pool(Some(deadpool_redis::Runtime::Tokio1))
        .unwrap();
    let mut conn = pool.get().await.unwrap();
    deadpool_redis::redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut *conn)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_that_panics_leaves_nothing_under_its_prefix() {
    // A test of its own, as the harness runs one: a runtime on a thread, which panics with
    // a pipeline that has declared queues and written keys.
    let (sent, got) = std::sync::mpsc::channel();
    let test = std::thread::spawn(move || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move {
                let p = Pipeline::start("kit-panic").await;
                let receiver = Receiver::start().await;
                let hook = p.create_hook(&["PostSignIn"], &receiver.url("h")).await;
                p.wait_hooks(1).await;
                assert_eq!(p.ingest(json!({"event": "PostSignIn"})).await.0, 202);
                receiver.wait_for(1, Duration::from_secs(20)).await;
                sent.send((p.prefix.clone(), hook_id(&hook))).unwrap();
                panic!("the test failed");
            });
    });
    let panic = test.join().expect_err("the test panicked");
    assert_eq!(message(panic), "the test failed");
    let (prefix, hook) = got.recv().unwrap();
    let topology = hookbus_contracts::topology::Topology::new(&prefix);
    for queue in [topology.events_queue(), topology.hook_queue(&hook)] {
        assert_eq!(queue_depth(&queue).await, None, "{queue} was left behind");
    }
    assert_eq!(redis_keys(&prefix).await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_that_time_out_say_what_they_awaited_and_saw() {
    let receiver = Receiver::start().await;
    let addr = receiver.addr;
    let waited = tokio::spawn(async move {
        receiver.wait_for(1, Duration::from_millis(100)).await;
    });
    let said = message(waited.await.expect_err("a timeout panics").into_panic());
    assert!(
        said.contains(&format!("1 requests at {addr}")) && said.contains("0 arrived"),
        "{said}"
    );

    let polled = tokio::spawn(async {
        eventually("the answer", Duration::from_millis(100), async || {
            check(41, |n| *n == 42)
        })
        .await;
    });
    let said = message(polled.await.expect_err("a timeout panics").into_panic());
    assert!(said.contains("for the answer; last seen: 41"), "{said}");
}
