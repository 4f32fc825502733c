//! Settling a delivery: ack, or publish its retry or dead letter and ack once the broker
//! confirmed that publish. Until then the original stays unacked, so a crash between the two
//! redelivers it (a possible duplicate attempt, never a loss).
//!
//! A retry or dead letter carries the trace context of the attempt that decided it, so the
//! next attempt, or a replay, goes on in the same trace.

use hookbus_contracts::backoff::Backoff;
use hookbus_contracts::payload::now_ms;
use hookbus_contracts::topology::{DEAD_LETTER_AT_HEADER, DEAD_LETTER_REASON_HEADER};
use hookbus_contracts::{Delivery, HookId};
use hookbus_runtime::broker::{self, ConfirmPool, PublishError};
use hookbus_runtime::declare::Declare;
use hookbus_runtime::store::UpdateError;
use hookbus_runtime::trace_context::{self, TraceParent};
use lapin::message::Delivery as AmqpMessage;
use lapin::options::{BasicAckOptions, BasicGetOptions, BasicNackOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::Channel;

use crate::outcome::{Decision, DisableCause};
use crate::DeliverCtx;

/// Applies `decision` to `msg`, whose content is `delivery` after the attempt just made. A
/// retry or dead letter the broker refuses is tried again with [`Backoff::SETTLE`]'s waits;
/// if it still fails, the delivery is parked with the reason (in its hook's dead letters,
/// or `{p}.events.dead` when those are what fails) rather than handed back to its queue,
/// where it would be attempted again at once, and again; unless the connection itself is
/// gone, when the broker redelivers it by itself. Returns how it settled (the
/// metric's label, or `requeued`); what it publishes carries `context`.
pub async fn settle(
    ctx: &DeliverCtx,
    publish: &ConfirmPool,
    msg: AmqpMessage,
    delivery: &Delivery,
    decision: Decision,
    context: Option<&TraceParent>,
) -> &'static str {
    let decision = hold_for_retry(ctx, delivery, decision).await;
    let (outcome, settled) = match apply_with_backoff(ctx, publish, delivery, &decision, context)
        .await
    {
        Ok(()) => {
            let outcome = match decision {
                Decision::Ack => "delivered",
                Decision::Retry { .. } => "retried",
                Decision::DeadLetter { .. } => "dead_lettered",
            };
            ctx.metrics.deliveries.with_label_values(&[outcome]).inc();
            (outcome, msg.ack(BasicAckOptions::default()).await)
        }
        // The connection is gone (a broker node lost): the original cannot be acked and the
        // broker hands it out again, so parking it would dead-letter a delivery that will be
        // attempted anyway. Parking is for a broker that answers and refuses.
        Err(err) if !publish.is_connected() => {
            tracing::warn!(error = %err, event_id = %delivery.event.id, "connection lost while settling; the broker redelivers the delivery");
            return "requeued";
        }
        Err(err) => match park_unsettled(ctx, publish, delivery, &decision, &err, context).await {
            Ok(()) => {
                ctx.metrics
                    .deliveries
                    .with_label_values(&["dead_lettered"])
                    .inc();
                ("dead_lettered", msg.ack(BasicAckOptions::default()).await)
            }
            Err(park_err) => {
                tracing::warn!(error = %park_err, event_id = %delivery.event.id, "delivery could not be settled nor parked; requeued");
                let requeued = msg
                    .nack(BasicNackOptions {
                        requeue: true,
                        ..Default::default()
                    })
                    .await;
                ("requeued", requeued)
            }
        },
    };
    if let Err(err) = settled {
        tracing::warn!(error = %err, "could not settle a delivery; the broker will redeliver it");
    }
    outcome
}

/// A retry comes back to its hook's queue after its wait: the hook must be active until
/// then, or the queue could be deleted as idle meanwhile and the retry dropped with no
/// queue to return to. When that cannot be written to Redis (with [`Backoff::SETTLE`]'s
/// waits), the delivery is dead-lettered with the reason instead: replayable, never lost.
async fn hold_for_retry(ctx: &DeliverCtx, delivery: &Delivery, decision: Decision) -> Decision {
    let Decision::Retry { wait, .. } = decision else {
        return decision;
    };
    let mut failures = 0;
    loop {
        let Err(err) = ctx.membership.hold_for_retry(&delivery.hook_id, wait).await else {
            return decision;
        };
        failures += 1;
        let Some(pause) = Backoff::SETTLE.after(failures) else {
            return Decision::DeadLetter {
                reason: format!(
                    "retry could not be scheduled: its hook's activity was not written ({err})"
                ),
                disable: None,
            };
        };
        tracing::warn!(error = %err, event_id = %delivery.event.id, failures, "hook activity for a retry not written");
        tokio::time::sleep(pause).await;
    }
}

