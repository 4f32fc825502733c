//! Declaring the AMQP topology whose names the contracts' `Topology` gives.
//!
//! Every declaration is idempotent, so each process declares what it uses at startup and a
//! fresh broker needs no setup; the shapes (quorum or classic, dead-lettering, TTLs) live
//! here, next to the broker calls, and nowhere else.

use std::time::Duration;

use hookbus_contracts::topology::{QueueType, Topology, EVENT_DELIVERY_LIMIT};
use hookbus_contracts::HookId;
use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{Channel, ExchangeKind};

/// The declarations of a [`Topology`], as methods of it.
#[allow(async_fn_in_trait)]
pub trait Declare {
    /// What the producer publishes to and the router consumes from.
    async fn declare_events(&self, ch: &Channel) -> lapin::Result<()>;
    /// The exchange deliveries are published to; hook queues bind to it by hook id.
    async fn declare_deliveries(&self, ch: &Channel) -> lapin::Result<()>;
    async fn declare_hook(&self, ch: &Channel, hook: &HookId) -> lapin::Result<()>;
    async fn declare_dead(&self, ch: &Channel, hook: &HookId) -> lapin::Result<()>;
    /// One tier per distinct wait of the retry schedule: messages wait out the TTL in
    /// RabbitMQ, durably, and are dead-lettered back to `{p}.deliveries` with their original
    /// routing key (the hook id), i.e. into their hook's queue.
    async fn declare_retry_tiers(&self, ch: &Channel, schedule: &[Duration]) -> lapin::Result<()>;
}

impl Declare for Topology {
    async fn declare_events(&self, ch: &Channel) -> lapin::Result<()> {
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
        at_least_once_dead_lettering(&mut args);
        declare_queue(ch, &self.events_queue(), args).await?;
        bind(ch, &self.events_queue(), &self.events_exchange(), "#").await
    }

    async fn declare_deliveries(&self, ch: &Channel) -> lapin::Result<()> {
        declare_exchange(ch, &self.deliveries_exchange(), ExchangeKind::Direct).await
    }

    async fn declare_hook(&self, ch: &Channel, hook: &HookId) -> lapin::Result<()> {
        let queue = self.hook_queue(hook);
        declare_queue(ch, &queue, delivery_queue(self.delivery_queues())).await?;
        bind(ch, &queue, &self.deliveries_exchange(), hook.as_str()).await
    }

    async fn declare_dead(&self, ch: &Channel, hook: &HookId) -> lapin::Result<()> {
        declare_queue(ch, &self.dead_queue(hook), quorum()).await
    }

    async fn declare_retry_tiers(&self, ch: &Channel, schedule: &[Duration]) -> lapin::Result<()> {
        for delay in schedule {
            let name = self.retry_tier(*delay);
            declare_exchange(ch, &name, ExchangeKind::Fanout).await?;
            let mut args = delivery_queue(self.delivery_queues());
            args.insert(
                "x-message-ttl".into(),
                AMQPValue::LongLongInt(delay.as_millis() as i64),
            );
            args.insert(
                "x-dead-letter-exchange".into(),
                string(&self.deliveries_exchange()),
            );
            if self.delivery_queues() == QueueType::Quorum {
                // A delivery leaves its tier only once its hook's queue has taken it: classic
                // queues dead-letter at most once, and a crash in between would drop it.
                at_least_once_dead_lettering(&mut args);
            }
            declare_queue(ch, &name, args).await?;
            bind(ch, &name, &name, "").await?;
        }
        Ok(())
    }
}

fn string(s: &str) -> AMQPValue {
    AMQPValue::LongString(s.into())
}

/// At-least-once dead-lettering: the broker keeps a dead-lettered message until the target
/// queue has confirmed it (quorum queues only; needs reject-publish overflow).
fn at_least_once_dead_lettering(args: &mut FieldTable) {
    args.insert("x-dead-letter-strategy".into(), string("at-least-once"));
    args.insert("x-overflow".into(), string("reject-publish"));
}

/// The arguments of a queue that holds deliveries.
fn delivery_queue(kind: QueueType) -> FieldTable {
    match kind {
        QueueType::Quorum => quorum(),
        QueueType::Classic => {
            let mut args = FieldTable::default();
            args.insert("x-queue-version".into(), AMQPValue::LongInt(2));
            args
        }
    }
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
