//! Raw RabbitMQ plumbing for the broker-only measurements: connections, the two queue
//! types hookbus uses, one persistent publish awaited until confirmed, and cleanup.

use std::future::Future;

use anyhow::{bail, Context, Result};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::options::{BasicQosOptions, QueueDeleteOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection};

pub use hookbus_tests::pipeline::AMQP_URL;

/// Unacknowledged deliveries per consumer: the router's default prefetch.
pub const PREFETCH: u16 = 256;

/// A name prefix no other run uses, e.g. `bench-bare-1a2b3c4d5e`.
pub fn unique_prefix(what: &str) -> String {
    let id = uuid::Uuid::now_v7().simple().to_string();
    format!("bench-{what}-{}", &id[id.len() - 10..])
}

/// The per-hook queue type hookbus chose, or the quorum queue it did not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueType {
    ClassicV2,
    Quorum,
}

impl QueueType {
    pub fn label(self) -> &'static str {
        match self {
            QueueType::ClassicV2 => "classic v2",
            QueueType::Quorum => "quorum",
        }
    }

    /// The kind of hookbus's per-hook queues unless `HOOKBUS_HOOK_QUEUE_TYPE` says otherwise.
    pub fn of_hooks() -> QueueType {
        match hookbus_contracts::topology::QueueType::default() {
            hookbus_contracts::topology::QueueType::Classic => QueueType::ClassicV2,
            hookbus_contracts::topology::QueueType::Quorum => QueueType::Quorum,
        }
    }

    /// The same kind as hookbus's setting names it (`HOOKBUS_HOOK_QUEUE_TYPE`), for declaring
    /// queues through hookbus's own declarations.
    pub fn setting(self) -> hookbus_contracts::topology::QueueType {
        match self {
            QueueType::ClassicV2 => hookbus_contracts::topology::QueueType::Classic,
            QueueType::Quorum => hookbus_contracts::topology::QueueType::Quorum,
        }
    }

    fn args(self) -> FieldTable {
        let (key, value) = match self {
            QueueType::ClassicV2 => ("x-queue-version", AMQPValue::LongInt(2)),
            QueueType::Quorum => ("x-queue-type", AMQPValue::LongString("quorum".into())),
        };
        let mut args = FieldTable::default();
        args.insert(key.into(), value);
        args
    }
}

/// A connection to the shared broker of the test setup.
pub async fn connect(name: &str) -> Result<Connection> {
    connect_to(AMQP_URL, name).await
}

/// A connection to the broker (or cluster node) at `url`.
pub async fn connect_to(url: &str, name: &str) -> Result<Connection> {
    Ok(hookbus_runtime::broker::connect(url, name).await?)
}

/// A channel in confirm mode, for publishing.
pub async fn confirm_channel(conn: &Connection) -> Result<Channel> {
    let ch = conn.create_channel().await?;
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    Ok(ch)
}

/// A channel whose consumers each hold at most `PREFETCH` unacked deliveries.
pub async fn consume_channel(conn: &Connection) -> Result<Channel> {
    let ch = conn.create_channel().await?;
    ch.basic_qos(PREFETCH, BasicQosOptions::default()).await?;
    Ok(ch)
}

pub async fn declare(ch: &Channel, name: &str, kind: QueueType) -> Result<()> {
    let opts = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.queue_declare(name.into(), opts, kind.args()).await?;
    Ok(())
}

/// Publishes `body` persistently to `queue` (default exchange) and waits for the confirm.
pub async fn publish(ch: &Channel, queue: &str, body: &[u8]) -> Result<()> {
    let props = BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/json".into());
    let confirm = ch
        .basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions::default(),
            body,
            props,
        )
        .await?
        .await?;
    if !confirm.is_ack() {
        bail!("RabbitMQ nacked a publish to {queue}");
    }
    Ok(())
}

/// Declares every queue of `names`, spread over a few channels.
pub async fn declare_all(conn: &Connection, names: &[String], kind: QueueType) -> Result<()> {
    on_channels(conn, names, move |ch, name| async move {
        declare(&ch, &name, kind).await
    })
    .await
}

/// Deletes every queue of `names` on fresh channels (a failed declare may have closed the
/// others); deleting a queue that does not exist succeeds.
pub async fn delete_queues(conn: &Connection, names: &[String]) -> Result<()> {
    on_channels(conn, names, |ch, name| async move {
        ch.queue_delete(name.as_str().into(), QueueDeleteOptions::default())
            .await
            .with_context(|| format!("deleting {name}"))?;
        Ok(())
    })
    .await
}

/// Runs `op` on every name, names split over `CHANNELS` channels working concurrently
/// (operations on one channel are serial in AMQP).
pub async fn on_channels<F, Fut>(conn: &Connection, names: &[String], op: F) -> Result<()>
where
    F: Fn(Channel, String) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    const CHANNELS: usize = 8;
    let per_channel = names.len().div_ceil(CHANNELS).max(1);
    let op = &op;
    let work = names.chunks(per_channel).map(|chunk| async move {
        let ch = conn.create_channel().await?;
        for name in chunk {
            op(ch.clone(), name.clone()).await?;
        }
        let _ = ch.close(200, "done".into()).await;
        Ok::<(), anyhow::Error>(())
    });
    futures::future::try_join_all(work).await?;
    Ok(())
}