/// Each try on a channel of the pool: one that got a nack is replaced for the next try
/// ([`broker::Lent::watch`]).
async fn apply_with_backoff(
    ctx: &DeliverCtx,
    publish: &ConfirmPool,
    delivery: &Delivery,
    decision: &Decision,
    context: Option<&TraceParent>,
) -> Result<(), PublishError> {
    let mut failures = 0;
    loop {
        let tried = match publish.lend().await {
            Ok(mut lent) => {
                let applied = apply(ctx, lent.channel(), delivery, decision, context).await;
                lent.watch(applied)
            }
            Err(err) => Err(err),
        };
        let Err(err) = tried else {
            return Ok(());
        };
        failures += 1;
        let Some(wait) = Backoff::SETTLE.after(failures) else {
            return Err(err);
        };
        tracing::warn!(error = %err, event_id = %delivery.event.id, failures, retry_in = ?wait, "retry or dead letter not confirmed");
        tokio::time::sleep(wait).await;
    }
}

async fn apply(
    ctx: &DeliverCtx,
    publish: &Channel,
    delivery: &Delivery,
    decision: &Decision,
    context: Option<&TraceParent>,
) -> Result<(), PublishError> {
    match decision {
        Decision::Ack => Ok(()),
        Decision::Retry { tier, wait } => {
            let props = broker::persistent_json(delivery.event.id.as_str())
                .with_expiration(wait.as_millis().to_string().into());
            let props = trace_context::carry(props, context);
            let tier = ctx.topology.retry_tier(*tier);
            broker::publish_confirmed(
                publish,
                &tier,
                delivery.hook_id.as_str(),
                &delivery.encode(),
                props,
            )
            .await
        }
        Decision::DeadLetter { reason, disable } => {
            let parked = dead_letter(
                ctx,
                publish,
                &delivery.hook_id,
                &delivery.encode(),
                delivery.event.id.as_str(),
                reason,
                context,
            )
            .await;
            if let (Ok(()), Some(cause)) = (&parked, disable) {
                disable_hook(ctx, publish, &delivery.hook_id, *cause, reason).await;
            }
            parked
        }
    }
}

/// Where a delivery goes whose decision the broker kept refusing: the hook's dead letters
/// for a retry that could not be scheduled; `{p}.events.dead` for a dead letter that could
/// not be written there.
async fn park_unsettled(
    ctx: &DeliverCtx,
    publish: &ConfirmPool,
    delivery: &Delivery,
    decision: &Decision,
    err: &PublishError,
    context: Option<&TraceParent>,
) -> Result<(), PublishError> {
    let mut lent = publish.lend().await?;
    let parked = park_on(ctx, lent.channel(), delivery, decision, err, context).await;
    lent.watch(parked)
}

async fn park_on(
    ctx: &DeliverCtx,
    publish: &Channel,
    delivery: &Delivery,
    decision: &Decision,
    err: &PublishError,
    context: Option<&TraceParent>,
) -> Result<(), PublishError> {
    let body = delivery.encode();
    let id = delivery.event.id.as_str();
    match decision {
        Decision::DeadLetter { reason, .. } => {
            let reason = format!(
                "dead letter for hook {} could not be written ({err}): {reason}",
                delivery.hook_id
            );
            tracing::warn!(event_id = %id, %reason, "parked in the events dead letters");
            let props = broker::with_header(
                trace_context::carry(broker::persistent_json(id), context),
                DEAD_LETTER_REASON_HEADER,
                &reason,
            );
            broker::publish_confirmed(publish, "", &ctx.topology.events_dead_queue(), &body, props)
                .await
        }
        _ => {
            let reason = format!("retry could not be scheduled: {err}");
            dead_letter(ctx, publish, &delivery.hook_id, &body, id, &reason, context).await
        }
    }
}

/// Parks a message in the hook's dead letters with its reason, confirmed.
pub async fn dead_letter(
    ctx: &DeliverCtx,
    publish: &Channel,
    hook: &HookId,
    body: &[u8],
    message_id: &str,
    reason: &str,
    context: Option<&TraceParent>,
) -> Result<(), PublishError> {
    tracing::info!(hook_id = %hook, event_id = %message_id, %reason, "dead-lettered");
    ctx.topology.declare_dead(publish, hook).await?;
    if let Err(err) = ctx.store.note_dead_letters(hook).await {
        tracing::warn!(error = %err, "dead-letter queue not noted for the depth metrics");
    }
    let props = broker::with_header(
        trace_context::carry(broker::persistent_json(message_id), context),
        DEAD_LETTER_REASON_HEADER,
        reason,
    );
    let props = broker::with_header(props, DEAD_LETTER_AT_HEADER, &now_ms().to_string());
    broker::publish_confirmed(publish, "", &ctx.topology.dead_queue(hook), body, props).await
}

