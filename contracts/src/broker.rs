//! RabbitMQ plumbing shared by every process: connecting with backoff, and the one way to
//! publish, which counts a message as sent only once the broker has confirmed it.
//!
//! Every publish is `mandatory` on a confirm-mode channel: a message no queue would take
//! comes back as [`PublishError::Unroutable`] instead of vanishing, and a broker nack is an
//! error. Callers ack what they consumed only after this returns `Ok`.

use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("RabbitMQ: {0}")]
    Broker(#[from] lapin::Error),
    #[error("RabbitMQ refused the message (nack)")]
    Nacked,
    #[error("no queue is bound for routing key `{0}`")]
    Unroutable(String),
}

pub async fn connect(url: &str, name: &str) -> lapin::Result<Connection> {
    let props = ConnectionProperties::default().with_connection_name(name.into());
    Connection::connect(url, props).await
}

/// Connects, retrying with capped exponential backoff, until it succeeds or `shutdown` fires.
pub async fn connect_until(
    url: &str,
    name: &str,
    shutdown: &CancellationToken,
) -> Option<Connection> {
    let mut wait = Duration::from_millis(100);
    loop {
        match connect(url, name).await {
            Ok(conn) => return Some(conn),
            Err(err) => tracing::warn!(error = %err, retry_in = ?wait, "RabbitMQ unreachable"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = (wait * 2).min(Duration::from_secs(5));
    }
}

pub async fn confirm_channel(conn: &Connection) -> lapin::Result<Channel> {
    let ch = conn.create_channel().await?;
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    Ok(ch)
}

/// Properties of every hookbus message: persistent JSON, with the event id as message id.
pub fn persistent_json(message_id: &str) -> BasicProperties {
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/json".into())
        .with_message_id(message_id.into())
}

/// Adds one string header to message properties.
pub fn with_header(props: BasicProperties, key: &str, value: &str) -> BasicProperties {
    let mut headers = props.headers().clone().unwrap_or_default();
    headers.insert(key.into(), AMQPValue::LongString(value.into()));
    props.with_headers(headers)
}

/// Reads one string header.
pub fn header(props: &BasicProperties, key: &str) -> Option<String> {
    let headers: &FieldTable = props.headers().as_ref()?;
    match headers.inner().get(key)? {
        AMQPValue::LongString(s) => Some(s.to_string()),
        AMQPValue::ShortString(s) => Some(s.to_string()),
        _ => None,
    }
}

/// Messages ready in `queue`, by a passive declare on `ch`. A missing queue closes the
/// channel (AMQP's rule), so `ch` is replaced by a fresh one from `conn` then.
pub async fn depth(conn: &Connection, ch: &mut Channel, queue: &str) -> Option<u32> {
    let passive = lapin::options::QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    match ch
        .queue_declare(ShortString::from(queue), passive, FieldTable::default())
        .await
    {
        Ok(q) => Some(q.message_count()),
        Err(_) => {
            if let Ok(fresh) = conn.create_channel().await {
                *ch = fresh;
            }
            None
        }
    }
}

/// Closes `ch` if it is still open, and waits for the broker's answer; for a channel whose
/// connection closes next. lapin closes a channel whose last handle is dropped while open
/// in the background, and when the connection starts closing first, that background close
/// finds the channel closing and is logged as an ERROR (`invalid channel state: Closing`)
/// although nothing went wrong. A channel closed here leaves it nothing to do.
pub async fn close_channel(ch: &Channel) {
    if ch.status().connected() {
        let _ = ch.close(200, "done".into()).await;
    }
}

/// Whether the broker refused an operation because its queue or exchange does not exist
/// (AMQP's 404, which also closes the channel).
pub fn is_not_found(err: &lapin::Error) -> bool {
    use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
    matches!(err.kind(), lapin::ErrorKind::ProtocolError(amqp)
        if *amqp.kind() == AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND))
}

/// Publishes and waits for the broker's confirm.
pub async fn publish_confirmed(
    ch: &Channel,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
    props: BasicProperties,
) -> Result<(), PublishError> {
    let opts = BasicPublishOptions {
        mandatory: true,
        ..Default::default()
    };
    let confirm = ch
        .basic_publish(
            ShortString::from(exchange),
            ShortString::from(routing_key),
            opts,
            body,
            props,
        )
        .await?
        .await?;
    if !confirm.is_ack() {
        return Err(PublishError::Nacked);
    }
    match confirm.take_message() {
        Some(_) => Err(PublishError::Unroutable(routing_key.to_owned())),
        None => Ok(()),
    }
}
