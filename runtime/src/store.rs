//! Hook configuration in Redis, and the cache of it every process routes by.
//!
//! Writes go through [`HookStore`], which bumps `{p}:hooks:version` in the same MULTI as the
//! change. Readers hold a [`HookCache`]: an immutable [`HookSnapshot`] behind `arc-swap`,
//! indexed by event (the contracts' `snapshot`), so matching an event costs a hash lookup and no Redis round trip, and
//! stays flat however many hooks want other events. [`refresh`] polls the version every
//! 200 ms, which bounds staleness well under a second without relying on pub/sub (whose
//! messages are lost while a subscriber is disconnected). On a change it reads only the
//! hooks that changed, from the change log each write appends to in its MULTI, so a change
//! costs the same with 10 hooks as with 100,000; every hook is read again only when the log
//! cannot tell (a process far behind, a restored store).

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use deadpool_redis::redis::{self, AsyncCommands};
use deadpool_redis::{Pool, Runtime};
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use hookbus_contracts::hook::Hook;
use hookbus_contracts::ids::HookId;
use hookbus_contracts::keys::RedisKeys;
use hookbus_contracts::owners::Members;
use hookbus_contracts::snapshot::{HookSnapshot, StoreCheck, StoreState};

pub const REFRESH_EVERY: Duration = Duration::from_millis(200);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("Redis pool: {0}")]
    Pool(#[from] deadpool_redis::PoolError),
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("Redis config: {0}")]
    Config(#[from] deadpool_redis::CreatePoolError),
}

/// Why [`HookStore::update`] changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError<E> {
    #[error("no such hook")]
    NotFound,
    #[error("change refused")]
    Refused(E),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Clone)]
pub struct HookStore {
    pool: Pool,
    keys: RedisKeys,
    /// For the pub/sub connection, which a pool cannot lend.
    redis_url: Arc<str>,
}

/// Renews a router's lease only while the store holds the version the router states it has
/// loaded, in one step: a lease never vouches for a snapshot older than the store.
/// An empty stated version renews whatever the store holds: while the store has regressed,
/// no change can be answered, and the router keeps routing by its last good snapshot.
const RENEW_LEASE: &str = r"
local current = redis.call('GET', KEYS[1]) or '0'
if ARGV[1] ~= '' and current ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], current, 'PX', ARGV[2])
redis.call('SADD', KEYS[3], ARGV[3])
return 1
";

/// Counts one hook's change: bumps the version and records the hook under it in the
/// change log, dropping the oldest entries past the cap. The floor (KEYS[3]) is raised to
/// the highest version the log cannot vouch for, so that a process behind it reloads
/// everything: the highest version dropped, and a version found ahead of the log's latest
/// entry (a write by a hookbus from before the log, during an upgrade), which the change
/// logged next would otherwise hide. Runs inside the change's MULTI, which cannot otherwise
/// use the version it increments.
const BUMP: &str = r"
local function raise_floor(v)
  if v > tonumber(redis.call('GET', KEYS[3]) or '0') then redis.call('SET', KEYS[3], v) end
