//! Which hook queues this deliverer consumes, kept in step with the hook configuration and
//! the live deliverers.
//!
//! Every enabled and active hook this deliverer owns (`membership`: two owners per idle hook
//! among the live deliverers, every deliverer for a busy one; active: with an event, a
//! delivery or a retry within the idle period) gets a consumer on one shared channel, which runs at most the
//! per-hook limit of deliveries at once, with a prefetch of an equal share of the process's
//! limit (`HOOKBUS_DELIVERER_PREFETCH`), capped at twice the per-hook limit: a slow endpoint
//! holds at most its share of this process's messages, so it cannot take the other hooks'
//! capacity, and a backlog in thousands of hooks cannot fill the process's memory (a
//! channel-wide prefetch would be simpler, but quorum queues refuse it). Shares shrink as
//! hooks are added: a consumer holding more than the current share is started again with
//! it. A new hook is picked up within the cache's refresh period, without a restart;
//! a disabled or deleted hook's consumer is cancelled (its backlog waits in its queue), and
//! so is that of a hook now owned by others (it finishes what it holds). The deliverers
//! that consume one queue share its messages: RabbitMQ spreads them between them.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
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
    conn: Arc<Connection>,
    consume: Channel,
    /// Where a hook's queue is looked for before it is consumed: a missing queue closes the
    /// channel that asked.
    probe: Channel,
    publish: Arc<ConfirmPool>,
    consumers: HashMap<HookId, Consuming>,
    /// Consumers cancelled to be started again with a smaller share, finishing the
    /// deliveries they hold.
    retiring: Vec<JoinHandle<()>>,
    /// The prefetch the channel gives the consumers started next.
    qos: Option<u16>,
    /// Makes each consumer tag unique: a hook's restarted consumer must not take the tag of
    /// the one still finishing.
    started: u64,
    over: CancellationToken,
}

/// One hook's consumer.
struct Consuming {
    tag: String,
    prefetch: u16,
    task: JoinHandle<()>,
}

