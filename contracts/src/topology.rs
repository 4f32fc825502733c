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
//! The events and dead-letter queues are quorum queues: replicated, they survive the loss of
//! a node. The queues that hold deliveries (each hook's queue and the retry tiers) are of
//! the [`QueueType`] `HOOKBUS_HOOK_QUEUE_TYPE` names: quorum by default, so a backlog
//! survives a node too; classic (version 2) for a single node, where an idle queue costs
//! less. The measurements behind the default are in `docs/BENCHMARKS.md`.

use std::time::Duration;

use crate::ids::HookId;

/// How many times the router may receive one event before it is parked: only an event that
/// repeatedly kills the router (or its connection) gets there.
pub const EVENT_DELIVERY_LIMIT: i64 = 20;

/// Header on every dead letter: why it was parked.
pub const DEAD_LETTER_REASON_HEADER: &str = "x-hookbus-reason";
/// Header on a hook's dead letter: when it was parked (epoch ms).
pub const DEAD_LETTER_AT_HEADER: &str = "x-hookbus-dead-at";

/// The kind of the queues that hold deliveries (per-hook queues and retry tiers).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum QueueType {
    /// Replicated (Raft) over the cluster: survives the loss of a node.
    #[default]
    Quorum,
    /// On one node (version 2): cheaper per idle queue; its backlog is lost with its node's
    /// disk and unreachable while its node is down.
    Classic,
}

impl QueueType {
    pub fn parse(s: &str) -> Result<QueueType, String> {
        match s {
            "quorum" => Ok(QueueType::Quorum),
            "classic" => Ok(QueueType::Classic),
            other => Err(format!("`{other}` is not a queue type (quorum or classic)")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            QueueType::Quorum => "quorum",
            QueueType::Classic => "classic",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Topology {
    prefix: String,
    delivery_queues: QueueType,
}

impl Topology {
    /// The topology of `prefix`, with quorum queues for deliveries.
    pub fn new(prefix: &str) -> Topology {
        Topology {
            prefix: prefix.to_owned(),
            delivery_queues: QueueType::default(),
        }
    }

    /// The same names, with deliveries held in queues of `kind`.
    pub fn with_delivery_queues(self, kind: QueueType) -> Topology {
        Topology {
            delivery_queues: kind,
            ..self
        }
    }

    /// The kind of the per-hook queues and retry tiers.
    pub fn delivery_queues(&self) -> QueueType {
        self.delivery_queues
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
