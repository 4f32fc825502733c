//! Hostile and broken endpoints: targets refused where the connection is made, responses
//! that never end, are huge or never come, connections refused. Each is cut, classified,
//! and never stalls the deliverer.

use std::time::Duration;

use hookbus_contracts::hook::HookInput;

use hookbus_tests::pipeline::{self, metric, ADMIN_TOKEN};
use hookbus_tests::{eventually, Pipeline, Receiver};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WAIT: Duration = Duration::from_secs(30);

/// A raw HTTP endpoint that reads a request, then runs `respond` on the connection.
async fn raw_endpoint<F, Fut>(respond: F) -> String
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/h", listener.local_addr().unwrap());
    let respond = std::sync::Arc::new(respond);
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let respond = respond.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let _ = conn.read(&mut buf).await;
                respond(conn).await;
            });
        }
    });
    url
}

async fn dead_reason(p: &Pipeline, hook: &serde_json::Value) -> String {
    let url = format!(
        "http://{}/api/hooks/{}/dead-letters",
        p.router.addr,
        hook["id"].as_str().unwrap()
    );
    eventually("a dead letter with its reason", WAIT, async || {
        let res = p
            .http
            .get(&url)
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        let letters: serde_json::Value = res.json().await.unwrap();
        match letters[0]["reason"].as_str() {
            Some(reason) => Ok(reason.to_owned()),
            None => Err(letters),
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_target_is_refused_at_delivery_time() {
    // The router is open (as in a test setup), the deliverer is strict: a hook whose target
    // became private after it was saved is refused where the connection is made.
    let p = Pipeline::start_with("ssrf", &[Duration::from_millis(100)], 0).await;
    let mut config = pipeline::deliverer_config(&p.prefix, &[Duration::from_millis(100)]);
    config.targets.allow_private_targets = false;
    let strict = pipeline::start_deliverer(config).await;
    let receiver = Receiver::start().await;
    let hook = p.create_hook(&["PostSignIn"], &receiver.url("h")).await;
    p.ingest(json!({"event": "PostSignIn"})).await;
    assert_eq!(
        dead_reason(&p, &hook).await,
        "target address refused by the SSRF guard"
    );
    assert!(
        receiver.received().is_empty(),
        "the private target was called"
    );
    assert_eq!(
        metric(
            &p.http,
            strict.addr,
            "hookbus_delivery_attempts_total{result=\"blocked\"}"
        )
        .await,
        Some(1.0)
    );

    // And a hook saved with a private target through a strict API is refused with 400.
    let input: Result<HookInput, _> = serde_json::from_value(
        json!({"events": ["PostSignIn"], "config": {"url": "https://169.254.169.254/latest"}}),
    );
    assert!(input.unwrap().validate(&Default::default()).is_err());
    strict.stop().await;
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_huge_and_silent_responses_are_cut_and_the_deliverer_keeps_going() {
    let p = Pipeline::start_with("hostile", &[Duration::from_millis(100)], 1).await;
    let endless = raw_endpoint(|mut conn| async move {
        let _ = conn
            .write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
            .await;
        for _ in 0..10_000 {
            if conn.write_all(b"400\r\n").await.is_err()
                || conn.write_all(&[b'x'; 1024]).await.is_err()
            {
                return;
            }
            let _ = conn.write_all(b"\r\n").await;
            // The endpoint's pace, not a wait: a body that trickles in.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
    let huge = raw_endpoint(|mut conn| async move {
        let body = vec![b'y'; 8 * 1024 * 1024];
        let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len());
        let _ = conn.write_all(head.as_bytes()).await;
        let _ = conn.write_all(&body).await;
    })
    .await;
    let silent = raw_endpoint(|conn| async move {
        // The endpoint's behaviour, not a wait: it holds the connection and never answers.
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(conn);
    })
    .await;
    let endless_hook = p.create_hook(&["PostSignIn"], &endless).await;
    let huge_hook = p.create_hook(&["User.Created"], &huge).await;
    let silent_hook = p.create_hook(&["Role.Created"], &silent).await;
    let refused_hook = p
        .create_hook(&["Scope.Created"], "http://127.0.0.1:1/h")
        .await;
    let fine = Receiver::start().await;
    p.create_hook(&["Role.Deleted"], &fine.url("h")).await;
    p.wait_hooks(5).await;
    for event in [
        "PostSignIn",
        "User.Created",
        "Role.Created",
        "Scope.Created",
        "Role.Deleted",
    ] {
        p.ingest(json!({"event": event})).await;
    }
    assert_eq!(
        fine.wait_for(1, WAIT).await.len(),
        1,
        "a hostile endpoint stalled the others"
    );

    // A 200 whose body never ends, or is huge, is delivered: the body is read up to the cap.
    let logs = |hook: &serde_json::Value| {
        let url = format!(
            "http://{}/api/hooks/{}/recent-logs",
            p.router.addr,
            hook["id"].as_str().unwrap()
        );
        let http = p.http.clone();
        async move {
            eventually("a log record", WAIT, async || {
                let logs: serde_json::Value = http
                    .get(&url)
                    .bearer_auth(ADMIN_TOKEN)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                hookbus_tests::check(logs, |l| !l.as_array().unwrap().is_empty())
            })
            .await
        }
    };
    for hook in [&endless_hook, &huge_hook] {
        let logs = logs(hook).await;
        assert_eq!(logs[0]["payload"]["result"], "Success", "{logs}");
        assert!(
            logs[0]["payload"]["response"]["body"]
                .as_str()
                .unwrap()
                .len()
                <= 4096,
            "logged body is bounded"
        );
        assert!(
            logs[0]["payload"]["durationMs"].as_u64().unwrap() < 2_500,
            "the read was cut"
        );
    }
    // No answer: cut by the attempt timeout and retried; a refused connection likewise.
    assert_eq!(
        dead_reason(&p, &silent_hook).await,
        "timeout error after 2 attempts"
    );
    assert_eq!(
        dead_reason(&p, &refused_hook).await,
        "connect error after 2 attempts"
    );
    let d = p.deliverers[0].addr;
    assert_eq!(
        metric(
            &p.http,
            d,
            "hookbus_delivery_attempts_total{result=\"timeout\"}"
        )
        .await,
        Some(2.0)
    );
    assert_eq!(
        metric(
            &p.http,
            d,
            "hookbus_delivery_attempts_total{result=\"connect\"}"
        )
        .await,
        Some(2.0)
    );
    p.stop().await;
}
