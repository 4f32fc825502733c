//! Queue depths, read from the broker every [`EVERY`], as gauges: each hook's backlog and
//! the age of its oldest message, the retry tiers, and the dead letters.
//!
//! Per-hook gauges are bounded to `HOOKBUS_PER_HOOK_METRICS` active hooks (in id order), so
//! a deployment with 10,000 hooks does not export 30,000 series; an idle hook has no queue
//! to read. Every deliverer exports the same broker-wide values; dashboards aggregate them
//! with `max by (hook_id)`. The oldest
//! message's age is estimated from what this process picked up: the age of the last
//! message taken from the queue plus the time since, while a backlog remains.
//!
//! The same readings go to Redis for the console (the runtime's `overview`), so that its
//! backlog and "oldest waiting delivery" need no broker round trip per hook. They cover the
//! exported hooks and every hook this process picked a message up for in the last hour: a
//! backlog only builds in a hook that has messages, and each hook's owners consume it, so a
//! hook with a backlog has pickups at its owners (the Prometheus series stay bounded).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hookbus_contracts::overview::QueueReading;
use hookbus_contracts::payload::now_ms;
use hookbus_contracts::HookId;
use hookbus_runtime::{broker, overview};
use lapin::Connection;
use tokio_util::sync::CancellationToken;

use crate::DeliverCtx;

pub const EVERY: Duration = Duration::from_secs(10);

/// Hooks with a pickup this recent are measured for the console, exported or not.
const ACTIVE_WINDOW: Duration = Duration::from_secs(3600);

/// When each hook's last message was picked up, and how old it was then.
#[derive(Default)]
pub struct Pickups(Mutex<HashMap<HookId, (Duration, Instant)>>);

impl Pickups {
    pub fn record(&self, hook: &HookId, age: Duration) {
        self.0
            .lock()
            .expect("pickups lock")
            .insert(hook.clone(), (age, Instant::now()));
    }

    /// Hooks with a pickup within `window`; older entries are forgotten.
    fn active(&self, window: Duration) -> Vec<HookId> {
        let mut pickups = self.0.lock().expect("pickups lock");
        pickups.retain(|_, (_, at)| at.elapsed() <= window);
        pickups.keys().cloned().collect()
    }

    fn head_age(&self, hook: &HookId) -> Duration {
        self.0
            .lock()
            .expect("pickups lock")
            .get(hook)
            .map(|(age, at)| *age + at.elapsed())
            .unwrap_or_default()
    }
}

/// Exports depths until `over` fires (the end of the broker session).
pub async fn export(conn: &Connection, ctx: &DeliverCtx, over: CancellationToken) {
    let Ok(mut ch) = conn.create_channel().await else {
        return;
    };
    loop {
        let snapshot = ctx.cache.snapshot();
        // An idle hook has no queue (and nothing waiting): asking for it would only make
        // the broker close the channel.
        let enabled: HashSet<&HookId> = snapshot
            .hooks()
            .filter(|h| h.enabled && ctx.membership.is_active(&h.id))
            .map(|h| &h.id)
            .collect();
        let mut exported: Vec<&HookId> = enabled.iter().copied().collect();
        exported.sort();
        exported.truncate(ctx.per_hook_metrics);
        let active = ctx.pickups.active(ACTIVE_WINDOW);
        let exported_set: HashSet<&HookId> = exported.iter().copied().collect();
        let measured = exported.iter().copied().chain(
            active
                .iter()
                .filter(|h| enabled.contains(h) && !exported_set.contains(h)),
        );
        ctx.metrics.backlog.reset();
        ctx.metrics.oldest_age.reset();
        let mut readings = Vec::new();
        for hook in measured {
            let Some(depth) = broker::depth(conn, &mut ch, &ctx.topology.hook_queue(hook)).await
            else {
                continue;
            };
            let age = if depth == 0 {
                Duration::ZERO
            } else {
                ctx.pickups.head_age(hook)
            };
            if exported_set.contains(hook) {
                ctx.metrics
                    .backlog
                    .with_label_values(&[hook.as_str()])
                    .set(depth as i64);
                ctx.metrics
                    .oldest_age
                    .with_label_values(&[hook.as_str()])
                    .set(age.as_secs_f64());
            }
            readings.push((
                hook.clone(),
                QueueReading {
                    messages: u64::from(depth),
                    oldest_age_ms: age.as_millis() as u64,
                    at: now_ms(),
                },
            ));
        }
        let (pool, keys) = (ctx.store.pool(), ctx.store.keys());
        if let Err(err) = overview::write_readings(pool, keys, &readings).await {
            tracing::debug!(error = %err, "queue readings not written for the console");
        }
        for tier in ctx.policy.tiers() {
            if let Some(depth) = broker::depth(conn, &mut ch, &ctx.topology.retry_tier(tier)).await
            {
                let label = format!("{}ms", tier.as_millis());
                ctx.metrics
                    .retry_waiting
                    .with_label_values(&[label.as_str()])
                    .set(depth as i64);
            }
        }
        ctx.metrics.dead_letters.reset();
        let mut dead = ctx.store.dead_letter_hooks().await.unwrap_or_default();
        dead.sort();
        dead.truncate(ctx.per_hook_metrics);
        for hook in dead {
            if let Some(depth) = broker::depth(conn, &mut ch, &ctx.topology.dead_queue(&hook)).await
            {
                ctx.metrics
                    .dead_letters
                    .with_label_values(&[hook.as_str()])
                    .set(depth as i64);
            }
        }
        tokio::select! {
            _ = over.cancelled() => return broker::close_channel(&ch).await,
            _ = tokio::time::sleep(EVERY) => {}
        }
    }
}
