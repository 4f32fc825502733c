//! RabbitMQ plumbing shared by every process: connecting with backoff, and the one way to
//! publish, which counts a message as sent only once the broker has confirmed it.
//!
//! Every publish is `mandatory` on a confirm-mode channel: a message no queue would take
//! comes back as [`PublishError::Unroutable`] instead of vanishing, and a broker nack is an
//! error. Callers ack what they consumed only after this returns `Ok`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use tokio_util::sync::CancellationToken;

use crate::health::BrokerFlags;

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("RabbitMQ: {0}")]
    Broker(#[from] lapin::Error),
    #[error("RabbitMQ refused the message (nack)")]
    Nacked,
    #[error("no queue is bound for routing key `{0}`")]
    Unroutable(String),
    /// A return came back that none of this publisher's messages can account for: another
    /// publisher shares the channel, so which message was unroutable is not known.
    #[error("a returned message (routing key `{0}`) belongs to another publish on the channel")]
    UncertainReturn(String),
    #[error("no confirm channel is left on this connection")]
    NoChannel,
    /// No confirm within the deadline: the message may or may not have been taken.
    #[error("RabbitMQ did not confirm within {0:?}")]
    Timeout(Duration),
    /// RabbitMQ blocks publishers (a memory or disk alarm): nothing was sent.
    #[error("RabbitMQ is blocking publishers (a resource alarm)")]
    Blocked,
}

/// One message of a batch for [`publish_all`].
pub struct Outgoing<'a> {
    pub routing_key: &'a str,
    pub body: &'a [u8],
    pub props: BasicProperties,
}

/// The nodes of one RabbitMQ cluster, as `HOOKBUS_AMQP_URL` lists them (comma-separated),
/// checked: a URL that does not parse is an error that names it, at startup, not an
/// endless retry.
pub fn parse_nodes(list: &str) -> Result<Vec<String>, String> {
    let nodes: Vec<String> = list
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect();
    if nodes.is_empty() {
        return Err("no AMQP URL given".into());
    }
    for node in &nodes {
        node.parse::<lapin::uri::AMQPUri>()
            .map_err(|e| format!("`{}` is not an AMQP URL: {e}", redact(node)))?;
    }
    Ok(nodes)
}

