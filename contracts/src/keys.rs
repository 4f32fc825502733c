//! Redis key names, all under `{prefix}:`.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `{p}:hook:{id}` | string | one hook as JSON (Logto's shape, signing key included) |
//! | `{p}:hooks` | sorted set | hook ids scored by `createdAt`, for newest-first listing |
//! | `{p}:hooks:version` | integer | bumped in the same transaction as every hook change |
//! | `{p}:hooks:epoch` | string | the store's identity, written with the first hook: a store that comes back without it (or with another) has lost hooks |
//! | `{p}:hooks:epoch-accepted` | string | the epoch an operator accepted after a regression (`POST /api/hook-store/accept`) |
//! | `{p}:hooks:changes` | sorted set | hook id → the version of its last change, the latest [`CHANGES_KEPT`] hooks changed: what a process behind reads instead of every hook |
//! | `{p}:hooks:changes-floor` | integer | the highest version dropped from `{p}:hooks:changes` (or written without it: a restore): a process that loaded an older version reloads every hook |
//! | `{p}:deliverers` | sorted set | instance id → the end of that deliverer's lease (epoch ms): the live deliverers, among whom hooks are shared |
//! | `{p}:busy-hooks` | sorted set | hook id → until when (epoch ms) a deliverer reported it busy: every deliverer consumes it |
//! | `{p}:active-hooks` | sorted set | hook id → until when (epoch ms) it is active: its queue may exist while it is a member, deliverers consume it while the time is to come (`activity`) |
//! | `{p}:retiring-hooks` | hash | hook id → when (epoch ms) a sweep began deleting its idle queue, or a router declaring the queue of a hook with no activity: activations wait until it is done |
//! | `{p}:active-hooks:seeded` | string | set once every hook stored before activity was tracked was handed to the idle sweep, so that their queues are looked at |
//! | `{p}:hooks:changed` | pub/sub channel | the new version, published after each change (a wake-up; polling stays the truth) |
//! | `{p}:routers` | set | ids of the routers that hold (or held) a lease |
//! | `{p}:router:{id}` | string, expires | the hook version a live router has loaded; its expiry is the router's lease |
//! | `{p}:idempotency:{key}` | string | an ingest request's `Idempotency-Key`: pending, or the answer (JSON) |
//! | `{p}:logs:{id}` | sorted set | one hook's delivery log records (JSON), scored by time |
//! | `{p}:stats:{id}:{hour}` | hash | one hook's `requests` / `successes` in one hour, and its attempts per duration bucket (`le:{ms}`, `le:inf`) |
//! | `{p}:activity:{bucket}` | hash | events `routed`, attempts `delivered` and `failed` in one 10 s bucket, over every process; expires after an hour |
//! | `{p}:backlog` | hash | hook id → its queue as a deliverer last measured it (JSON: messages, oldest age, when) |
//! | `{p}:processes` | hash | `{role}/{instance}` → a process's last announcement (JSON: ready, down conditions, when) |
//! | `{p}:dead-letter-hooks` | set | ids of hooks that have a dead-letter queue |
//! | `{p}:failing:{id}` | string | since when (epoch ms) a hook's endpoint has failed without a success |

use crate::ids::HookId;

/// How many hooks' last changes `{p}:hooks:changes` keeps. A process that loaded a version
/// older than every change kept reloads every hook; one within reads only the hooks that
/// changed, so a change costs one hook's read, not 100,000.
pub const CHANGES_KEPT: usize = 10_000;

#[derive(Debug, Clone)]
pub struct RedisKeys {
    prefix: String,
}

impl RedisKeys {
    pub fn new(prefix: &str) -> RedisKeys {
        RedisKeys {
            prefix: prefix.to_owned(),
        }
    }

    pub fn hook(&self, id: &HookId) -> String {
        format!("{}:hook:{}", self.prefix, id)
    }

    pub fn hooks_index(&self) -> String {
        format!("{}:hooks", self.prefix)
    }

    /// Deleted hooks whose queues may still exist, scored by the deletion time (ms).
    pub fn deleted_hooks(&self) -> String {
        format!("{}:hooks:deleted", self.prefix)
    }

    pub fn hooks_version(&self) -> String {
        format!("{}:hooks:version", self.prefix)
    }

    /// The store's identity (see [`crate::store::StoreCheck`]).
    pub fn hooks_epoch(&self) -> String {
        format!("{}:hooks:epoch", self.prefix)
    }

    /// An epoch an operator accepted as the truth after a regression.
    pub fn hooks_epoch_accepted(&self) -> String {
        format!("{}:hooks:epoch-accepted", self.prefix)
    }

    /// Hook id → the version of its last change (see [`CHANGES_KEPT`]).
    pub fn hooks_changes(&self) -> String {
        format!("{}:hooks:changes", self.prefix)
    }

    /// The highest version whose change may be missing from [`RedisKeys::hooks_changes`].
    pub fn hooks_changes_floor(&self) -> String {
        format!("{}:hooks:changes-floor", self.prefix)
    }

    /// The live deliverers, by the end of their lease.
    pub fn deliverers(&self) -> String {
        format!("{}:deliverers", self.prefix)
    }

    /// Hooks reported busy, by until when.
    pub fn busy_hooks(&self) -> String {
        format!("{}:busy-hooks", self.prefix)
    }

    /// Hook id → until when it is active (see the contracts' `activity`).
    pub fn active_hooks(&self) -> String {
        format!("{}:active-hooks", self.prefix)
    }

    /// Hook id → when a sweep began deleting its queue.
    pub fn retiring_hooks(&self) -> String {
        format!("{}:retiring-hooks", self.prefix)
    }

    /// Set once the hooks stored before activity was tracked were made active.
    pub fn active_hooks_seeded(&self) -> String {
        format!("{}:active-hooks:seeded", self.prefix)
    }

    /// Pub/sub channel announcing a new version.
    pub fn hooks_changed(&self) -> String {
        format!("{}:hooks:changed", self.prefix)
    }

    pub fn routers(&self) -> String {
        format!("{}:routers", self.prefix)
    }

    /// One router's lease: the version it has loaded, expiring with the lease.
    pub fn router(&self, id: &str) -> String {
        format!("{}:router:{}", self.prefix, id)
    }

    pub fn logs(&self, id: &HookId) -> String {
        format!("{}:logs:{}", self.prefix, id)
    }

    /// `hour` is hours since the epoch.
    pub fn stats(&self, id: &HookId, hour: i64) -> String {
        format!("{}:stats:{}:{}", self.prefix, id, hour)
    }

    /// `bucket` is 10 s buckets since the epoch (see the contracts' `overview`).
    pub fn activity(&self, bucket: i64) -> String {
        format!("{}:activity:{}", self.prefix, bucket)
    }

    pub fn backlog(&self) -> String {
        format!("{}:backlog", self.prefix)
    }

    pub fn processes(&self) -> String {
        format!("{}:processes", self.prefix)
    }

    /// Hooks that have a dead-letter queue (it is declared on first use).
    pub fn dead_letter_hooks(&self) -> String {
        format!("{}:dead-letter-hooks", self.prefix)
    }

    pub fn failing_since(&self, id: &HookId) -> String {
        format!("{}:failing:{}", self.prefix, id)
    }

    /// A `SCAN MATCH` pattern for every key of this prefix (tests clean up with it).
    pub fn all_pattern(&self) -> String {
        format!("{}:*", self.prefix)
    }

    /// What the producer answered to an `Idempotency-Key`, kept 24 h.
    pub fn idempotency(&self, key: &str) -> String {
        format!("{}:idempotency:{}", self.prefix, key)
    }
}