end
local before = tonumber(redis.call('GET', KEYS[1]) or '0')
local latest = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
if before > tonumber(latest[2] or '0') then raise_floor(before) end
local version = redis.call('INCR', KEYS[1])
redis.call('ZADD', KEYS[2], version, ARGV[1])
local extra = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[2])
if extra > 0 then
  local dropped = redis.call('ZPOPMIN', KEYS[2], extra)
  raise_floor(tonumber(dropped[#dropped]))
end
return version
";

/// What changed in the store since a version a process loaded: each hook changed as it is
/// now (`None`: deleted), and the version that makes.
pub struct Changes {
    pub version: u64,
    pub hooks: Vec<(HookId, Option<Hook>)>,
}

impl HookStore {
    pub fn new(redis_url: &str, keys: RedisKeys) -> Result<HookStore, StoreError> {
        let mut cfg = deadpool_redis::Config::from_url(redis_url);
        cfg.pool = Some(deadpool_redis::PoolConfig {
            max_size: 16,
            timeouts: deadpool_redis::Timeouts {
                wait: Some(Duration::from_secs(2)),
                create: Some(Duration::from_secs(2)),
                recycle: Some(Duration::from_secs(2)),
            },
            ..Default::default()
        });
        let pool = cfg.create_pool(Some(Runtime::Tokio1))?;
        Ok(HookStore {
            pool,
            keys,
            redis_url: redis_url.into(),
        })
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    pub fn keys(&self) -> &RedisKeys {
        &self.keys
    }

    /// Adds [`BUMP`] for `id` to the change's transaction.
    fn bump(&self, tx: &mut redis::Pipeline, id: &HookId) {
        tx.cmd("EVAL")
            .arg(BUMP)
            .arg(3)
            .arg(self.keys.hooks_version())
            .arg(self.keys.hooks_changes())
            .arg(self.keys.hooks_changes_floor())
            .arg(id.as_str())
            .arg(hookbus_contracts::keys::CHANGES_KEPT)
            .ignore();
    }

    pub async fn insert(&self, hook: &Hook) -> Result<(), StoreError> {
        let mut conn = self.pool.get().await?;
        let json = serde_json::to_string(hook).expect("a hook always serializes");
        let mut tx = redis::pipe();
        tx.atomic()
            .set(self.keys.hook(&hook.id), json)
            .ignore()
            .zadd(self.keys.hooks_index(), hook.id.as_str(), hook.created_at)
            .ignore();
        self.bump(&mut tx, &hook.id);
        tx.cmd("SET")
            .arg(self.keys.hooks_epoch())
            .arg(new_epoch())
            .arg("NX")
            .ignore()
            .query_async::<()>(&mut *conn)
            .await?;
        Ok(())
    }

    /// The store's identity and version, read together.
    pub async fn state(&self) -> Result<StoreState, StoreError> {
        let mut conn = self.pool.get().await?;
        let (epoch, accepted, version): (Option<String>, Option<String>, Option<u64>) =
            redis::cmd("MGET")
                .arg(self.keys.hooks_epoch())
                .arg(self.keys.hooks_epoch_accepted())
                .arg(self.keys.hooks_version())
                .query_async(&mut *conn)
                .await?;
        Ok(StoreState {
            epoch,
            accepted,
            version: version.unwrap_or(0),
        })
    }

    /// Writes `snapshot` back into a store that lost it (hooks missing from the store are
    /// added, those present are left as they are), under `epoch`, with a version above
    /// both the snapshot's and the store's: every process that knew `epoch` reloads it as
    /// a plain change.
    pub async fn restore(
        &self,
        snapshot: &HookSnapshot,
        epoch: Option<&str>,
    ) -> Result<u64, StoreError> {
        let mut conn = self.pool.get().await?;
        let stored = self.state().await?.version;
        let version = stored.max(snapshot.version) + 1;
        let mut tx = redis::pipe();
        tx.atomic();
        for hook in snapshot.hooks() {
            let json = serde_json::to_string(&**hook).expect("a hook always serializes");
            tx.cmd("SET")
                .arg(self.keys.hook(&hook.id))
                .arg(json)
                .arg("NX")
                .ignore();
            tx.zadd(self.keys.hooks_index(), hook.id.as_str(), hook.created_at)
                .ignore();
        }
        let epoch = epoch.map_or_else(new_epoch, str::to_owned);
        tx.set(self.keys.hooks_epoch(), &epoch).ignore();
        tx.set(self.keys.hooks_epoch_accepted(), &epoch).ignore();
        tx.set(self.keys.hooks_version(), version).ignore();
        // Written without the change log: whoever loaded an older version reloads it all.
        tx.set(self.keys.hooks_changes_floor(), version).ignore();
        tx.query_async::<()>(&mut *conn).await?;
        Ok(version)
    }

    /// Takes the store as it is now for the truth, under a new epoch that every process
    /// adopts, with a version above `known` (what the processes had loaded).
    pub async fn accept(&self, known: u64) -> Result<u64, StoreError> {
        let mut conn = self.pool.get().await?;
        let version = self.state().await?.version.max(known) + 1;
        let epoch = new_epoch();
        redis::pipe()
            .atomic()
            .set(self.keys.hooks_epoch(), &epoch)
            .ignore()
            .set(self.keys.hooks_epoch_accepted(), &epoch)
            .ignore()
            .set(self.keys.hooks_version(), version)
            .ignore()
            .set(self.keys.hooks_changes_floor(), version)
            .ignore()
            .query_async::<()>(&mut *conn)
            .await?;
        Ok(version)
    }

    /// Changes one stored hook with optimistic locking (WATCH), so a concurrent edit is not
    /// overwritten. `change` may refuse (its error is returned, nothing is written).
    pub async fn update<E>(
        &self,
        id: &HookId,
        change: impl Fn(&mut Hook) -> Result<(), E>,
    ) -> Result<Hook, UpdateError<E>> {
        let mut conn = self.pool.get().await.map_err(StoreError::from)?;
        let key = self.keys.hook(id);
        loop {
            redis::cmd("WATCH")
                .arg(&key)
                .query_async::<()>(&mut *conn)
                .await
                .map_err(StoreError::from)?;
            let json: Option<String> = conn.get(&key).await.map_err(StoreError::from)?;
            let hook = json.and_then(|j| serde_json::from_str::<Hook>(&j).ok());
            let Some(mut hook) = hook else {
                redis::cmd("UNWATCH")
                    .query_async::<()>(&mut *conn)
                    .await
                    .map_err(StoreError::from)?;
                return Err(UpdateError::NotFound);
            };
            let was_enabled = hook.enabled;
            if let Err(refused) = change(&mut hook) {
                redis::cmd("UNWATCH")
                    .query_async::<()>(&mut *conn)
                    .await
                    .map_err(StoreError::from)?;
                return Err(UpdateError::Refused(refused));
            }
            let json = serde_json::to_string(&hook).expect("a hook always serializes");
            let mut tx = redis::pipe();
            tx.atomic().set(&key, json).ignore();
            self.bump(&mut tx, id);
            // Re-enabled (after an auto-disable, or by hand): the endpoint gets a fresh
            // failing window, or its first failure would disable it again at once.
            if hook.enabled && !was_enabled {
                tx.del(self.keys.failing_since(id)).ignore();
            }
            let done: Option<()> = tx.query_async(&mut *conn).await.map_err(StoreError::from)?;
            if done.is_some() {
                return Ok(hook);
            }
        }
    }

    pub async fn get(&self, id: &HookId) -> Result<Option<Hook>, StoreError> {
        let mut conn = self.pool.get().await?;
        let json: Option<String> = conn.get(self.keys.hook(id)).await?;
        Ok(json.and_then(|j| serde_json::from_str(&j).ok()))
    }

    /// Deletes a hook and its delivery logs; `false` if it did not exist.
    pub async fn delete(&self, id: &HookId) -> Result<bool, StoreError> {
        let mut conn = self.pool.get().await?;
        let mut tx = redis::pipe();
        self.bump(&mut tx, id);
        let (removed,): (u32,) = tx
            .atomic()
            .del(self.keys.hook(id))
            .zrem(self.keys.hooks_index(), id.as_str())
            .ignore()
            .del(self.keys.logs(id))
            .ignore()
            .del(self.keys.failing_since(id))
            .ignore()
            .srem(self.keys.dead_letter_hooks(), id.as_str())
            .ignore()
            .zadd(
                self.keys.deleted_hooks(),
                id.as_str(),
                hookbus_contracts::payload::now_ms(),
            )
            .ignore()
            .query_async(&mut *conn)
            .await?;
        Ok(removed > 0)
    }

    /// Up to `limit` hooks deleted before `before_ms` whose queues may still exist.
    pub async fn deleted_before(
        &self,
        before_ms: i64,
        limit: isize,
    ) -> Result<Vec<HookId>, StoreError> {
        let mut conn = self.pool.get().await?;
        let ids: Vec<String> = conn
            .zrangebyscore_limit(self.keys.deleted_hooks(), "-inf", before_ms, 0, limit)
            .await?;
        Ok(ids.iter().filter_map(|id| HookId::parse(id)).collect())
    }

    /// Done with a deleted hook: its queues are gone, and so is its activity.
    pub async fn forget_deleted(&self, id: &HookId) -> Result<(), StoreError> {
        let mut conn = self.pool.get().await?;
        redis::pipe()
            .atomic()
            .zrem(self.keys.deleted_hooks(), id.as_str())
            .zrem(self.keys.active_hooks(), id.as_str())
            .hdel(self.keys.retiring_hooks(), id.as_str())
            .query_async::<()>(&mut *conn)
            .await?;
        Ok(())
    }

    /// One page of hooks, newest first, and the total count.
    pub async fn page(
        &self,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<Hook>, usize), StoreError> {
        let mut conn = self.pool.get().await?;
        let total: usize = conn.zcard(self.keys.hooks_index()).await?;
        if limit == 0 || offset >= total {
            return Ok((Vec::new(), total));
        }
        let ids: Vec<String> = conn
            .zrevrange(
                self.keys.hooks_index(),
                offset as isize,
                (offset + limit - 1) as isize,
            )
            .await?;
        let keys: Vec<String> = ids
            .iter()
            .filter_map(|id| HookId::parse(id))
            .map(|id| self.keys.hook(&id))
            .collect();
        let values: Vec<Option<String>> = redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut *conn)
            .await?;
        let hooks = values
            .into_iter()
            .flatten()
            .filter_map(|v| serde_json::from_str(&v).ok())
            .collect();
        Ok((hooks, total))
    }

    /// Since when `hook` has failed without a success, counting a failure at `now_ms`. The
    /// streak is shared by every deliverer (the delivery journal ends it on a success) and
    /// forgotten after `keep` without failures.
    pub async fn failing_since(
        &self,
        hook: &HookId,
        now_ms: i64,
        keep: Duration,
    ) -> Result<i64, StoreError> {
        let mut conn = self.pool.get().await?;
        let key = self.keys.failing_since(hook);
        let (since,): (i64,) = redis::pipe()
            .cmd("SET")
            .arg(&key)
            .arg(now_ms)
            .arg("NX")
            .arg("PX")
            .arg(keep.as_millis() as u64)
            .ignore()
            .get(&key)
            .query_async(&mut *conn)
            .await?;
        Ok(since)
    }

    /// Records that `hook` has a dead-letter queue (for the depth metrics).
    pub async fn note_dead_letters(&self, hook: &HookId) -> Result<(), StoreError> {
        let mut conn = self.pool.get().await?;
        conn.sadd::<_, _, ()>(self.keys.dead_letter_hooks(), hook.as_str())
            .await?;
        Ok(())
    }

    pub async fn dead_letter_hooks(&self) -> Result<Vec<HookId>, StoreError> {
        let mut conn = self.pool.get().await?;
        let ids: Vec<String> = conn.smembers(self.keys.dead_letter_hooks()).await?;
        Ok(ids.iter().filter_map(|id| HookId::parse(id)).collect())
    }

    /// Tells every process that a change was stored, so that each reloads now rather than
    /// at its next poll; returns the version announced.
    pub async fn announce(&self) -> Result<u64, StoreError> {
        let version = self.version().await?;
        let mut conn = self.pool.get().await?;
        conn.publish::<_, _, ()>(self.keys.hooks_changed(), version)
            .await?;
        Ok(version)
    }

    /// Renews deliverer `id`'s lease for `lease`, reports `busy` hooks busy for `busy_for`,
    /// forgets expired leases and reports, and reads back the live deliverers and the busy
    /// hooks, in one transaction.
    pub async fn renew_deliverer(
        &self,
        id: &str,
        lease: Duration,
        busy: &[HookId],
        busy_for: Duration,
    ) -> Result<Members, StoreError> {
        let now = hookbus_contracts::payload::now_ms();
        let (deliverers, hooks) = (self.keys.deliverers(), self.keys.busy_hooks());
        let mut tx = redis::pipe();
        tx.atomic()
            .zadd(&deliverers, id, now + lease.as_millis() as i64)
            .ignore()
            .zrembyscore(&deliverers, "-inf", now)
            .ignore();
        for hook in busy {
            tx.zadd(&hooks, hook.as_str(), now + busy_for.as_millis() as i64)
                .ignore();
        }
        tx.zrembyscore(&hooks, "-inf", now)
            .ignore()
            .zrange(&deliverers, 0, -1)
            .zrange(&hooks, 0, -1);
        let mut conn = self.pool.get().await?;
        let (live, busy): (Vec<String>, Vec<String>) = tx.query_async(&mut *conn).await?;
        Ok(Members {
            live,
            busy: busy.iter().filter_map(|id| HookId::parse(id)).collect(),
        })
    }

    /// Ends deliverer `id`'s lease (a clean shutdown): its hooks go to the others at once.
    pub async fn drop_deliverer(&self, id: &str) -> Result<(), StoreError> {
        let mut conn = self.pool.get().await?;
        conn.zrem::<_, _, ()>(self.keys.deliverers(), id).await?;
        Ok(())
    }

    /// Renews router `id`'s lease for `lease`, stating that it routes by version `loaded`;
    /// `false` (not renewed) when the store holds another version. `None` renews whatever
    /// the store holds (the store regressed, see [`StoreCheck`]).
    pub async fn renew_lease(
        &self,
        id: &str,
        loaded: Option<u64>,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let loaded = loaded.map(|v| v.to_string()).unwrap_or_default();
        let mut conn = self.pool.get().await?;
        let renewed: i64 = redis::cmd("EVAL")
            .arg(RENEW_LEASE)
            .arg(3)
            .arg(self.keys.hooks_version())
            .arg(self.keys.router(id))
            .arg(self.keys.routers())
            .arg(loaded)
            .arg(lease.as_millis() as u64)
            .arg(id)
            .query_async(&mut *conn)
            .await?;
        Ok(renewed == 1)
    }

    /// Ends router `id`'s lease (a clean shutdown).
    pub async fn drop_lease(&self, id: &str) -> Result<(), StoreError> {
        let mut conn = self.pool.get().await?;
        redis::pipe()
            .del(self.keys.router(id))
            .ignore()
            .srem(self.keys.routers(), id)
            .ignore()
            .query_async::<()>(&mut *conn)
            .await?;
        Ok(())
    }

    /// The live routers (lease not expired) that have not loaded `version` yet. Routers
    /// whose lease expired are forgotten on the way.
    pub async fn routers_behind(&self, version: u64) -> Result<Vec<String>, StoreError> {
        let mut conn = self.pool.get().await?;
        let ids: Vec<String> = conn.smembers(self.keys.routers()).await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(|id| self.keys.router(id)).collect();
        let loaded: Vec<Option<u64>> = redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut *conn)
            .await?;
        let mut behind = Vec::new();
        for (id, loaded) in ids.into_iter().zip(loaded) {
            match loaded {
                None => conn.srem::<_, _, ()>(self.keys.routers(), &id).await?,
                Some(v) if v < version => behind.push(id),
                Some(_) => {}
            }
        }
        Ok(behind)
    }

    pub async fn version(&self) -> Result<u64, StoreError> {
        let mut conn = self.pool.get().await?;
        Ok(conn
            .get::<_, Option<u64>>(self.keys.hooks_version())
            .await?
            .unwrap_or(0))
    }

    /// The hooks changed since version `known`, read from the change log; `None` when the
    /// log cannot tell (it dropped changes after `known`, or its latest change is not the
    /// store's version, as after a write that did not record itself): then every hook must
    /// be read again.
    pub async fn changes_since(&self, known: u64) -> Result<Option<Changes>, StoreError> {
        let mut conn = self.pool.get().await?;
        let (version, floor, changed): (Option<u64>, Option<u64>, Vec<(String, u64)>) =
            redis::pipe()
                .atomic()
                .get(self.keys.hooks_version())
                .get(self.keys.hooks_changes_floor())
                .zrangebyscore_withscores(self.keys.hooks_changes(), format!("({known}"), "+inf")
                .query_async(&mut *conn)
                .await?;
        let version = version.unwrap_or(0);
        let latest = changed.last().map_or(known, |(_, v)| *v);
        if floor.unwrap_or(0) > known || latest != version {
            return Ok(None);
        }
        let ids: Vec<HookId> = changed
            .iter()
            .filter_map(|(id, _)| HookId::parse(id))
            .collect();
        let mut hooks = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let keys: Vec<String> = chunk.iter().map(|id| self.keys.hook(id)).collect();
            let values: Vec<Option<String>> = redis::cmd("MGET")
                .arg(&keys)
                .query_async(&mut *conn)
                .await?;
            for ((id, key), value) in chunk.iter().zip(&keys).zip(values) {
                hooks.push((id.clone(), value.and_then(|v| parse_hook(key, &v))));
            }
        }
        Ok(Some(Changes { version, hooks }))
    }

    /// Every stored hook, newest first. A record that does not parse is skipped and logged,
    /// so one corrupt key cannot stop routing for everyone else.
    pub async fn load_all(&self) -> Result<Vec<Hook>, StoreError> {
        let mut conn = self.pool.get().await?;
        let ids: Vec<String> = conn.zrevrange(self.keys.hooks_index(), 0, -1).await?;
        let mut hooks = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let keys: Vec<String> = chunk
                .iter()
                .filter_map(|id| HookId::parse(id))
                .map(|id| self.keys.hook(&id))
                .collect();
            if keys.is_empty() {
                continue;
            }
            let values: Vec<Option<String>> = redis::cmd("MGET")
                .arg(&keys)
                .query_async(&mut *conn)
                .await?;
            hooks.extend(
                keys.iter()
                    .zip(values)
                    .filter_map(|(key, value)| parse_hook(key, &value?)),
            );
        }
        Ok(hooks)
    }
}

