//! The deliverer's step for one message: decode it, make one attempt, decide what follows,
//! and hand it to [`settle`](crate::settle). Everything here runs once per delivery.
//!
//! The attempt is a `hookbus.attempt` span, a child of the context its message carries (the
//! router's fan-out, or the attempt before it, for a retry): prepared, sent, response,
//! settled. Its context goes on with the retry or dead letter it settles into, and, with
//! `HOOKBUS_SEND_TRACEPARENT`, to the endpoint.

use std::time::Duration;

use hookbus_contracts::logs::{self, LogPayload, LogRecord, LoggedResponse};
use hookbus_contracts::payload::now_ms;
use hookbus_contracts::{Delivery, HookId};
use hookbus_runtime::broker::ConfirmPool;
use hookbus_runtime::telemetry::{self, KeyValue, SpanKind, Step};
use hookbus_runtime::trace_context::{TraceParent, TRACEPARENT};
use hookbus_send::{AttemptResult, Prepared, Sent};
use lapin::message::Delivery as AmqpMessage;
use tracing::Instrument;

use crate::outcome::{self, Decision, DisableCause, Outcome};
use crate::{settle, DeliverCtx};

/// One message from `hook`'s queue: attempt it and settle it.
pub async fn process(ctx: &DeliverCtx, publish: &ConfirmPool, hook: &HookId, msg: AmqpMessage) {
    let _permit = ctx
        .in_flight
        .acquire()
        .await
        .expect("the semaphore is never closed");
    let delivery = match Delivery::decode(&msg.data) {
        Ok(d) if d.hook_id == *hook => d,
        // Sent to this endpoint it would be signed with the wrong hook's key.
        Ok(d) => {
            let reason = format!(
                "a delivery for hook {} on the queue of hook {hook}",
                d.hook_id
            );
            return settle::park_unreadable(ctx, publish, hook, msg, &reason).await;
        }
        Err(err) => {
            return settle::park_unreadable(
                ctx,
                publish,
                hook,
                msg,
                &format!("unreadable delivery: {err}"),
            )
            .await;
        }
    };
    let age = (now_ms() - delivery.event.accepted_at_ms).max(0) as u64;
    ctx.pickups.record(hook, Duration::from_millis(age));
    let parent = TraceParent::of_message(&msg.properties);
    let attributes = || {
        let mut attributes = telemetry::event_attributes(&delivery.event);
        attributes.push(KeyValue::new(telemetry::HOOK_ID, hook.to_string()));
        attributes.push(KeyValue::new(
            telemetry::ATTEMPT,
            i64::from(delivery.attempts + 1),
        ));
        attributes
    };
    let mut trace = ctx.tracing.start(
        "hookbus.attempt",
        SpanKind::Client,
        parent.as_ref(),
        attributes,
    );
    let span = tracing::info_span!("delivery", event_id = %delivery.event.id, hook_id = %hook, attempt = delivery.attempts + 1);
    async move {
        let (delivery, decision) = attempt(ctx, delivery, &mut trace).await;
        let context = trace.context();
        let outcome =
            settle::settle(ctx, publish, msg, &delivery, decision, context.as_ref()).await;
        trace.set(KeyValue::new(telemetry::OUTCOME, outcome));
        trace.event("settled");
        if outcome != "delivered" {
            trace.fail(delivery.last_error.as_deref().unwrap_or(outcome));
        }
    }
    .instrument(span)
    .await;
}