/// Poison: a message on a hook queue that cannot be read. Parked as it came, then acked.
pub async fn park_unreadable(
    ctx: &DeliverCtx,
    publish: &ConfirmPool,
    hook: &HookId,
    msg: AmqpMessage,
    reason: &str,
) {
    let id = msg
        .properties
        .message_id()
        .as_ref()
        .map(std::string::ToString::to_string)
        .unwrap_or_default();
    let parked = match publish.lend().await {
        Ok(mut lent) => {
            let context = TraceParent::of_message(&msg.properties);
            let parked = dead_letter(
                ctx,
                lent.channel(),
                hook,
                &msg.data,
                &id,
                reason,
                context.as_ref(),
            )
            .await;
            lent.watch(parked)
        }
        Err(err) => Err(err),
    };
    match parked {
        Ok(()) => {
            ctx.metrics
                .deliveries
                .with_label_values(&["dead_lettered"])
                .inc();
            let _ = msg.ack(BasicAckOptions::default()).await;
        }
        Err(err) => {
            // Not at once: the next pass would fail the same way.
            tracing::warn!(error = %err, "could not park an unreadable delivery; requeued");
            tokio::time::sleep(Backoff::SETTLE.cap).await;
            let _ = msg
                .nack(BasicNackOptions {
                    requeue: true,
                    ..Default::default()
                })
                .await;
        }
    }
}

/// Disables `hook` and moves its backlog to its dead letters with `reason`. Only the
/// deliverer that actually turned the hook off does this (and counts it), so concurrent
/// failures of the same hook disable it once.
async fn disable_hook(
    ctx: &DeliverCtx,
    publish: &Channel,
    hook: &HookId,
    cause: DisableCause,
    reason: &str,
) {
    let turned_off = ctx
        .store
        .update(hook, |h| {
            if h.enabled {
                h.enabled = false;
                Ok(())
            } else {
                Err(())
            }
        })
        .await;
    match turned_off {
        Ok(_) => {
            tracing::warn!(hook_id = %hook, %reason, "hook disabled");
            // Routers stop routing to it at once rather than at their next poll.
            if let Err(err) = ctx.store.announce().await {
                tracing::debug!(error = %err, "hook disabled but not announced; routers poll for it");
            }
            ctx.metrics
                .hooks_disabled
                .with_label_values(&[cause.label()])
                .inc();
            match park_backlog(ctx, publish, hook, reason).await {
                Ok(n) => {
                    tracing::warn!(hook_id = %hook, parked = n, "backlog of a disabled hook dead-lettered");
                }
                Err(err) => {
                    tracing::error!(hook_id = %hook, error = %err, "backlog of a disabled hook not dead-lettered");
                }
            }
        }
        Err(UpdateError::Refused(())) | Err(UpdateError::NotFound) => {}
        Err(UpdateError::Store(err)) => {
            tracing::error!(hook_id = %hook, error = %err, %reason, "could not disable a failing hook");
        }
    }
}

/// Moves what waits in the hook's queue to its dead letters, each confirmed before it is
/// acked; bounded by the queue's depth when it starts.
async fn park_backlog(
    ctx: &DeliverCtx,
    publish: &Channel,
    hook: &HookId,
    reason: &str,
) -> Result<usize, PublishError> {
    let queue = ctx.topology.hook_queue(hook);
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let depth = publish
        .queue_declare(queue.as_str().into(), passive, FieldTable::default())
        .await?
        .message_count();
    let mut parked = 0;
    for _ in 0..depth {
        let Some(msg) = publish
            .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: false })
            .await?
        else {
            break;
        };
        let id = msg
            .delivery
            .properties
            .message_id()
            .as_ref()
            .map(std::string::ToString::to_string)
            .unwrap_or_default();
        let context = TraceParent::of_message(&msg.delivery.properties);
        let data = &msg.delivery.data;
        dead_letter(ctx, publish, hook, data, &id, reason, context.as_ref()).await?;
        msg.delivery.ack(BasicAckOptions::default()).await?;
        ctx.metrics
            .deliveries
            .with_label_values(&["dead_lettered"])
            .inc();
        parked += 1;
    }
    Ok(parked)
}
