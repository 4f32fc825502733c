//! The router's loop: consume an event → decide its deliveries → publish them → settle.
//!
//! An event is acked only after every delivery it fans out to was confirmed by RabbitMQ, so
//! a crash at any point leaves it unacked and it is routed again (receivers may see a
//! duplicate, deduplicated on `webhook-id`; nothing is lost). Work in flight is bounded by
//! the channel's prefetch. A connection loss ends the session; the supervisor reconnects
//! with backoff and starts a new one.
//!
//! Each event is routed under a `hookbus.route` span, a child of the context its message
//! carries (the producer's publish); every delivery it fans out to carries the route span's
//! context on to the deliverer.

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use hookbus_contracts::backoff::Backoff;
use hookbus_contracts::topology::{Topology, DEAD_LETTER_REASON_HEADER};
use hookbus_contracts::{Delivery, Event, HookId};
use hookbus_runtime::broker::{self, ConfirmPool, Outgoing, PublishError};
use hookbus_runtime::declare::Declare;
use hookbus_runtime::health::BrokerFlags;
use hookbus_runtime::store::HookCache;
use hookbus_runtime::telemetry::{self, KeyValue, SpanKind, Step, Tracing};
use hookbus_runtime::trace_context::{self, TraceParent};
use lapin::message::Delivery as AmqpMessage;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::Connection;
use tokio_util::sync::CancellationToken;

use crate::activity::{Activation, ActivationError, Activator};
use crate::metrics::Metrics;
use crate::plan;

/// Confirm channels of a router connection: enough for the events routed at once, bounded
/// (each is a process on the broker).
const PUBLISH_CHANNELS: usize = 64;

/// Times an event whose confirms came after its hooks' activity may have run out is routed
/// again before it is requeued.
const LATE_TRIES: usize = 3;

/// What one routing session needs, bundled so functions take one argument for it.
pub struct RouterCtx {
    pub topology: Topology,
    /// Routing waits while this router cannot vouch for its configuration.
    pub lease: crate::lease::Lease,
    pub cache: HookCache,
    pub metrics: Metrics,
    /// Events routed, for the console's activity chart.
    pub routed: hookbus_runtime::overview::RoutedCounter,
    pub prefetch: u16,
    /// On shutdown, how long events under way may take to settle.
    pub drain_deadline: Duration,
    pub tracing: Tracing,
    /// `None` when activity is not tracked (`HOOKBUS_HOOK_IDLE=0`).
    pub activity: Option<Arc<Activator>>,
}

/// Why an event could not be routed this time (it goes back to its queue, see
/// [`requeue_or_park`]).
#[derive(Debug, thiserror::Error)]
enum RouteError {
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error(transparent)]
    Activation(#[from] ActivationError),
}

/// How one event was settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Routed {
    Delivered(usize),
    Unmatched,
    Parked,
}

/// Consumes events until `shutdown`, reconnecting after any broker failure.
pub async fn supervise(
    amqp_url: String,
    ctx: Arc<RouterCtx>,
    flags: BrokerFlags,
    shutdown: CancellationToken,
) {
    broker::supervise(&amqp_url, "hookbus-router", &flags, &shutdown, |conn| {
        let (ctx, flags, shutdown) = (ctx.clone(), flags.clone(), shutdown.clone());
        async move { session(&conn, &ctx, &flags, &shutdown).await }
    })
    .await;
}

#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error(transparent)]
    Broker(#[from] lapin::Error),
    #[error("the publish channel closed")]
    PublishChannelClosed,
}

