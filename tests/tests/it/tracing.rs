//! OpenTelemetry across the pipeline: an ingest request's `traceparent` starts the trace
//! that every step of its event joins (publish, route, each attempt through a retry tier and
//! a dead letter, the replay), exported over OTLP to a collector of the test's own; and a
//! collector that is down costs no delivery.

use std::time::Duration;

use hookbus_runtime::telemetry::TelemetryConfig;
use hookbus_tests::collector::{Collector, SpanSeen};
use hookbus_tests::pipeline::{self, hook_id, wait_depth, Servers, INGEST_TOKEN};
use hookbus_tests::{check, eventually, Pipeline, Receiver};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(20);
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";
/// A payload field that must never reach a span.
const PAYLOAD_MARKER: &str = "payload-marker-7c1f";

async fn ingest_traced(p: &Pipeline, traceparent: &str, body: Value) -> (u16, Value) {
    let res = p
        .http
        .post(format!("http://{}/api/events", p.producer.addr))
        .bearer_auth(INGEST_TOKEN)
        .header("traceparent", traceparent)
        .header("tracestate", "caller=1")
        .json(&body)
        .send()
        .await
        .expect("the producer answers");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// The one span named `name` with attribute `attempt` when given.
fn span<'a>(spans: &'a [SpanSeen], name: &str, attempt: Option<&str>) -> &'a SpanSeen {
    let found: Vec<&SpanSeen> = spans
        .iter()
        .filter(|s| s.name == name && attempt.is_none_or(|a| s.attribute("hookbus.attempt") == a))
        .collect();
    assert_eq!(found.len(), 1, "one {name} {attempt:?} span in {spans:#?}");
    found[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_tells_an_events_story_from_the_ingest_request_to_the_receiver() {
    let collector = Collector::start().await;
    let telemetry = TelemetryConfig::exporting_to(&collector.endpoint());
    let schedule = [Duration::from_millis(200)];
    let p = Pipeline::start_traced("trace", Servers::default(), &schedule, 1, &telemetry).await;
    let receiver = Receiver::start().await;
    // Fails, is retried through the tier, fails again and is dead-lettered; the replay
    // then succeeds.
    receiver.script(&[500, 503]);
    let hook = p.create_hook(&["User.Created"], &receiver.url("h")).await;
    let id = hook_id(&hook);
    p.wait_hooks(1).await;

    let caller = format!("00-{TRACE_ID}-{CALLER_SPAN}-01");
    let event = json!({"event": "User.Created", "data": {"id": "u1", "note": PAYLOAD_MARKER}});
    let (status, answer) = ingest_traced(&p, &caller, event).await;
    assert_eq!(status, 202, "{answer}");
    let event_id = answer["id"].as_str().expect("an event id").to_owned();
    wait_depth(&p.topology().dead_queue(&id), 1, WAIT).await;
    let (status, replayed) = p
        .admin(
            reqwest::Method::POST,
            &format!("/api/hooks/{id}/dead-letters/replay"),
            Some(json!({})),
        )
        .await;
    assert_eq!((status, replayed), (200, json!({"replayed": 1})));
    let got = receiver.wait_for(3, WAIT).await;

    let names = [
        "hookbus.ingest",
        "hookbus.publish",
        "hookbus.route",
        "hookbus.attempt",
        "hookbus.attempt",
        "hookbus.replay",
        "hookbus.attempt",
    ];
    let spans = eventually("the event's spans at the collector", WAIT, async || {
        check(collector.trace(TRACE_ID), |s| s.len() >= names.len())
    })
    .await;
    let mut seen: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    let mut expected = names.to_vec();
    seen.sort_unstable();
    expected.sort_unstable();
    assert_eq!(seen, expected, "{spans:#?}");

    let ingest = span(&spans, "hookbus.ingest", None);
    assert_eq!(
        ingest.parent_span_id, CALLER_SPAN,
        "under the caller's span"
    );
    assert_eq!(ingest.service, "hookbus-producer");
    assert_eq!(ingest.attribute("http.route"), "/api/events");
    assert!(ingest.events.contains(&"accepted".to_owned()));
    let publish = span(&spans, "hookbus.publish", None);
    assert_eq!(publish.parent_span_id, ingest.span_id);
    assert_eq!(publish.attribute("hookbus.event.id"), event_id);
    assert_eq!(publish.attribute("hookbus.event.name"), "User.Created");
    assert!(publish.events.contains(&"confirmed".to_owned()));
    let route = span(&spans, "hookbus.route", None);
    assert_eq!(route.service, "hookbus-router");
    assert_eq!(
        route.parent_span_id, publish.span_id,
        "carried through RabbitMQ"
    );
    assert_eq!(route.attribute("hookbus.event.id"), event_id);
    assert_eq!(route.attribute("hookbus.outcome"), "routed");
    assert_eq!(route.attribute("hookbus.fanout"), "1");
    assert_eq!(route.events, ["decoded", "fanned_out", "confirmed"]);

    let attempts: Vec<&SpanSeen> = spans
        .iter()
        .filter(|s| s.name == "hookbus.attempt")
        .collect();
    let first = attempts
        .iter()
        .find(|s| s.parent_span_id == route.span_id)
        .expect("the first attempt under the route");
    let second = attempts
        .iter()
        .find(|s| s.parent_span_id == first.span_id)
        .expect("the retry under the first attempt, through the retry tier");
    let replay = span(&spans, "hookbus.replay", None);
    assert_eq!(
        replay.parent_span_id, second.span_id,
        "the dead letter's context"
    );
    assert_eq!(replay.attribute("hookbus.hook.id"), id.as_str());
    let third = attempts
        .iter()
        .find(|s| s.parent_span_id == replay.span_id)
        .expect("the replayed attempt under the replay");
    for (attempt, number, code, class, outcome) in [
        (first, "1", "500", "5xx", "retried"),
        (second, "2", "503", "5xx", "dead_lettered"),
        (third, "1", "204", "2xx", "delivered"),
    ] {
        assert_eq!(attempt.service, "hookbus-deliverer");
        assert_eq!(attempt.attribute("hookbus.attempt"), number);
        assert_eq!(attempt.attribute("hookbus.hook.id"), id.as_str());
        assert_eq!(attempt.attribute("hookbus.event.id"), event_id);
        assert_eq!(attempt.attribute("http.response.status_code"), code);
        assert_eq!(attempt.attribute("hookbus.status_class"), class);
        assert_eq!(attempt.attribute("hookbus.outcome"), outcome);
        assert_eq!(attempt.events, ["prepared", "sent", "response", "settled"]);
        assert_eq!(attempt.status == 2, outcome != "delivered", "{attempt:?}");
    }

    // The receiver was told each attempt's span, to join the trace if it traces.
    for (received, attempt) in got.iter().zip([first, second, third]) {
        let expected = format!("00-{TRACE_ID}-{}-01", attempt.span_id);
        assert_eq!(received.header("traceparent"), expected);
        assert_eq!(
            received.header("tracestate"),
            "",
            "only the traceparent is sent"
        );
    }
    let key = hook["signingKey"].as_str().expect("a signing key");
    assert!(
        !collector.received_bytes(key.as_bytes()),
        "a signing key was exported"
    );
    assert!(
        !collector.received_bytes(PAYLOAD_MARKER.as_bytes()),
        "a payload was exported"
    );
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_is_down_costs_no_delivery() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let telemetry = TelemetryConfig::exporting_to(&format!("http://{closed}"));
    let schedule = [Duration::from_millis(200)];
    let p =
        Pipeline::start_traced("trace-down", Servers::default(), &schedule, 1, &telemetry).await;
    let receiver = Receiver::start().await;
    let hook = p.create_hook(&["PostSignIn"], &receiver.url("h")).await;
    p.wait_hooks(1).await;
    for _ in 0..5 {
        let (status, _) = p.ingest(json!({"event": "PostSignIn"})).await;
        assert_eq!(status, 202);
    }
    let got = receiver.wait_for(5, WAIT).await;
    p.wait_settled().await;
    assert_eq!(receiver.received().len(), 5, "every event delivered, once");
    for r in &got {
        r.verify(hook["signingKey"].as_str().unwrap()).unwrap();
    }
    // The spans that could not be sent are counted, by every service.
    for addr in p.addrs() {
        eventually(
            format!("{addr} to count its dropped spans"),
            WAIT,
            async || {
                let name = "hookbus_trace_spans_dropped_total{reason=\"export_failed\"}";
                check(pipeline::metric(&p.http, addr, name).await, |n| {
                    n.is_some_and(|n| n > 0.0)
                })
            },
        )
        .await;
    }
    p.stop().await;
}
