//! Removing a deleted hook's queues (its delivery queue and its dead letters).
//!
//! They cannot go at once: deliverers stop consuming a hook within their cache's refresh
//! period, and one that still consumed it would declare the queue again. So deleting a hook
//! records it, with the time, in `{p}:hooks:deleted` (in the same Redis transaction as the
//! deletion), and every router sweeps: it deletes the queues of hooks deleted more than
//! [`DELAY`] ago, then forgets them. A router that stops or crashes in between leaves the
//! work to the next sweep, by itself or another router, never a queue behind.

use std::time::Duration;

use hookbus_contracts::payload::now_ms;
use hookbus_contracts::topology::Topology;
use hookbus_contracts::HookId;
use hookbus_runtime::broker;
use hookbus_runtime::store::{HookStore, StoreError};
use lapin::options::QueueDeleteOptions;
use tokio_util::sync::CancellationToken;

/// How long after its deletion a hook's queues are removed.
pub const DELAY: Duration = Duration::from_secs(2);
const EVERY: Duration = Duration::from_secs(1);
/// Hooks handled per sweep, so that one sweep stays short.
const PER_SWEEP: isize = 100;

/// What stops a sweep of queues (this one, or the idle hooks' in `idle_queues`).
#[derive(Debug, thiserror::Error)]
pub(crate) enum SweepError {
    #[error("RabbitMQ: {0}")]
    Broker(#[from] lapin::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Sweeps until `shutdown`.
pub async fn sweep(
    amqp_url: String,
    store: HookStore,
    topology: Topology,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(EVERY) => {}
        }
        let due = now_ms() - DELAY.as_millis() as i64;
        let hooks = match store.deleted_before(due, PER_SWEEP).await {
            Ok(hooks) if hooks.is_empty() => continue,
            Ok(hooks) => hooks,
            Err(err) => {
                tracing::debug!(error = %err, "deleted hooks not read; next sweep");
                continue;
            }
        };
        if let Err(err) = remove(&amqp_url, &store, &topology, &hooks).await {
            tracing::warn!(error = %err, hooks = hooks.len(), "queues of deleted hooks not removed yet; next sweep");
        }
    }
}

async fn remove(
    amqp_url: &str,
    store: &HookStore,
    topology: &Topology,
    hooks: &[HookId],
) -> Result<(), SweepError> {
    let conn = broker::connect(amqp_url, "hookbus-router-sweep").await?;
    let ch = conn.create_channel().await?;
    for hook in hooks {
        for queue in [topology.hook_queue(hook), topology.dead_queue(hook)] {
            ch.queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                .await?;
        }
        store.forget_deleted(hook).await?;
        tracing::info!(hook_id = %hook, "queues of a deleted hook removed");
    }
    broker::close_channel(&ch).await;
    let _ = conn.close(200, "swept".into()).await;
    Ok(())
}