/// A URL as it may be logged: without its password.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// How long one node may take to accept a connection before the next is tried: a node cut
/// off by a partition does not answer at all.
const NODE_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Connects to one node of `urls` (one AMQP URL, or the comma-separated nodes of a
/// cluster), trying each in turn. Processes start at different nodes (by process id), so a
/// fleet spreads over the cluster, and a process that lost its node fails over to the next.
pub async fn connect(urls: &str, name: &str) -> lapin::Result<Connection> {
    let nodes: Vec<&str> = urls
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect();
    let first = std::process::id() as usize % nodes.len().max(1);
    let mut last = None;
    for i in 0..nodes.len() {
        let url = nodes[(first + i) % nodes.len()];
        let props = ConnectionProperties::default().with_connection_name(name.into());
        match tokio::time::timeout(NODE_CONNECT_TIMEOUT, Connection::connect(url, props)).await {
            Ok(Ok(conn)) => return Ok(conn),
            Ok(Err(err)) => {
                tracing::debug!(node = %redact(url), error = %err, "RabbitMQ node unreachable");
                last = Some(err);
            }
            Err(_) => {
                tracing::debug!(node = %redact(url), "RabbitMQ node did not answer in time");
                last = Some(timed_out());
            }
        }
    }
    Err(last.unwrap_or_else(timed_out))
}

fn timed_out() -> lapin::Error {
    lapin::ErrorKind::IOError(std::sync::Arc::new(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "no RabbitMQ node answered",
    )))
    .into()
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

/// Runs `session` on a connection to `amqp_url` until `shutdown`, reconnecting with backoff
/// whenever a session ends on a broker failure: the one reconnect loop of every consuming
/// process. `flags` follow the link (`connected` while a session runs; `consuming` is the
/// session's to set). A session that ends without error while `shutdown` has not fired was
/// cancelled by the broker (a queue deleted, a node restarted) and is started again too.
pub async fn supervise<E, Session>(
    amqp_url: &str,
    name: &str,
    flags: &BrokerFlags,
    shutdown: &CancellationToken,
    mut session: impl FnMut(Arc<Connection>) -> Session,
) where
    E: std::fmt::Display,
    Session: Future<Output = Result<(), E>>,
{
    while let Some(conn) = connect_until(amqp_url, name, shutdown).await {
        flags.connected.set(true);
        let conn = Arc::new(conn);
        let result = session(conn.clone()).await;
        flags.down();
        let _ = conn.close(200, "session over".into()).await;
        match result {
            Ok(()) if shutdown.is_cancelled() => return,
            Ok(()) => tracing::warn!(
                process = name,
                "consumer cancelled by the broker; reconnecting"
            ),
            Err(err) => tracing::warn!(process = name, error = %err, "lost RabbitMQ; reconnecting"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(RECONNECT_PAUSE) => {}
        }
    }
}

/// A pause between sessions, so a broker that accepts connections and then fails every
/// session at once is not hammered.
const RECONNECT_PAUSE: Duration = Duration::from_millis(200);

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

/// How many times a quorum queue has delivered this message before (`x-delivery-count`;
/// 0 on the first delivery, and on classic queues, which do not count).
pub fn delivery_count(props: &BasicProperties) -> u32 {
    let Some(headers) = props.headers().as_ref() else {
        return 0;
    };
    match headers.inner().get("x-delivery-count") {
        Some(AMQPValue::LongLongInt(n)) => u32::try_from(*n).unwrap_or(u32::MAX),
        Some(AMQPValue::LongInt(n)) => u32::try_from(*n).unwrap_or(u32::MAX),
        Some(AMQPValue::LongUInt(n)) => *n,
        Some(AMQPValue::ShortInt(n)) => u32::try_from(*n).unwrap_or(u32::MAX),
        _ => 0,
    }
}

/// Removes one header (one the broker sets on delivery, before a message is published
/// again).
pub fn without_header(props: BasicProperties, key: &str) -> BasicProperties {
    let Some(mut headers) = props.headers().clone() else {
        return props;
    };
    let mut kept = FieldTable::default();
    for (name, value) in headers.inner() {
        if name.as_str() != key {
            kept.insert(name.clone(), value.clone());
        }
    }
    headers = kept;
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

/// Publishes and waits for the broker's confirm. On a channel other tasks publish on too, a
/// return that is not this message's is an [`PublishError::UncertainReturn`], never taken
/// for a success or blamed on this message (lapin hands a return to whichever confirm comes
/// next); only a channel of its own ([`ConfirmPool`]) attributes every return for certain.
pub async fn publish_confirmed(
    ch: &Channel,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
    props: BasicProperties,
) -> Result<(), PublishError> {
    let returned = publish_all(
        ch,
        exchange,
        &[Outgoing {
            routing_key,
            body,
            props,
        }],
    )
    .await?;
    if returned[0] {
        return Err(PublishError::Unroutable(routing_key.to_owned()));
    }
    Ok(())
}

/// Publishes `batch` (`mandatory`) and waits for every confirm; returns, for each message,
/// whether it came back unroutable. A return is attributed by what it carries (routing key
/// and message id), never by the confirm lapin attached it to: RabbitMQ sends a message's
/// return before its ack, so once every confirm of a channel that only this batch uses is
/// in, every return of the batch has been seen. One that matches no message of the batch
/// is an error, and the caller publishes again (a duplicate, never a loss).
pub async fn publish_all(
    ch: &Channel,
    exchange: &str,
    batch: &[Outgoing<'_>],
) -> Result<Vec<bool>, PublishError> {
    let opts = BasicPublishOptions {
        mandatory: true,
        ..Default::default()
    };
    let mut confirms = Vec::with_capacity(batch.len());
    for msg in batch {
        confirms.push(
            ch.basic_publish(
                ShortString::from(exchange),
                ShortString::from(msg.routing_key),
                opts,
                msg.body,
                msg.props.clone(),
            )
            .await?,
        );
    }
    let mut returned = vec![false; batch.len()];
    let mut nacked = false;
    for confirm in futures::future::try_join_all(confirms).await? {
        nacked |= !confirm.is_ack();
        let Some(back) = confirm.take_message() else {
            continue;
        };
        let key = back.delivery.routing_key.as_str();
        let id = back
            .delivery
            .properties
            .message_id()
            .as_ref()
            .map(ShortString::as_str);
        let mut found = false;
        for (flag, msg) in returned.iter_mut().zip(batch) {
            if msg.routing_key == key
                && msg.props.message_id().as_ref().map(ShortString::as_str) == id
            {
                *flag = true;
                found = true;
            }
        }
        if !found {
            return Err(PublishError::UncertainReturn(key.to_owned()));
        }
    }
    if nacked {
        return Err(PublishError::Nacked);
    }
    Ok(returned)
}

/// Confirm channels lent to one publisher at a time, so that every return on a channel
/// belongs to the batch that holds it. A channel that closed is not lent again; when none
/// is left the pool says so and the session reconnects. A channel that saw a nack is closed
/// and a fresh one opened in its place ([`Lent::watch`]).
pub struct ConfirmPool {
    conn: Arc<Connection>,
    idle: std::sync::Mutex<Vec<Channel>>,
    permits: tokio::sync::Semaphore,
}

/// A channel lent by a [`ConfirmPool`]; it goes back when dropped.
pub struct Lent<'a> {
    pool: &'a ConfirmPool,
    channel: Option<Channel>,
    /// The broker refused a message on it: it is closed instead of lent again.
    spoiled: bool,
    _permit: tokio::sync::SemaphorePermit<'a>,
}

impl ConfirmPool {
    /// Whether its connection is still up: when it is not, nothing consumed on it can be
    /// settled any more, and the broker hands every unsettled message out again.
    pub fn is_connected(&self) -> bool {
        self.conn.status().connected()
    }

    pub async fn open(conn: Arc<Connection>, size: usize) -> lapin::Result<ConfirmPool> {
        let mut idle = Vec::with_capacity(size);
        for _ in 0..size.max(1) {
            idle.push(confirm_channel(&conn).await?);
        }
        Ok(ConfirmPool {
            conn,
            permits: tokio::sync::Semaphore::new(idle.len()),
            idle: std::sync::Mutex::new(idle),
        })
    }

    /// Waits for a free channel; opens a fresh one in place of one that was spoiled.
    pub async fn lend(&self) -> Result<Lent<'_>, PublishError> {
        let permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| PublishError::NoChannel)?;
        let idle = self.idle.lock().expect("pool lock").pop();
        let channel = match idle {
            Some(channel) => channel,
            None => confirm_channel(&self.conn).await?,
        };
        Ok(Lent {
            pool: self,
            channel: Some(channel),
            spoiled: false,
            _permit: permit,
        })
    }

    /// False once a channel was found closed: the connection, or one channel, broke.
    pub fn healthy(&self) -> bool {
        !self.permits.is_closed()
    }

    /// Closes the idle channels ([`close_channel`]), before their connection closes.
    pub async fn close(&self) {
        let idle = std::mem::take(&mut *self.idle.lock().expect("pool lock"));
        for channel in &idle {
            close_channel(channel).await;
        }
    }
}

impl Lent<'_> {
    pub fn channel(&self) -> &Channel {
        self.channel.as_ref().expect("held until dropped")
    }

    /// Passes `result` on; after a nack the channel is not lent again. A channel that saw
    /// a quorum queue without a leader (a node lost, an election under way) can go on
    /// refusing every publish to it after the election; a fresh channel does not.
    pub fn watch<T>(&mut self, result: Result<T, PublishError>) -> Result<T, PublishError> {
        if matches!(result, Err(PublishError::Nacked)) {
            self.spoiled = true;
        }
        result
    }
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        let Some(channel) = self.channel.take() else {
            return;
        };
        if !channel.status().connected() {
            // Its permit is forgotten with it; the session sees the pool unhealthy.
            self.pool.permits.close();
        } else if self.spoiled {
            tokio::spawn(async move { close_channel(&channel).await });
        } else {
            self.pool.idle.lock().expect("pool lock").push(channel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_is_a_comma_separated_list_and_a_bad_url_is_named() {
        let nodes = parse_nodes("amqp://u:p@a:5672/%2f, amqp://u:p@b:5673/%2f,").unwrap();
        assert_eq!(nodes, ["amqp://u:p@a:5672/%2f", "amqp://u:p@b:5673/%2f"]);
        let err = parse_nodes("amqp://u:secret@a:5672/%2f,http//nope").unwrap_err();
        assert!(err.contains("http//nope"), "{err}");
        assert!(parse_nodes(" , ").is_err());
        let err = parse_nodes("amqp://u:secret@a:notaport/%2f").unwrap_err();
        assert!(!err.contains("secret"), "a password in an error: {err}");
    }
}