/// Each hook consumer's prefetch: an equal share of the process's `prefetch` among `hooks`,
/// at least 1 (a consumer with none takes nothing) and at most twice the per-hook limit of
/// deliveries at once: while that many are under way the next ones are already here, so a
/// finished delivery's slot does not wait for an ack to reach the broker and a new message
/// to come back.
pub fn hook_prefetch(prefetch: usize, hooks: usize, per_hook_in_flight: u16) -> u16 {
    let share = u16::try_from(prefetch / hooks.max(1)).unwrap_or(u16::MAX);
    share.clamp(1, per_hook_in_flight.saturating_mul(2).max(1))
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
    let probe = conn.create_channel().await?;
    let mut running = Running {
        conn: conn.clone(),
        consume,
        probe,
        publish,
        consumers: HashMap::new(),
        retiring: Vec::new(),
        qos: None,
        started: 0,
        over: shutdown.child_token(),
    };
    let mut changes = ctx.cache.subscribe();
    let mut members = ctx.membership.subscribe();
    let mut active = ctx.membership.subscribe_activity();
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
                changed = members.changed() => if changed.is_err() { break Ok(()) },
                changed = active.changed() => if changed.is_err() { break Ok(()) },
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

/// Starts consumers for the enabled, active hooks this deliverer owns that have none,
/// cancels those of hooks that are gone, disabled, idle or owned by others, starts again
/// those holding more than the current share, and restarts consumers that ended.
async fn reconcile(ctx: &Arc<DeliverCtx>, running: &mut Running) -> Result<(), SessionError> {
    let snapshot = ctx.cache.snapshot();
    running.consumers.retain(|_, c| !c.task.is_finished());
    running.retiring.retain(|task| !task.is_finished());
    let owned: Vec<&HookId> = snapshot
        .hooks()
        .filter(|h| h.enabled && ctx.membership.owns(&h.id))
        .map(|h| &h.id)
        .collect();
    ctx.metrics.hooks_owned.set(owned.len() as i64);
    let wanted: HashSet<&HookId> = owned
        .into_iter()
        .filter(|id| ctx.membership.is_active(id))
        .collect();
    let share = hook_prefetch(ctx.prefetch, wanted.len(), ctx.per_hook_in_flight);
    let stopping: Vec<HookId> = running
        .consumers
        .iter()
        .filter(|(id, c)| !wanted.contains(id) || c.prefetch > share)
        .map(|(id, _)| id.clone())
        .collect();
    for id in stopping {
        let Some(consuming) = running.consumers.remove(&id) else {
            continue;
        };
        running
            .consume
            .basic_cancel(consuming.tag.as_str().into(), BasicCancelOptions::default())
            .await?;
        if snapshot.get(&id).is_some_and(|h| h.enabled) {
            // Started again below with the smaller share, owned by other deliverers now, or
            // idle: meanwhile the old consumer finishes the deliveries it holds.
            running.retiring.push(consuming.task);
        } else {
            tracing::info!(hook_id = %id, "stopped consuming a disabled or deleted hook");
        }
    }
    for id in wanted {
        if running.consumers.contains_key(id) {
            continue;
        }
        if running.qos != Some(share) {
            // global = false: the prefetch applies to each consumer started after it.
            running
                .consume
                .basic_qos(share, BasicQosOptions { global: false })
                .await?;
            running.qos = Some(share);
        }
        let queue = ctx.topology.hook_queue(id);
        if !ctx.membership.tracks_activity() {
            ctx.topology.declare_hook(&running.consume, id).await?;
        } else if broker::depth(&running.conn, &mut running.probe, &queue)
            .await
            .is_none()
        {
            // A router declares a hook's queue before the hook is active; one missing now
            // was deleted as idle since this deliverer read the hook active, and created
            // here it would outlive its hook's activity, never swept. Looked for again at
            // the next reconcile, in case a router declares it again.
            continue;
        }
        running.started += 1;
        let tag = format!("{}#{}", id, running.started);
        let consumer = running
            .consume
            .basic_consume(
                queue.as_str().into(),
                tag.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let task = tokio::spawn(consume_hook(
            ctx.clone(),
            running.publish.clone(),
            id.clone(),
            consumer,
            running.over.clone(),
        ));
        let consuming = Consuming {
            tag,
            prefetch: share,
            task,
        };
        running.consumers.insert(id.clone(), consuming);
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
    let limit = ctx.per_hook_in_flight as usize;
    let under_way = AtomicUsize::new(0);
    let result = consumer
        .try_for_each_concurrent(limit, |msg| {
            let (ctx, publish, hook, under_way) = (&ctx, &publish, &hook, &under_way);
            async move {
                // The whole per-hook limit under way: more deliverers would help this hook.
                if under_way.fetch_add(1, Ordering::Relaxed) + 1 >= limit {
                    ctx.membership.report_busy(hook);
                }
                ctx.membership.note_delivering(hook);
                process(ctx, publish.as_ref(), hook, msg).await;
                under_way.fetch_sub(1, Ordering::Relaxed);
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
    for consuming in running.consumers.values() {
        let _ = running
            .consume
            .basic_cancel(consuming.tag.as_str().into(), BasicCancelOptions::default())
            .await;
    }
    let mut tasks: Vec<JoinHandle<()>> = running
        .consumers
        .into_values()
        .map(|c| c.task)
        .chain(running.retiring)
        .collect();
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
    broker::close_channel(&running.probe).await;
    running.publish.close().await;
}

#[cfg(test)]
mod tests {
    use super::hook_prefetch;

    #[test]
    fn each_hook_gets_an_equal_share_of_the_prefetch_within_its_bounds() {
        // Few hooks: twice the per-hook limit, not more.
        assert_eq!(hook_prefetch(2048, 1, 64), 128);
        assert_eq!(hook_prefetch(2048, 16, 64), 128);
        // Many: an equal share, the total within the limit.
        assert_eq!(hook_prefetch(2048, 20, 64), 102);
        assert_eq!(hook_prefetch(2048, 2000, 64), 1);
        assert_eq!(hook_prefetch(40, 20, 64), 2);
        // More hooks than the limit: one each, so that every hook is still delivered.
        assert_eq!(hook_prefetch(2048, 10_000, 64), 1);
        // No hook yet; a limit larger than AMQP's field.
        assert_eq!(hook_prefetch(2048, 0, 64), 128);
        assert_eq!(hook_prefetch(usize::MAX, 1, u16::MAX), u16::MAX);
    }
}
