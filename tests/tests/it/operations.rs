//! Operating hookbus: every process exports the metrics dashboards rely on; SIGTERM drains
//! deliveries under way; and the pipeline recovers by itself, losing nothing, when RabbitMQ
//! or Redis restarts under load (on private servers, so other tests are not disturbed).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hookbus_tests::pipeline::{self, queue_depth, wait_depth, Servers, ADMIN_TOKEN};
use hookbus_tests::servers::{RabbitNode, RedisServer};
use hookbus_tests::{eventually, Pipeline, Receiver};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);

async fn metrics_text(http: &reqwest::Client, addr: SocketAddr) -> String {
    http.get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn has(text: &str, name: &str) -> bool {
    text.lines()
        .any(|l| l.starts_with(name) && matches!(l.as_bytes().get(name.len()), Some(b' ' | b'{')))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_process_exports_the_metrics_dashboards_rely_on() {
    let p = Pipeline::start_with("metrics", &[Duration::from_millis(100)], 1).await;
    let ok = Receiver::start().await;
    let gone = Receiver::start().await;
    gone.set_status(500);
    p.create_hook(&["PostSignIn"], &ok.url("h")).await;
    let failing = p.create_hook(&["PostSignIn"], &gone.url("h")).await;
    p.wait_hooks(2).await;
    p.ingest(json!({"event": "PostSignIn"})).await;
    p.ingest(json!({"event": "Nope"})).await;
    ok.wait_for(1, WAIT).await;
    let dead = p
        .topology()
        .dead_queue(&hookbus_contracts::HookId::parse(failing["id"].as_str().unwrap()).unwrap());
    wait_depth(&dead, 1, WAIT).await;

    let expected: [(SocketAddr, &[&str]); 3] = [
        (
            p.producer.addr,
            &[
                "hookbus_events_ingested_total",
                "hookbus_events_published_total",
                "hookbus_ingest_rejected_total",
                "hookbus_publish_duration_seconds_bucket",
                "hookbus_rabbitmq_connected",
            ],
        ),
        (
            p.router.addr,
            &[
                "hookbus_router_events_total",
                "hookbus_router_fanout_bucket",
                "hookbus_router_deliveries_published_total",
                "hookbus_hooks",
                "hookbus_hook_cache_loaded_timestamp_seconds",
                "hookbus_queue_messages",
                "hookbus_rabbitmq_connected",
                "hookbus_redis_connected",
                "hookbus_consuming",
            ],
        ),
        (
            p.deliverers[0].addr,
            &[
                "hookbus_deliveries_total",
                "hookbus_delivery_attempts_total",
                "hookbus_delivery_attempt_duration_seconds_bucket",
                "hookbus_delivery_latency_seconds_bucket",
                "hookbus_deliveries_in_flight",
                "hookbus_deliverer_hook_consumers",
                "hookbus_hook_backlog_messages",
                "hookbus_hook_oldest_message_age_seconds",
                "hookbus_retry_tier_messages",
                "hookbus_dead_letter_messages",
                "hookbus_rabbitmq_connected",
                "hookbus_redis_connected",
                "hookbus_consuming",
            ],
        ),
    ];
    // Depth gauges are read from the broker every 10 s.
    for (addr, names) in expected {
        let what = format!("{addr} to export every metric dashboards use");
        eventually(what, Duration::from_secs(25), async || {
            let text = metrics_text(&p.http, addr).await;
            let missing: Vec<&&str> = names.iter().filter(|n| !has(&text, n)).collect();
            hookbus_tests::check(missing, Vec::is_empty)
        })
        .await;
    }
    let deliverer = metrics_text(&p.http, p.deliverers[0].addr).await;
    assert!(
        deliverer.contains("hookbus_deliveries_total{outcome=\"delivered\"} 1"),
        "{deliverer}"
    );
    assert!(deliverer.contains("hookbus_deliveries_total{outcome=\"dead_lettered\"} 1"));
    assert!(deliverer.contains(&format!(
        "hookbus_dead_letter_messages{{hook_id=\"{}\"}} 1",
        failing["id"].as_str().unwrap()
    )));
    assert!(!deliverer.contains("event_id"), "no unbounded labels");
    // No hook was disabled, and the counter says so from the start.
    for reason in ["gone", "failing"] {
        let zero = format!("hookbus_hooks_disabled_total{{reason=\"{reason}\"}} 0");
        assert!(deliverer.contains(&zero), "{deliverer}");
    }
    let producer = metrics_text(&p.http, p.producer.addr).await;
    assert!(producer.contains("hookbus_ingest_rejected_total{reason=\"unknown_event\"} 1"));
    assert!(producer.contains("hookbus_events_published_total{event=\"PostSignIn\"} 1"));
    // The README's metrics table names every metric a process exports.
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    for addr in [p.producer.addr, p.router.addr, p.deliverers[0].addr] {
        let text = metrics_text(&p.http, addr).await;
        for name in text.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
            let name = name.split(' ').next().unwrap();
            assert!(
                readme.contains(&format!("`{name}")),
                "README.md does not document {name}"
            );
        }
    }
    for addr in [p.producer.addr, p.router.addr, p.deliverers[0].addr] {
        let res = p
            .http
            .get(format!("http://{addr}/healthz"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_deliveries_under_way_and_loses_nothing() {
    let p = Pipeline::start_with("sigterm", &[Duration::from_secs(1)], 0).await;
    let receiver = Receiver::start().await;
    receiver.set_delay(Duration::from_millis(1500));
    p.create_hook(&["PostSignIn"], &receiver.url("h")).await;
    let port = hookbus_tests::servers::spare_port();
    let program = env!("CARGO_BIN_EXE_hookbus-svc");
    let mut child = hookbus_tests::service::command(program, &["deliverer"], &p.prefix)
        .env("HOOKBUS_DELIVERER_LISTEN", format!("127.0.0.1:{port}"))
        .env("HOOKBUS_DRAIN_DEADLINE", "10s")
        .spawn()
        .unwrap();
    for _ in 0..5 {
        p.ingest(json!({"event": "PostSignIn"})).await;
    }
    // All five are in flight (the receiver holds each for 1.5 s) when SIGTERM arrives.
    assert_eq!(receiver.wait_for(5, WAIT).await.len(), 5);
    let pid = child.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    // While it drains it is alive, not ready, and still scraped. (The five deliveries hold
    // the drain for more than a second after the SIGTERM.)
    let get = |path: &str| p.http.get(format!("http://127.0.0.1:{port}{path}")).send();
    eventually(
        "the deliverer to report not ready once told to stop",
        WAIT,
        async || hookbus_tests::check(get("/readyz").await.unwrap().status(), |s| *s == 503),
    )
    .await;
    assert_eq!(get("/healthz").await.unwrap().status(), 200);
    assert_eq!(get("/metrics").await.unwrap().status(), 200);
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("exits within the deadline")
        .unwrap();
    assert!(status.success(), "{status}");
    let hook_queue = p.topology().hook_queue(
        &hookbus_contracts::HookId::parse(pipeline_hook_id(&p).await.as_str()).unwrap(),
    );
    assert_eq!(
        queue_depth(&hook_queue).await,
        Some(0),
        "the finished deliveries were acked, not handed back"
    );
    assert_eq!(receiver.received().len(), 5, "nothing was sent twice");
    p.stop().await;
}

/// What a `hookbus-svc` child wrote on stderr, at INFO, once it exited by itself.
async fn child_logs(child: tokio::process::Child) -> String {
    let output = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("exits")
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{}: {stderr}", output.status);
    assert!(stderr.contains("INFO"), "the capture works: {stderr}");
    stderr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_shutdown_and_a_replay_log_no_error_and_no_colour_codes() {
    let p = Pipeline::start_with("quiet-logs", &[Duration::from_millis(100)], 1).await;
    let receiver = Receiver::start().await;
    receiver.set_status(500);
    let hook = p
        .create_hook(&["PostSignIn", "User.Created"], &receiver.url("h"))
        .await;
    let id = hook["id"].as_str().unwrap();
    let dead = p
        .topology()
        .dead_queue(&hookbus_contracts::HookId::parse(id).unwrap());
    p.wait_hooks(1).await;
    p.ingest(json!({"event": "PostSignIn"})).await;
    p.ingest(json!({"event": "User.Created"})).await;
    wait_depth(&dead, 2, WAIT).await;
    receiver.set_status(204);
    let delivered = receiver.received().len();

    let program = env!("CARGO_BIN_EXE_hookbus-svc");
    let child = |args: &[&str]| {
        let mut command = hookbus_tests::service::command(program, args, &p.prefix);
        // The binaries' own default filter, as a user runs them.
        command
            .env_remove("RUST_LOG")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        command
    };
    // A router as its binary runs: one replay through its API, then stopped as an
    // orchestrator stops it.
    let port = hookbus_tests::servers::spare_port();
    let router = child(&["router"])
        .env("HOOKBUS_ROUTER_LISTEN", format!("127.0.0.1:{port}"))
        .spawn()
        .unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    p.wait_ready(addr).await;
    let (_, replayed) = pipeline::admin(
        &p.http,
        addr,
        reqwest::Method::POST,
        &format!("/api/hooks/{id}/dead-letters/replay"),
        Some(json!({"events": ["PostSignIn"]})),
    )
    .await;
    assert_eq!(replayed, json!({"replayed": 1}));
    receiver.wait_for(delivered + 1, WAIT).await;
    let pid = router.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let shutdown = child_logs(router).await;
    // The operator's replay of the other one.
    let replay = child(&["router", "dead-letters", "replay", "--hook", id])
        .spawn()
        .unwrap();
    let replayed = child_logs(replay).await;
    receiver.wait_for(delivered + 2, WAIT).await;

    for (what, logs) in [
        ("router (API replay, shutdown)", shutdown),
        ("command-line replay", replayed),
    ] {
        assert!(
            !logs.contains("ERROR"),
            "the {what} logged an ERROR:\n{logs}"
        );
        assert!(!logs.contains('\x1b'), "colour codes in a pipe:\n{logs}");
    }
    p.stop().await;
}

async fn pipeline_hook_id(p: &Pipeline) -> String {
    let res = p
        .http
        .get(format!("http://{}/api/hooks", p.router.addr))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    let hooks: serde_json::Value = res.json().await.unwrap();
    hooks[0]["id"].as_str().unwrap().to_owned()
}

/// Publishes through the ingest API at a steady pace until `stop`; returns the ids accepted
/// (202), which are the ones hookbus promised to deliver.
fn publish_steadily(
    p: &Pipeline,
    stop: tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<HashSet<String>> {
    let (http, addr) = (p.http.clone(), p.producer.addr);
    let accepted = Arc::new(Mutex::new(HashSet::new()));
    tokio::spawn(async move {
        let mut n = 0;
        while !stop.is_cancelled() && n < 2000 {
            let body =
                serde_json::to_vec(&json!({"event": "User.Created", "data": {"n": n}})).unwrap();
            let (status, res) =
                pipeline::ingest_raw(&http, addr, Some(pipeline::INGEST_TOKEN), body).await;
            if status == 202 {
                accepted
                    .lock()
                    .unwrap()
                    .insert(res["id"].as_str().unwrap().to_owned());
            }
            n += 1;
            // The load's pace (50 events a second), not a wait.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let ids = accepted.lock().unwrap().clone();
        ids
    })
}

async fn all_ready(p: &Pipeline) {
    for addr in [p.producer.addr, p.router.addr, p.deliverers[0].addr] {
        p.wait_ready(addr).await;
    }
}

/// Runs a pipeline on `servers` under steady load, calls `restart` mid-stream, then checks
/// that every event the producer accepted arrived and every process is ready again.
async fn survives_a_restart(test: &str, servers: Servers, restart: impl AsyncFnOnce()) {
    let p = Pipeline::start_on(test, servers, &[Duration::from_millis(500)], 1).await;
    let receiver = Receiver::start().await;
    p.create_hook(&["User.Created"], &receiver.url("h")).await;
    p.wait_hooks(1).await;
    let stop = tokio_util::sync::CancellationToken::new();
    let publishing = publish_steadily(&p, stop.clone());
    receiver.wait_for(50, WAIT).await;
    restart().await;
    receiver
        .wait_for(receiver.received().len() + 50, Duration::from_secs(60))
        .await;
    stop.cancel();
    let accepted = publishing.await.unwrap();
    assert!(
        accepted.len() > 100,
        "only {} events accepted",
        accepted.len()
    );
    assert_eq!(
        receiver.missing(&accepted, Duration::from_secs(90)).await,
        0,
        "accepted events lost across the restart"
    );
    all_ready(&p).await;
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rabbitmq_restart_under_load_is_survived_with_nothing_lost() {
    let rabbit = RabbitNode::start().await;
    let servers = Servers {
        amqp_url: rabbit.amqp_url(),
        ..Servers::default()
    };
    survives_a_restart("rabbit-restart", servers, async || rabbit.restart().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_under_load_is_survived_with_nothing_lost() {
    let mut redis = RedisServer::start().await;
    let servers = Servers {
        redis_url: redis.url(),
        ..Servers::default()
    };
    survives_a_restart("redis-restart", servers, async || redis.restart().await).await;
}

#[test]
fn the_test_helper_binary_answers_help() {
    let program = env!("CARGO_BIN_EXE_hookbus-svc");
    for (args, says) in [
        (&["--help"][..], "Usage: hookbus-svc"),
        (&["router", "--help"], "--prefix"),
    ] {
        let output = std::process::Command::new(program)
            .args(args)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{args:?}: {output:?}");
        assert!(stdout.contains(says), "{args:?}: {stdout}");
    }
}
