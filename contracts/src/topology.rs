//! The AMQP topology: every exchange and queue name, and their declaration, in one place.
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

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{Channel, ExchangeKind};

use crate::ids::HookId;

/// How many times the router may receive one event before it is parked: only an event that
/// repeatedly kills the router (or its connection) gets there.
const EVENT_DELIVERY_LIMIT: i64 = 20;

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

    /// What the producer publishes to and the router consumes from.
    pub async fn declare_events(&self, ch: &Channel) -> lapin::Result<()> {
        declare_exchange(ch, &self.events_exchange(), ExchangeKind::Topic).await?;
        declare_queue(ch, &self.events_dead_queue(), quorum()).await?;
        let mut args = quorum();
        args.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongLongInt(EVENT_DELIVERY_LIMIT),
        );
        args.insert("x-dead-letter-exchange".into(), string(""));
        args.insert(
            "x-dead-letter-routing-key".into(),
            string(&self.events_dead_queue()),
        );
        // At-least-once dead-lettering: the broker keeps a parked event until the dead
        // letter queue has confirmed it (needs reject-publish overflow).
        args.insert("x-dead-letter-strategy".into(), string("at-least-once"));
        args.insert("x-overflow".into(), string("reject-publish"));
        declare_queue(ch, &self.events_queue(), args).await?;
        bind(ch, &self.events_queue(), &self.events_exchange(), "#").await
    }

    /// The exchange deliveries are published to; hook queues bind to it by hook id.
    pub async fn declare_deliveries(&self, ch: &Channel) -> lapin::Result<()> {
        declare_exchange(ch, &self.deliveries_exchange(), ExchangeKind::Direct).await
    }

    pub async fn declare_hook(&self, ch: &Channel, hook: &HookId) -> lapin::Result<()> {
        let queue = self.hook_queue(hook);
        let mut args = FieldTable::default();
        args.insert("x-queue-version".into(), AMQPValue::LongInt(2));
        declare_queue(ch, &queue, args).await?;
        bind(ch, &queue, &self.deliveries_exchange(), hook.as_str()).await
    }

    pub async fn declare_dead(&self, ch: &Channel, hook: &HookId) -> lapin::Result<()> {
        declare_queue(ch, &self.dead_queue(hook), quorum()).await
    }

    /// One tier per distinct wait of the retry schedule: messages wait out the TTL in
    /// RabbitMQ, durably, and are dead-lettered back to `{p}.deliveries` with their original
    /// routing key (the hook id), i.e. into their hook's queue.
    pub async fn declare_retry_tiers(
        &self,
        ch: &Channel,
        schedule: &[Duration],
    ) -> lapin::Result<()> {
        for delay in schedule {
            let name = self.retry_tier(*delay);
            declare_exchange(ch, &name, ExchangeKind::Fanout).await?;
            let mut args = FieldTable::default();
            args.insert(
                "x-message-ttl".into(),
                AMQPValue::LongLongInt(delay.as_millis() as i64),
            );
            args.insert(
                "x-dead-letter-exchange".into(),
                string(&self.deliveries_exchange()),
            );
            declare_queue(ch, &name, args).await?;
            bind(ch, &name, &name, "").await?;
        }
        Ok(())
    }
}

fn string(s: &str) -> AMQPValue {
    AMQPValue::LongString(s.into())
}

fn quorum() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), string("quorum"));
    args
}

async fn declare_exchange(ch: &Channel, name: &str, kind: ExchangeKind) -> lapin::Result<()> {
    let opts = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.exchange_declare(ShortString::from(name), kind, opts, FieldTable::default())
        .await
}

async fn declare_queue(ch: &Channel, name: &str, args: FieldTable) -> lapin::Result<()> {
    let opts = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.queue_declare(ShortString::from(name), opts, args)
        .await
        .map(drop)
}

async fn bind(ch: &Channel, queue: &str, exchange: &str, key: &str) -> lapin::Result<()> {
    ch.queue_bind(
        ShortString::from(queue),
        ShortString::from(exchange),
        ShortString::from(key),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
}