async fn session(
    conn: &Arc<Connection>,
    ctx: &RouterCtx,
    flags: &BrokerFlags,
    shutdown: &CancellationToken,
) -> Result<(), SessionError> {
    // Each event publishes on a confirm channel of its own while it is routed, so that every
    // return RabbitMQ sends is known to be one of that event's deliveries (lapin attaches a
    // return to whichever confirm comes next on the channel).
    let publish = ConfirmPool::open(
        conn.clone(),
        usize::from(ctx.prefetch).min(PUBLISH_CHANNELS),
    )
    .await?;
    {
        let lent = publish
            .lend()
            .await
            .map_err(|_| SessionError::PublishChannelClosed)?;
        ctx.topology.declare_events(lent.channel()).await?;
        ctx.topology.declare_deliveries(lent.channel()).await?;
    }
    let consume = conn.create_channel().await?;
    consume
        .basic_qos(ctx.prefetch, BasicQosOptions::default())
        .await?;
    let consumer = consume
        .basic_consume(
            ctx.topology.events_queue().into(),
            "hookbus-router".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    flags.consuming.set(true);
    tracing::info!(queue = %ctx.topology.events_queue(), prefetch = ctx.prefetch, "routing events");
    // A dead publish channel would fail every event: end the session so it reconnects.
    let session_over = shutdown.child_token();
    let work = consumer
        .take_until(session_over.clone().cancelled_owned())
        .try_for_each_concurrent(ctx.prefetch as usize, |msg| {
            let (publish, session_over) = (&publish, &session_over);
            async move {
                handle(publish, ctx, msg).await;
                if !publish.healthy() {
                    session_over.cancel();
                }
                Ok(())
            }
        });
    // On shutdown, events under way get `drain_deadline` to settle; past it they are
    // dropped unacked and the broker hands them to another router.
    let deadline = async {
        shutdown.cancelled().await;
        tokio::time::sleep(ctx.drain_deadline).await;
    };
    let exporter = crate::depths::export(conn, ctx, session_over.clone());
    let (worked, ()) = tokio::join!(
        async {
            let result = tokio::select! {
                done = work => done,
                _ = deadline => {
                    tracing::warn!("drain deadline passed; unsettled events go back to the queue");
                    Ok(())
                }
            };
            session_over.cancel();
            result
        },
        exporter
    );
    let publish_lost = !publish.healthy();
    broker::close_channel(&consume).await;
    publish.close().await;
    worked?;
    if publish_lost && !shutdown.is_cancelled() {
        return Err(SessionError::PublishChannelClosed);
    }
    Ok(())
}

async fn handle(publish: &ConfirmPool, ctx: &RouterCtx, msg: AmqpMessage) {
    let parent = TraceParent::of_message(&msg.properties);
    let mut span = ctx.tracing.start(
        "hookbus.route",
        SpanKind::Consumer,
        parent.as_ref(),
        Vec::new,
    );
    let result = match Event::decode(&msg.data) {
        Ok(event) => {
            span.set_all(|| telemetry::event_attributes(&event));
            span.event("decoded");
            // Confirms that came too late prove nothing: routed again at once (duplicates
            // at worst), a few times, before the event goes back to its queue, where each
            // return uses up one of the tries after which it is parked.
            let mut routed = route(publish, ctx, &event, &mut span).await;
            for _ in 0..LATE_TRIES {
                if !matches!(routed, Err(RouteError::Activation(ActivationError::Late))) {
                    break;
                }
                routed = route(publish, ctx, &event, &mut span).await;
            }
            routed
        }
        Err(err) => park(publish, ctx, &msg, &format!("unreadable event: {err}"))
            .await
            .map_err(RouteError::from),
    };
    let settled = match result {
        Ok(routed) => {
            let outcome = match routed {
                Routed::Delivered(n) => {
                    ctx.metrics.fanout.observe(n as f64);
                    ctx.routed.add(1);
                    "routed"
                }
                Routed::Unmatched => {
                    ctx.routed.add(1);
                    "unmatched"
                }
                Routed::Parked => "parked",
            };
            span.set(KeyValue::new(telemetry::OUTCOME, outcome));
            ctx.metrics.events.with_label_values(&[outcome]).inc();
            msg.ack(BasicAckOptions::default()).await
        }
        Err(err) => {
            span.fail(err.to_string());
            requeue_or_park(publish, ctx, &msg, &err).await
        }
    };
    if let Err(err) = settled {
        tracing::warn!(error = %err, "could not settle an event; the broker will redeliver it");
    }
}

/// The broker refused a delivery: after a wait that grows with each failure, the event
/// goes back to its queue (the deliveries already confirmed will be sent again: at least
/// once); after [`Backoff::SETTLE`]'s tries it is parked with the reason, before the
/// queue's own delivery limit would park it without one.
async fn requeue_or_park(
    publish: &ConfirmPool,
    ctx: &RouterCtx,
    msg: &AmqpMessage,
    err: &RouteError,
) -> lapin::Result<bool> {
    let failures = broker::delivery_count(&msg.properties) + 1;
    match Backoff::SETTLE.after(failures) {
        Some(wait) => {
            tracing::warn!(error = %err, failures, retry_in = ?wait, "routing failed; event requeued");
            ctx.metrics.events.with_label_values(&["requeued"]).inc();
            tokio::time::sleep(wait).await;
            msg.nack(BasicNackOptions {
                requeue: true,
                ..Default::default()
            })
            .await
        }
        None => {
            let reason = format!("could not be routed after {failures} tries: {err}");
            match park(publish, ctx, msg, &reason).await {
                Ok(_) => {
                    ctx.metrics.events.with_label_values(&["parked"]).inc();
                    msg.ack(BasicAckOptions::default()).await
                }
                Err(park_err) => {
                    tracing::warn!(error = %park_err, "could not park an unroutable event; requeued");
                    msg.nack(BasicNackOptions {
                        requeue: true,
                        ..Default::default()
                    })
                    .await
                }
            }
        }
    }
}

/// Publishes one delivery per subscribed hook and waits for all the confirms.
async fn route(
    publish: &ConfirmPool,
    ctx: &RouterCtx,
    event: &Event,
    span: &mut Step,
) -> Result<Routed, RouteError> {
    // The lease first, then the snapshot: a lease valid now was renewed with a snapshot at
    // least as new as every change an admin has answered for (see `lease`).
    ctx.lease.wait_valid().await;
    let deliveries = plan::deliveries(event, &ctx.cache.snapshot());
    if deliveries.is_empty() {
        tracing::debug!(event_id = %event.id, event = %event.name, "no hook wants this event");
        return Ok(Routed::Unmatched);
    }
    let hooks: Vec<&HookId> = deliveries.iter().map(|d| &d.hook_id).collect();
    // Activated before a channel is lent: activations may wait for one another.
    let pending = match &ctx.activity {
        Some(activity) => Some((activity, activity.activate(&hooks).await?)),
        None => None,
    };
    let mut lent = publish.lend().await?;
    let activation = match pending {
        Some((activity, pending)) => {
            activity
                .declare(pending, lent.channel(), &ctx.topology, &hooks)
                .await?
        }
        None => Activation::NONE,
    };
    let bodies: Vec<Vec<u8>> = deliveries.iter().map(Delivery::encode).collect();
    let context = span.context();
    let batch: Vec<Outgoing> = deliveries
        .iter()
        .zip(&bodies)
        .map(|(d, body)| Outgoing {
            routing_key: d.hook_id.as_str(),
            body,
            props: trace_context::carry(
                broker::persistent_json(d.event.id.as_str()),
                context.as_ref(),
            ),
        })
        .collect();
    span.set(KeyValue::new("hookbus.fanout", deliveries.len() as i64));
    span.event("fanned_out");
    let exchange = ctx.topology.deliveries_exchange();
    let sent = broker::publish_all(lent.channel(), &exchange, &batch).await;
    let returned = lent.watch(sent)?;
    // A hook whose queue is missing (removed by hand, or lost with a node): declare it and
    // send those deliveries once more; still unroutable, the event goes back to the queue.
    let again: Vec<Outgoing> = batch
        .into_iter()
        .zip(&returned)
        .filter(|(_, back)| **back)
        .map(|(msg, _)| msg)
        .collect();
    for msg in &again {
        let hook = HookId::parse(msg.routing_key).expect("routing keys are hook ids");
        ctx.topology
            .declare_hook(lent.channel(), &hook)
            .await
            .map_err(PublishError::from)?;
    }
    if !again.is_empty() {
        let sent = broker::publish_all(lent.channel(), &exchange, &again).await;
        let still = lent.watch(sent)?;
        if let Some((msg, _)) = again.iter().zip(&still).find(|(_, back)| **back) {
            return Err(PublishError::Unroutable(msg.routing_key.to_owned()).into());
        }
    }
    activation.check()?;
    span.event("confirmed");
    ctx.metrics
        .deliveries
        .with_label_values(&[event.name.as_str()])
        .inc_by(deliveries.len() as u64);
    Ok(Routed::Delivered(deliveries.len()))
}

/// Moves an unreadable event to `{p}.events.dead` with its reason, confirmed, so that it is
/// neither lost nor retried forever.
async fn park(
    publish: &ConfirmPool,
    ctx: &RouterCtx,
    msg: &AmqpMessage,
    reason: &str,
) -> Result<Routed, PublishError> {
    tracing::warn!(%reason, "parking an event");
    let props = broker::with_header(msg.properties.clone(), DEAD_LETTER_REASON_HEADER, reason);
    let mut lent = publish.lend().await?;
    let sent = broker::publish_confirmed(
        lent.channel(),
        "",
        &ctx.topology.events_dead_queue(),
        &msg.data,
        props,
    )
    .await;
    lent.watch(sent)?;
    Ok(Routed::Parked)
}
