//! The AMQP topology: every exchange and queue name, in one place (the runtime crate's
//! `declare` declares them).
//!
//! ```text
//! producer ──► {p}.events (topic) ──► {p}.events (quorum) ──► router
//!                                          └─ delivery limit ─► {p}.events.dead (quorum)
//! router ──► {p}.deliveries (direct, key = hook id) ──► {p}.hook.{id} ──► deliverers
//! deliverer ──► {p}.retry.{ms}ms (fanout) ──► queue with TTL ──dead-letter──► {p}.deliveries
//!           └─► {p}.dead.{id} (quorum): what never succeeded, with its reason
//! ```
//! Every declaration is idempotent, so each process declares what it uses at startup and a
//! fresh broker needs no setup. Names are namespaced by `HOOKBUS_PREFIX`.
//!
//! Per-hook queues are classic (version 2) queues: one quorum queue per hook is a Raft group
//! per hook, which costs memory and CPU per idle hook at 10,000 hooks; the events and
//! dead-letter queues, which hold what must survive a node loss, are quorum queues. The
//! measurement behind this choice is in `docs/BENCHMARKS.md`.

use std::time::Duration;

use crate::ids::HookId;

/// How many times the router may receive one event before it is parked: only an event that
/// repeatedly kills the router (or its connection) gets there.
pub const EVENT_DELIVERY_LIMIT: i64 = 20;

/// Header on every dead letter: why it was parked.
pub const DEAD_LETTER_REASON_HEADER: &str = "x-hookbus-reason";
/// Header on a hook's dead letter: when it was parked (epoch ms).
pub const DEAD_LETTER_AT_HEADER: &str = "x-hookbus-dead-at";

#[derive(Debug, Clone)]
pub struct Topology {
    prefix: String,
}

impl Topology {
    pub fn new(prefix: &str) -> Topology {
        Topology {
            prefix: prefix.to_owned(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn events_exchange(&self) -> String {
        format!("{}.events", self.prefix)
    }

    pub fn events_queue(&self) -> String {
        format!("{}.events", self.prefix)
    }

    pub fn events_dead_queue(&self) -> String {
        format!("{}.events.dead", self.prefix)
    }

    pub fn deliveries_exchange(&self) -> String {
        format!("{}.deliveries", self.prefix)
    }

    pub fn hook_queue(&self, hook: &HookId) -> String {
        format!("{}.hook.{}", self.prefix, hook)
    }

    pub fn dead_queue(&self, hook: &HookId) -> String {
        format!("{}.dead.{}", self.prefix, hook)
    }

    /// The exchange and queue of one retry tier (they share the name).
    pub fn retry_tier(&self, delay: Duration) -> String {
        format!("{}.retry.{}ms", self.prefix, delay.as_millis())
    }
}