/// Makes one attempt and decides what follows; returns the delivery updated with it.
async fn attempt(
    ctx: &DeliverCtx,
    mut delivery: Delivery,
    trace: &mut Step,
) -> (Delivery, Decision) {
    let Some(hook) = ctx.cache.snapshot().get(&delivery.hook_id).cloned() else {
        let reason = "hook no longer exists".to_owned();
        return (
            delivery,
            Decision::DeadLetter {
                reason,
                disable: None,
            },
        );
    };
    let now = now_ms();
    let mut prepared = hookbus_send::prepare(&delivery, &hook, now);
    if let Some(context) = trace.context().filter(|_| ctx.send_traceparent) {
        // Not signed, as no header is: the signatures cover the id, the time and the body.
        let value = context.traceparent().parse();
        prepared.headers.insert(
            TRACEPARENT,
            value.expect("a checked traceparent is a header value"),
        );
    }
    trace.event("prepared");
    ctx.metrics.in_flight.inc();
    trace.event("sent");
    let sent = ctx.sender.send(&prepared).await;
    ctx.metrics.in_flight.dec();
    trace.event("response");
    if let AttemptResult::Status { code, .. } = &sent.result {
        trace.set(KeyValue::new(telemetry::STATUS_CODE, i64::from(*code)));
    }
    trace.set(KeyValue::new(telemetry::STATUS_CLASS, sent.result.label()));
    ctx.metrics
        .attempts
        .with_label_values(&[sent.result.label()])
        .inc();
    ctx.metrics
        .attempt_seconds
        .observe(sent.duration.as_secs_f64());
    let outcome = outcome::classify(&sent.result);
    delivery.attempts += 1;
    delivery.first_attempt_at_ms.get_or_insert(now);
    delivery.last_attempt_at_ms = Some(now);
    match &outcome {
        Outcome::Delivered => {
            let latency = (now_ms() - delivery.event.accepted_at_ms).max(0) as f64 / 1000.0;
            ctx.metrics.latency_seconds.observe(latency);
            tracing::debug!(status = sent.result.label(), "delivered");
        }
        Outcome::Retryable { reason, .. } | Outcome::Permanent { reason } => {
            tracing::info!(%reason, response = sent.response_body.as_deref().unwrap_or(""), "attempt failed");
            delivery.last_error = Some(reason.clone());
        }
        Outcome::Gone => delivery.last_error = Some("HTTP 410 Gone".into()),
    }
    ctx.journal
        .record(log_record(&delivery, &prepared, &sent, &outcome, now));
    let decision = match failing_too_long(ctx, &delivery.hook_id, &outcome, now).await {
        Some(reason) => Decision::DeadLetter {
            reason,
            disable: Some(DisableCause::FailingTooLong),
        },
        None => ctx
            .policy
            .decide(&outcome, delivery.attempts, &mut rand::rng()),
    };
    (delivery, decision)
}

/// After a failure: the auto-disable reason if the hook's endpoint has now failed, without
/// a success, for longer than the configured window. Redis trouble never disables a hook.
async fn failing_too_long(
    ctx: &DeliverCtx,
    hook: &HookId,
    outcome: &Outcome,
    now: i64,
) -> Option<String> {
    if *outcome == Outcome::Delivered {
        return None;
    }
    let window = ctx.auto_disable_after;
    let since = ctx.store.failing_since(hook, now, window * 2).await.ok()?;
    (now - since > window.as_millis() as i64).then(|| {
        format!(
            "failing for more than {}: hook disabled",
            humantime::format_duration(window)
        )
    })
}

/// The attempt as Logto logs it (`TriggerHook.<event>`), for `recent-logs`.
fn log_record(
    delivery: &Delivery,
    prepared: &Prepared,
    sent: &Sent,
    outcome: &Outcome,
    now: i64,
) -> LogRecord {
    let key = format!("TriggerHook.{}", delivery.event.name);
    let response = match (&sent.result, &sent.response_body) {
        (AttemptResult::Status { code, .. }, body) => Some(LoggedResponse {
            status_code: *code,
            body: logs::logged_response(body.as_deref().unwrap_or("")),
        }),
        (AttemptResult::Failed(_), _) => None,
    };
    LogRecord {
        id: uuid::Uuid::now_v7().to_string(),
        key: key.clone(),
        payload: LogPayload {
            key,
            result: if *outcome == Outcome::Delivered {
                "Success"
            } else {
                "Error"
            }
            .into(),
            hook_id: delivery.hook_id.clone(),
            hook_request: logs::HookRequest {
                body: logs::logged_body(&prepared.body),
            },
            response,
            error: delivery
                .last_error
                .clone()
                .filter(|_| *outcome != Outcome::Delivered),
            webhook_id: delivery.event.id.to_string(),
            attempt: delivery.attempts,
            duration_ms: sent.duration.as_millis() as u64,
        },
        created_at: now,
    }
}
