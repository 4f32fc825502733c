//! Which hooks are active, in Redis: what routers write before publishing, deliverers read
//! to choose the queues they consume, and the routers' sweep reads to delete idle queues
//! (the rules are the contracts' `activity`).
//!
//! Every step that compares times runs as one Lua script on Redis's clock, so processes on
//! different machines agree on what "idle past its time" means.

use std::collections::HashMap;
use std::time::Duration;

use deadpool_redis::redis::{self, Cmd};
use deadpool_redis::Pool;
use hookbus_contracts::activity::{Idle, Verdict, RETIRE_MARK_LASTS};
use hookbus_contracts::keys::RedisKeys;
use hookbus_contracts::HookId;

use crate::store::StoreError;

/// Activates hooks (ARGV[3..]) unless a sweep is deleting, or another activation
/// declaring, the queue of one of them (a mark less than ARGV[2] ms old): `{0, id}` then,
/// nothing written. Otherwise the reply is `{1, ids...}` with the hooks whose queue may not
/// exist, which the caller declares: a hook with no activity is marked, and written active
/// only by [`END_DECLARE`], so that no deliverer consumes a queue still being created; one
/// marked by a sweep that died stays a member. Every other hook is active until now + the
/// idle period (ARGV[1]) at least.
const ACTIVATE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 3, #ARGV do
  local mark = redis.call('HGET', KEYS[2], ARGV[i])
  if mark and now - tonumber(mark) < tonumber(ARGV[2]) then return {0, ARGV[i]} end
end
local fresh = {1}
for i = 3, #ARGV do
  local id = ARGV[i]
  local stale = redis.call('HDEL', KEYS[2], id) == 1
  if not redis.call('ZSCORE', KEYS[1], id) then
    redis.call('HSET', KEYS[2], id, now)
    table.insert(fresh, id)
  else
    if stale then table.insert(fresh, id) end
    redis.call('ZADD', KEYS[1], 'GT', now + tonumber(ARGV[1]), id)
  end
end
return fresh
";

/// Ends the declaring of hooks' queues (ARGV[3..]): their marks are removed and, if the
/// queues were declared (ARGV[2] = 1), the hooks are active until now + the idle period
/// (ARGV[1]) at least.
const END_DECLARE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 3, #ARGV do
  redis.call('HDEL', KEYS[2], ARGV[i])
  if ARGV[2] == '1' then
    redis.call('ZADD', KEYS[1], 'GT', now + tonumber(ARGV[1]), ARGV[i])
  end
end
return 0
";

/// Keeps hooks active: ARGV pairs of a hook id and how long from now (ms).
const HOLD: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 1, #ARGV, 2 do
  redis.call('ZADD', KEYS[1], 'GT', now + tonumber(ARGV[i + 1]), ARGV[i])
end
return 0
";

/// The hooks active now, with until when, flattened.
const ACTIVE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf', 'WITHSCORES')
";

/// Marks up to ARGV[1] hooks idle past their time as retiring (skipping those another sweep
/// marked less than ARGV[2] ms ago) and returns them.
const BEGIN_RETIRE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local idle = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
local marked = {}
for _, id in ipairs(idle) do
  local mark = redis.call('HGET', KEYS[2], id)
  if not mark or now - tonumber(mark) >= tonumber(ARGV[2]) then
    redis.call('HSET', KEYS[2], id, now)
    table.insert(marked, id)
  end
end
return marked
";

/// Makes every stored hook idle as of now, once per prefix: the first time a router of this
/// version starts on it. Their queues may exist (the version before declared one per hook):
/// the sweep looks at each at once, so that a backlog is delivered and an empty queue
/// deleted, without every deliverer first consuming every stored hook for an idle period.
const SEED: &str = r"
if not redis.call('SET', KEYS[3], '1', 'NX') then return -1 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ids = redis.call('ZRANGE', KEYS[2], 0, -1)
for _, id in ipairs(ids) do
  redis.call('ZADD', KEYS[1], 'NX', now, id)
end
return #ids
";

/// What [`HookActivity::activate`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Activated {
    /// Active, or, for these hooks, to be declared: their queues may not exist, and they
    /// are written active by [`HookActivity::end_declare`].
    Active(Vec<HookId>),
    /// A sweep is deleting, or another activation declaring, this hook's queue: try again
    /// in a moment.
    Changing(HookId),
}

#[derive(Clone)]
pub struct HookActivity {
    pool: Pool,
    keys: RedisKeys,
    idle: Idle,
}