/// A stored hook record; one that does not parse is logged and skipped, so one corrupt key
/// cannot stop routing for everyone else.
fn parse_hook(key: &str, json: &str) -> Option<Hook> {
    serde_json::from_str(json)
        .inspect_err(|err| tracing::error!(%key, error = %err, "unreadable hook record skipped"))
        .ok()
}

fn new_epoch() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

/// A cheap-to-clone handle on the current snapshot; readers never wait for a reload.
#[derive(Clone)]
pub struct HookCache {
    current: Arc<ArcSwap<HookSnapshot>>,
    changed: watch::Sender<u64>,
    /// Epoch ms of the last time the snapshot was confirmed current with Redis.
    verified: Arc<std::sync::atomic::AtomicI64>,
    /// The store epoch the snapshot was loaded under.
    epoch: Arc<std::sync::Mutex<Option<String>>>,
    /// Whether the store has come back older than the snapshot (see [`StoreCheck`]).
    regressed: Arc<std::sync::atomic::AtomicBool>,
}

impl Default for HookCache {
    fn default() -> Self {
        HookCache {
            current: Arc::new(ArcSwap::from_pointee(HookSnapshot::default())),
            changed: watch::channel(0).0,
            verified: Arc::default(),
            epoch: Arc::default(),
            regressed: Arc::default(),
        }
    }
}

