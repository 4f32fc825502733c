//! Deleting the queues of idle hooks, so that a hook with nothing to deliver costs nothing
//! on the broker (the rules are the contracts' `activity`).
//!
//! Every router sweeps: it marks up to [`PER_SWEEP`] hooks idle past their time as retiring
//! (Redis gives each to one sweep), then for each looks at its queue: empty and unconsumed,
//! it is deleted and the hook forgotten until its next event; still consumed, it is looked
//! at again next sweep; holding messages, the hook is active again for an idle period (its
//! owners drain what waits, or a disabled hook's backlog keeps waiting). While the mark is on, a router that would publish to the hook waits, so no
//! delivery is published to a queue about to go. A sweep that dies leaves a mark that runs
//! out after `RETIRE_MARK_LASTS`; it acts on its mark only within `RETIRE_DEADLINE`.

use std::time::{Duration, Instant};

use hookbus_contracts::activity::{verdict, Verdict, RETIRE_DEADLINE};
use hookbus_contracts::topology::{QueueType, Topology};
use hookbus_contracts::HookId;
use hookbus_runtime::activity::HookActivity;
use hookbus_runtime::broker;
use lapin::options::{QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection};
use tokio_util::sync::CancellationToken;

use crate::deleted_queues::SweepError;
use crate::metrics::Metrics;

/// Hooks looked at per sweep, so that one sweep stays short.
const PER_SWEEP: usize = 100;

/// Sweeps until `shutdown`; first hands the hooks stored before activity was tracked to
/// it, so that their queues are looked at. A full batch that settled some hooks is followed
/// by the next at once: after an upgrade, every stored hook is due.
pub async fn sweep(
    amqp_url: String,
    activity: HookActivity,
    topology: Topology,
    metrics: Metrics,
    shutdown: CancellationToken,
) {
    let every = activity.idle().refresh().min(Duration::from_secs(1));
    let mut seeded = seed(&activity).await;
    let mut full = false;
    loop {
        if !full {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
        } else if shutdown.is_cancelled() {
            return;
        }
        full = false;
        if !seeded {
            seeded = seed(&activity).await;
            continue;
        }
        let hooks = match activity.begin_retire(PER_SWEEP).await {
            Ok(hooks) if hooks.is_empty() => continue,
            Ok(hooks) => hooks,
            Err(err) => {
                tracing::debug!(error = %err, "idle hooks not read; next sweep");
                continue;
            }
        };
        let began = Instant::now();
        match retire(&amqp_url, &activity, &topology, &metrics, &hooks, began).await {
            Ok(settled) => full = hooks.len() == PER_SWEEP && settled > 0,
            Err(err) => {
                tracing::warn!(error = %err, hooks = hooks.len(), "idle queues not looked at; their marks run out");
            }
        }
    }
}

/// Whether the hooks stored before activity was tracked were handed to the sweep (now or
/// before).
pub async fn seed(activity: &HookActivity) -> bool {
    match activity.seed().await {
        Ok(Some(n)) => {
            tracing::info!(
                hooks = n,
                "hooks stored before activity was tracked handed to the idle sweep"
            );
            true
        }
        Ok(None) => true,
        Err(err) => {
            tracing::debug!(error = %err, "hook activity not seeded; next sweep");
            false
        }
    }
}

/// Looks at the queues of `hooks`; how many it settled (deleted, or the hook active again)
/// rather than left for the next sweep.
async fn retire(
    amqp_url: &str,
    activity: &HookActivity,
    topology: &Topology,
    metrics: &Metrics,
    hooks: &[HookId],
    began: Instant,
) -> Result<usize, SweepError> {
    let conn = broker::connect(amqp_url, "hookbus-router-idle").await?;
    let mut ch = conn.create_channel().await?;
    let mut settled = 0;
    for hook in hooks {
        let verdict = if began.elapsed() < RETIRE_DEADLINE {
            retire_one(&conn, &mut ch, topology, hook).await?
        } else {
            Verdict::Recheck
        };
        activity.end_retire(hook, verdict).await?;
        settled += usize::from(verdict != Verdict::Recheck);
        if verdict == Verdict::Delete {
            metrics.idle_queues_deleted.inc();
            tracing::debug!(hook_id = %hook, "queue of an idle hook deleted");
        }
    }
    broker::close_channel(&ch).await;
    let _ = conn.close(200, "swept".into()).await;
    Ok(settled)
}

/// Deletes `hook`'s queue if it is empty and unconsumed; what became of it.
async fn retire_one(
    conn: &Connection,
    ch: &mut Channel,
    topology: &Topology,
    hook: &HookId,
) -> Result<Verdict, lapin::Error> {
    let queue = topology.hook_queue(hook);
    let passive = QueueDeclareOptions {
        passive: true,
        durable: true,
        ..Default::default()
    };
    let found = match ch
        .queue_declare(queue.as_str().into(), passive, FieldTable::default())
        .await
    {
        Ok(found) => found,
        Err(err) if broker::is_not_found(&err) => {
            // The broker closed the channel over the missing queue.
            *ch = conn.create_channel().await?;
            return Ok(Verdict::Delete);
        }
        Err(err) => return Err(err),
    };
    let verdict = verdict(found.message_count(), found.consumer_count());
    if verdict != Verdict::Delete {
        return Ok(verdict);
    }
    // A classic queue can check emptiness itself as it deletes; quorum queues refuse to.
    let opts = QueueDeleteOptions {
        if_empty: topology.delivery_queues() == QueueType::Classic,
        ..Default::default()
    };
    match ch.queue_delete(queue.as_str().into(), opts).await {
        Ok(_) => Ok(Verdict::Delete),
        // A message came in meanwhile (the broker closed the channel over it).
        Err(_) if opts.if_empty => {
            *ch = conn.create_channel().await?;
            Ok(Verdict::Revive)
        }
        Err(err) => Err(err),
    }
}
