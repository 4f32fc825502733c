//! Every test leaves the shared RabbitMQ and Redis as it found them, whether it passes,
//! fails or returns early: [`Cleanup`] deletes everything under a test's prefix when it is
//! dropped (a panicking test drops its locals too). `Drop` cannot await, so the deletion
//! runs on a thread of its own with a runtime of its own ([`on_own_thread`]), which works
//! inside or outside the test's runtime.

use std::future::Future;
use std::time::Duration;

use deadpool_redis::redis::{self, AsyncCommands};
use hookbus_contracts::topology::Topology;
use hookbus_contracts::HookId;
use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};

use crate::pipeline::Servers;

/// How long a cleanup may take before it is given up (servers that do not answer).
const CLEANUP_LIMIT: Duration = Duration::from_secs(30);

/// Deletes every queue, exchange and Redis key of a prefix when dropped, unless
/// [`Cleanup::run`] already did. Declare it right after the prefix is chosen, before
/// anything is declared under it, so that it is dropped after what uses it.
pub struct Cleanup {
    servers: Servers,
    prefix: String,
    schedule: Vec<Duration>,
    done: bool,
}

impl Cleanup {
    /// For `prefix` on the shared servers, with the retry tiers of `schedule`.
    pub fn new(prefix: &str, schedule: &[Duration]) -> Cleanup {
        Cleanup::on(&Servers::default(), prefix, schedule)
    }

    /// For `prefix` on `servers` (a test's private RabbitMQ or Redis).
    pub fn on(servers: &Servers, prefix: &str, schedule: &[Duration]) -> Cleanup {
        Cleanup {
            servers: servers.clone(),
            prefix: prefix.to_owned(),
            schedule: schedule.to_vec(),
            done: false,
        }
    }

    /// Deletes now, in the test's runtime; the drop then has nothing left to do.
    pub async fn run(&mut self) {
        if !std::mem::replace(&mut self.done, true) {
            cleanup_on(&self.servers, &self.prefix, &self.schedule).await;
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let (servers, prefix, schedule) = (
            self.servers.clone(),
            self.prefix.clone(),
            self.schedule.clone(),
        );
        on_own_thread(async move {
            let cleaned = cleanup_on(&servers, &prefix, &schedule);
            if tokio::time::timeout(CLEANUP_LIMIT, cleaned).await.is_err() {
                eprintln!("cleanup of {prefix} gave up after {CLEANUP_LIMIT:?}");
            }
        });
    }
}

/// Runs `future` to its end on a new thread with a current-thread runtime of its own, and
/// waits for it: what a `Drop` can do with async work, inside a runtime or not. A panic in
/// it is reported, not propagated (a drop may run while a test is already panicking).
pub fn on_own_thread<F>(future: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    let thread = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the cleanup")
            .block_on(future);
    });
    if thread.join().is_err() {
        eprintln!("a cleanup thread panicked");
    }
}

/// Deletes every queue, exchange and Redis key of `prefix` on the shared servers.
pub async fn cleanup(prefix: &str, schedule: &[Duration]) {
    cleanup_on(&Servers::default(), prefix, schedule).await;
}

/// Deletes every queue, exchange and Redis key of `prefix` on `servers`: the events queues,
/// the queues and dead letters of every hook stored or deleted lately, the retry tiers of
/// `schedule`, then the Redis keys.
pub async fn cleanup_on(servers: &Servers, prefix: &str, schedule: &[Duration]) {
    let topology = Topology::new(prefix);
    let keys = hookbus_contracts::keys::RedisKeys::new(prefix);
    let pool = deadpool_redis::Config::from_url(servers.redis_url.as_str())
        .create_pool(Some(deadpool_redis::Runtime::Tokio1))
        .unwrap();
    let Ok(mut redis) = pool.get().await else {
        return;
    };
    let mut ids: Vec<String> = redis
        .zrange(keys.hooks_index(), 0, -1)
        .await
        .unwrap_or_default();
    // Hooks deleted in the last seconds, whose queues a stopped router did not remove.
    let deleted: Vec<String> = redis
        .zrange(keys.deleted_hooks(), 0, -1)
        .await
        .unwrap_or_default();
    ids.extend(deleted);
    let Ok(conn) =
        hookbus_runtime::broker::connect(&servers.amqp_url, "hookbus-test-cleanup").await
    else {
        return;
    };
    let ch = conn.create_channel().await.unwrap();
    let mut queues = vec![topology.events_queue(), topology.events_dead_queue()];
    for id in ids.iter().filter_map(|id| HookId::parse(id)) {
        queues.push(topology.hook_queue(&id));
        queues.push(topology.dead_queue(&id));
    }
    let mut exchanges = vec![topology.events_exchange(), topology.deliveries_exchange()];
    for delay in schedule {
        queues.push(topology.retry_tier(*delay));
        exchanges.push(topology.retry_tier(*delay));
    }
    for q in queues {
        let _ = ch
            .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await;
    }
    for e in exchanges {
        let _ = ch
            .exchange_delete(e.as_str().into(), ExchangeDeleteOptions::default())
            .await;
    }
    let _ = conn.close(200, "".into()).await;
    let all: Vec<String> = redis::cmd("KEYS")
        .arg(keys.all_pattern())
        .query_async(&mut *redis)
        .await
        .unwrap_or_default();
    if !all.is_empty() {
        let _: Result<(), _> = redis.del(all).await;
    }
}