impl HookCache {
    /// Epoch ms of the last successful check against Redis (0 before the first).
    pub fn verified_at_ms(&self) -> i64 {
        self.verified.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn snapshot(&self) -> Arc<HookSnapshot> {
        self.current.load_full()
    }

    /// Notified with the version each time a new snapshot is installed.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Installs `snapshot` unless a newer one is already installed: a slow reload must not
    /// replace what a faster one (after a later change) put there.
    pub fn install(&self, snapshot: HookSnapshot) {
        let version = snapshot.version;
        let new = Arc::new(snapshot);
        let previous = self.current.rcu(|current| {
            if current.is_loaded() && current.version > new.version {
                current.clone()
            } else {
                new.clone()
            }
        });
        if !previous.is_loaded() || previous.version <= version {
            self.changed.send_replace(version);
        }
    }

    /// Installs `snapshot` whatever the version of the one installed: a store epoch adopted
    /// (the first, or one an operator accepted) starts its own count.
    fn adopt(&self, snapshot: HookSnapshot, epoch: Option<String>) {
        let version = snapshot.version;
        *self.epoch.lock().expect("epoch lock") = epoch;
        self.current.store(Arc::new(snapshot));
        self.changed.send_replace(version);
    }

    /// The store epoch the snapshot was loaded under.
    pub fn epoch(&self) -> Option<String> {
        self.epoch.lock().expect("epoch lock").clone()
    }

    /// True while the store is older than the snapshot: routing goes on by the snapshot,
    /// and hook changes wait until the snapshot is restored or the store accepted.
    pub fn is_regressed(&self) -> bool {
        self.regressed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Waits until a first snapshot was loaded from Redis: routing on the empty placeholder
    /// would drop events that hooks do want.
    pub async fn loaded(&self) {
        let mut changes = self.subscribe();
        while !self.snapshot().is_loaded() {
            if changes.changed().await.is_err() {
                return;
            }
        }
    }

    /// Loads the current configuration now (the admin API does, before it answers).
    pub async fn reload(&self, store: &HookStore) -> Result<(), StoreError> {
        let version = store.version().await?;
        self.install(self.caught_up(store, version).await?);
        Ok(())
    }

    /// The snapshot brought to the store's `version`: the installed one with the hooks
    /// changed since applied, or, when the change log cannot tell what changed (or nothing
    /// was loaded yet), every hook read again.
    async fn caught_up(&self, store: &HookStore, version: u64) -> Result<HookSnapshot, StoreError> {
        let snapshot = self.snapshot();
        if snapshot.is_loaded() {
            if let Some(changes) = store.changes_since(snapshot.version).await? {
                return Ok(snapshot.with_changes(changes.version, changes.hooks));
            }
        }
        Ok(HookSnapshot::new(version, store.load_all().await?))
    }
}

/// Connects to the hook store and starts keeping a cache of it current (the `redis`
/// readiness condition follows it): what every process that routes or delivers starts with.
/// The refresh task is `tasks`'s, to be awaited on shutdown.
pub fn start(
    redis_url: &str,
    keys: RedisKeys,
    readiness: &crate::health::Readiness,
    tasks: &tokio_util::task::TaskTracker,
    shutdown: &CancellationToken,
) -> Result<(HookStore, HookCache), StoreError> {
    let store = HookStore::new(redis_url, keys)?;
    let cache = HookCache::default();
    tasks.spawn(refresh(
        store.clone(),
        cache.clone(),
        Health {
            redis: readiness.flag("redis"),
            consistent: readiness.flag("hook_store"),
        },
        shutdown.clone(),
    ));
    Ok((store, cache))
}

/// The readiness conditions the refresh keeps: Redis answers; the store is not older than
/// the snapshot.
pub struct Health {
    pub redis: crate::health::Flag,
    pub consistent: crate::health::Flag,
}

/// Keeps `cache` current until `shutdown`: a reload when the version changed, checked every
/// [`REFRESH_EVERY`] and at once when a change is announced. While Redis does not answer,
/// or answers older than the snapshot ([`StoreCheck::Regressed`]), the last snapshot keeps
/// serving.
pub async fn refresh(
    store: HookStore,
    cache: HookCache,
    health: Health,
    shutdown: CancellationToken,
) {
    let announced = Notify::new();
    health.consistent.set(true);
    tokio::join!(
        poll(&store, &cache, &health, &announced, &shutdown),
        listen(&store, &announced, &shutdown)
    );
}

async fn poll(
    store: &HookStore,
    cache: &HookCache,
    health: &Health,
    announced: &Notify,
    shutdown: &CancellationToken,
) {
    let mut tick = tokio::time::interval(REFRESH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
            _ = announced.notified() => {}
        }
        match check(store, cache).await {
            Ok(regressed) => {
                health.redis.set(true);
                health.consistent.set(!regressed);
                cache.verified.store(
                    hookbus_contracts::payload::now_ms(),
                    std::sync::atomic::Ordering::Relaxed,
                );
            }
            Err(err) => {
                if health.redis.get() {
                    tracing::warn!(error = %err, "Redis unreachable: routing on the last hook configuration");
                }
                health.redis.set(false);
            }
        }
    }
}

/// One look at the store; `true` while it is older than the snapshot.
async fn check(store: &HookStore, cache: &HookCache) -> Result<bool, StoreError> {
    let seen = store.state().await?;
    let snapshot = cache.snapshot();
    let epoch = cache.epoch();
    let known = snapshot.is_loaded().then_some((&epoch, snapshot.version));
    let verdict = StoreCheck::of(known, &seen);
    match verdict {
        StoreCheck::Current | StoreCheck::Regressed => {}
        StoreCheck::Reload => cache.install(cache.caught_up(store, seen.version).await?),
        StoreCheck::Adopt => cache.adopt(
            HookSnapshot::new(seen.version, store.load_all().await?),
            seen.epoch.clone(),
        ),
    }
    let regressed = verdict == StoreCheck::Regressed;
    let was = cache
        .regressed
        .swap(regressed, std::sync::atomic::Ordering::Relaxed);
    if regressed && !was {
        tracing::error!(
            known_version = snapshot.version,
            store_version = seen.version,
            "the hook store came back empty or older than this process's configuration: \
             routing on the last good snapshot, hook changes refused; restore it \
             (POST /api/hook-store/restore) or accept the store as it is \
             (POST /api/hook-store/accept)"
        );
    } else if was && !regressed {
        tracing::info!(version = seen.version, "the hook store is consistent again");
    }
    Ok(regressed)
}

/// Wakes [`poll`] on each announced change. Pub/sub loses what is published while it is
/// disconnected, so it only shortens the wait; the poll stays the truth.
async fn listen(store: &HookStore, announced: &Notify, shutdown: &CancellationToken) {
    let channel = store.keys.hooks_changed();
    loop {
        let subscribed = async {
            let client = redis::Client::open(&*store.redis_url)?;
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            let mut messages = pubsub.on_message();
            while futures::StreamExt::next(&mut messages).await.is_some() {
                announced.notify_one();
            }
            Ok::<_, redis::RedisError>(())
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            ended = subscribed => if let Err(err) = ended {
                tracing::debug!(error = %err, "change announcements unavailable; polling");
            },
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hookbus_contracts::hook::HookInput;
    use hookbus_contracts::target::TargetPolicy;

    fn hook(events: &[&str], enabled: bool) -> Hook {
        let input: HookInput = serde_json::from_value(serde_json::json!({
            "events": events, "config": {"url": "https://example.com/h"}, "enabled": enabled
        }))
        .unwrap();
        input.validate(&TargetPolicy::default()).unwrap()
    }

    #[test]
    fn an_older_snapshot_never_replaces_a_newer_one() {
        let cache = HookCache::default();
        cache.install(HookSnapshot::new(5, vec![hook(&["PostSignIn"], true)]));
        cache.install(HookSnapshot::new(4, vec![]));
        assert_eq!(cache.snapshot().version, 5);
        assert_eq!(cache.snapshot().hooks().count(), 1);
        cache.install(HookSnapshot::new(6, vec![]));
        assert_eq!(cache.snapshot().version, 6);
    }
}