/// `EVAL` of `script` with `keys`; the caller adds the arguments.
fn eval(script: &str, keys: &[String]) -> Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(script).arg(keys.len()).arg(keys);
    cmd
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl HookActivity {
    pub fn new(pool: Pool, keys: RedisKeys, idle: Idle) -> HookActivity {
        HookActivity { pool, keys, idle }
    }

    pub fn idle(&self) -> Idle {
        self.idle
    }

    pub async fn activate(&self, hooks: &[&HookId]) -> Result<Activated, StoreError> {
        let mut call = eval(
            ACTIVATE,
            &[self.keys.active_hooks(), self.keys.retiring_hooks()],
        );
        call.arg(ms(self.idle.period())).arg(ms(RETIRE_MARK_LASTS));
        for hook in hooks {
            call.arg(hook.as_str());
        }
        let mut conn = self.pool.get().await?;
        let reply: Vec<redis::Value> = call.query_async(&mut *conn).await?;
        let mut values = reply.into_iter();
        let active = matches!(values.next(), Some(redis::Value::Int(1)));
        let ids: Vec<HookId> = values
            .filter_map(|v| redis::from_redis_value::<String>(v).ok())
            .filter_map(|id| HookId::parse(&id))
            .collect();
        Ok(if active {
            Activated::Active(ids)
        } else {
            ids.into_iter()
                .next()
                .map_or(Activated::Active(Vec::new()), Activated::Changing)
        })
    }

    /// Ends the declaring of the queues [`HookActivity::activate`] named: the hooks are
    /// active from now if their queues were `declared`, and no longer block others either
    /// way.
    pub async fn end_declare(&self, hooks: &[HookId], declared: bool) -> Result<(), StoreError> {
        if hooks.is_empty() {
            return Ok(());
        }
        let mut call = eval(
            END_DECLARE,
            &[self.keys.active_hooks(), self.keys.retiring_hooks()],
        );
        call.arg(ms(self.idle.period())).arg(u8::from(declared));
        for hook in hooks {
            call.arg(hook.as_str());
        }
        let mut conn = self.pool.get().await?;
        call.query_async::<i64>(&mut *conn).await?;
        Ok(())
    }

    /// Keeps each hook active for its duration from now at least, plus the idle period.
    pub async fn hold(&self, hooks: &[(&HookId, Duration)]) -> Result<(), StoreError> {
        if hooks.is_empty() {
            return Ok(());
        }
        let mut call = eval(HOLD, &[self.keys.active_hooks()]);
        for (hook, for_) in hooks {
            call.arg(hook.as_str()).arg(ms(*for_ + self.idle.period()));
        }
        let mut conn = self.pool.get().await?;
        call.query_async::<i64>(&mut *conn).await?;
        Ok(())
    }

    /// The hooks active now, with until when (epoch ms, Redis's clock).
    pub async fn active(&self) -> Result<HashMap<HookId, i64>, StoreError> {
        let mut conn = self.pool.get().await?;
        let flat: Vec<(String, i64)> = eval(ACTIVE, &[self.keys.active_hooks()])
            .query_async(&mut *conn)
            .await?;
        Ok(flat
            .into_iter()
            .filter_map(|(id, until)| HookId::parse(&id).map(|id| (id, until)))
            .collect())
    }

    /// Marks up to `limit` hooks idle past their time as retiring, for this sweep alone.
    pub async fn begin_retire(&self, limit: usize) -> Result<Vec<HookId>, StoreError> {
        let mut conn = self.pool.get().await?;
        let ids: Vec<String> = eval(
            BEGIN_RETIRE,
            &[self.keys.active_hooks(), self.keys.retiring_hooks()],
        )
        .arg(limit)
        .arg(ms(RETIRE_MARK_LASTS))
        .query_async(&mut *conn)
        .await?;
        Ok(ids.iter().filter_map(|id| HookId::parse(id)).collect())
    }

    /// Ends a retirement as `verdict` says: the queue was deleted (the hook is forgotten
    /// until its next activation), it is looked at again next sweep, or the hook is active
    /// again for an idle period.
    pub async fn end_retire(&self, hook: &HookId, verdict: Verdict) -> Result<(), StoreError> {
        let mut tx = redis::pipe();
        tx.atomic();
        if verdict == Verdict::Delete {
            tx.zrem(self.keys.active_hooks(), hook.as_str()).ignore();
        } else if verdict == Verdict::Revive {
            let until = hookbus_contracts::payload::now_ms() + ms(self.idle.period());
            tx.cmd("ZADD")
                .arg(self.keys.active_hooks())
                .arg("XX")
                .arg(until)
                .arg(hook.as_str())
                .ignore();
        }
        tx.hdel(self.keys.retiring_hooks(), hook.as_str()).ignore();
        let mut conn = self.pool.get().await?;
        tx.query_async::<()>(&mut *conn).await?;
        Ok(())
    }

    /// Hands every stored hook to the sweep once per prefix (see [`SEED`]); how many, or
    /// `None` if that was done before.
    pub async fn seed(&self) -> Result<Option<u64>, StoreError> {
        let mut conn = self.pool.get().await?;
        let n: i64 = eval(
            SEED,
            &[
                self.keys.active_hooks(),
                self.keys.hooks_index(),
                self.keys.active_hooks_seeded(),
            ],
        )
        .query_async(&mut *conn)
        .await?;
        Ok(u64::try_from(n).ok())
    }
}
