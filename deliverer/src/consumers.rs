//! Which hook queues this deliverer consumes, kept in step with the hook configuration.
//!
//! Every enabled hook's queue gets a consumer on one shared channel, which runs at most the
//! per-hook limit of deliveries at once, with a prefetch of twice that: a slow endpoint
//! holds at most that many messages of this process, so it cannot take the other hooks'
//! capacity. A new hook is picked up within the cache's refresh period, without a restart;
//! a disabled or deleted hook's consumer is cancelled (its backlog waits in its queue). Any
//! number of deliverers may consume the same queues: RabbitMQ spreads the messages between
//! them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use hookbus_contracts::HookId;
use hookbus_runtime::broker::{self, ConfirmPool};
use hookbus_runtime::declare::Declare;
use hookbus_runtime::health::BrokerFlags;
use lapin::options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, Consumer};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::deliver::process;
use crate::{depths, DeliverCtx};

#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error(transparent)]
    Broker(#[from] lapin::Error),
    #[error("a channel closed")]
    ChannelClosed,
}

/// Consumes hook queues until `shutdown`, reconnecting after any broker failure.
pub async fn supervise(
    amqp_url: String,
    ctx: Arc<DeliverCtx>,
    flags: BrokerFlags,
    shutdown: CancellationToken,
) {
    broker::supervise(&amqp_url, "hookbus-deliverer", &flags, &shutdown, |conn| {
        let (ctx, flags, shutdown) = (ctx.clone(), flags.clone(), shutdown.clone());
        async move { session(&conn, &ctx, &flags, &shutdown).await }
    })
    .await;
}

struct Running {
    consume: Channel,
    publish: Arc<ConfirmPool>,
    consumers: HashMap<HookId, JoinHandle<()>>,
    over: CancellationToken,
}

/// Confirm channels for settling (retries and dead letters), each lent to one settle at a
/// time: a channel that got a nack is replaced rather than shared on.
const SETTLE_CHANNELS: usize = 32;

async fn session(
    conn: &Arc<Connection>,
    ctx: &Arc<DeliverCtx>,
    flags: &BrokerFlags,
    shutdown: &CancellationToken,
) -> Result<(), SessionError> {
    let publish = Arc::new(ConfirmPool::open(conn.clone(), SETTLE_CHANNELS).await?);
    {
        let lent = publish
            .lend()
            .await
            .map_err(|_| SessionError::ChannelClosed)?;
        ctx.topology.declare_deliveries(lent.channel()).await?;
        ctx.topology
            .declare_retry_tiers(lent.channel(), &ctx.policy.tiers())
            .await?;
    }
    let consume = conn.create_channel().await?;
    // global = false: the prefetch applies to each consumer, i.e. to each hook. Twice the
    // per-hook limit: while `per_hook_in_flight` deliveries are under way, the next ones
    // are already here, so a finished delivery's slot does not wait for an ack to reach the
    // broker and a new message to come back.
    consume
        .basic_qos(
            ctx.per_hook_in_flight.saturating_mul(2),
            BasicQosOptions { global: false },
        )
        .await?;
    let mut running = Running {
        consume,
        publish,
        consumers: HashMap::new(),
        over: shutdown.child_token(),
    };
    let mut changes = ctx.cache.subscribe();
    let mut health = tokio::time::interval(Duration::from_secs(1));
    let over = running.over.clone();
    let control = async {
        let result = loop {
            if let Err(err) = reconcile(ctx, &mut running).await {
                break Err(err);
            }
            flags.consuming.set(true);
            tokio::select! {
                _ = running.over.cancelled() => break Ok(()),
                changed = changes.changed() => if changed.is_err() { break Ok(()) },
                _ = health.tick() => {}
            }
            if !running.consume.status().connected() || !running.publish.healthy() {
                break Err(SessionError::ChannelClosed);
            }
        };
        // Ends the depth exporter too.
        running.over.cancel();
        result
    };
    let (result, ()) = tokio::join!(control, depths::export(conn, ctx, over));
    flags.consuming.set(false);
    drain(running, ctx.drain_deadline).await;
    match result {
        Ok(()) if shutdown.is_cancelled() => Ok(()),
        Ok(()) => Err(SessionError::ChannelClosed),
        Err(err) => Err(err),
    }
}

/// Starts consumers for enabled hooks that have none, cancels those of hooks that are gone
/// or disabled, and restarts consumers that ended.
async fn reconcile(ctx: &Arc<DeliverCtx>, running: &mut Running) -> Result<(), SessionError> {
    let snapshot = ctx.cache.snapshot();
    running.consumers.retain(|_, task| !task.is_finished());
    let unwanted: Vec<HookId> = running
        .consumers
        .keys()
        .filter(|id| !snapshot.get(id).is_some_and(|h| h.enabled))
        .cloned()
        .collect();
    for id in unwanted {
        running
            .consume
            .basic_cancel(id.as_str().into(), BasicCancelOptions::default())
            .await?;
        running.consumers.remove(&id);
        tracing::info!(hook_id = %id, "stopped consuming a disabled or deleted hook");
    }
    for hook in snapshot.hooks().filter(|h| h.enabled) {
        if running.consumers.contains_key(&hook.id) {
            continue;
        }
        ctx.topology
            .declare_hook(&running.consume, &hook.id)
            .await?;
        let consumer = running
            .consume
            .basic_consume(
                ctx.topology.hook_queue(&hook.id).into(),
                hook.id.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let task = tokio::spawn(consume_hook(
            ctx.clone(),
            running.publish.clone(),
            hook.id.clone(),
            consumer,
            running.over.clone(),
        ));
        running.consumers.insert(hook.id.clone(), task);
    }
    ctx.metrics.consumers.set(running.consumers.len() as i64);
    Ok(())
}

async fn consume_hook(
    ctx: Arc<DeliverCtx>,
    publish: Arc<ConfirmPool>,
    hook: HookId,
    consumer: Consumer,
    over: CancellationToken,
) {
    let result = consumer
        .try_for_each_concurrent(ctx.per_hook_in_flight as usize, |msg| {
            let (ctx, publish, hook) = (&ctx, &publish, &hook);
            async move {
                process(ctx, publish.as_ref(), hook, msg).await;
                Ok(())
            }
        })
        .await;
    if let Err(err) = result {
        tracing::warn!(hook_id = %hook, error = %err, "hook consumer failed");
        over.cancel();
    }
}

/// Stops consuming and lets deliveries under way finish within `deadline`; what was
/// prefetched but not started, and what the deadline cut, returns to the queues unacked
/// when the channels close (to be delivered again: at least once).
async fn drain(running: Running, deadline: Duration) {
    for id in running.consumers.keys() {
        let _ = running
            .consume
            .basic_cancel(id.as_str().into(), BasicCancelOptions::default())
            .await;
    }
    let mut tasks: Vec<JoinHandle<()>> = running.consumers.into_values().collect();
    let finished =
        tokio::time::timeout(deadline, futures::future::join_all(tasks.iter_mut())).await;
    if finished.is_err() {
        tracing::warn!(
            ?deadline,
            "drain deadline passed; unfinished deliveries go back to their queues"
        );
        tasks.iter().for_each(JoinHandle::abort);
    }
    let _ = running.consume.close(200, "draining".into()).await;
    running.publish.close().await;
}
