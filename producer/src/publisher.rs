//! The Rust SDK: publish a domain event and return only once RabbitMQ has confirmed it.
//!
//! A [`Publisher`] is a cheap clone shared by every request. It holds one confirm-mode
//! channel, opened on first use; when the broker goes away the next publish reconnects (and
//! re-declares the events topology), so a broker restart needs no restart of the auth
//! service. One publish that fails on a dead channel is retried once on a fresh one: the
//! worst case is a duplicate with the same event id, never a loss.

use std::sync::Arc;

use hookbus_contracts::broker::{self, PublishError};
use hookbus_contracts::ops::Flag;
use hookbus_contracts::payload::Payload;
use hookbus_contracts::topology::Topology;
use hookbus_contracts::{Event, EventId, EventName};
use lapin::{Channel, Connection};
use tokio::sync::Mutex;

#[derive(Clone)]
pub struct Publisher {
    inner: Arc<Inner>,
}

struct Inner {
    amqp_url: String,
    topology: Topology,
    link: Mutex<Option<(Connection, Channel)>>,
    connected: Flag,
}

impl Publisher {
    /// A publisher that connects on first use. `connected` mirrors the link's state (for
    /// `/readyz`).
    pub fn new(amqp_url: &str, topology: Topology, connected: Flag) -> Publisher {
        Publisher {
            inner: Arc::new(Inner {
                amqp_url: amqp_url.to_owned(),
                topology,
                link: Mutex::new(None),
                connected,
            }),
        }
    }

    /// Connects now, so that a wrong URL fails at startup rather than on the first event.
    pub async fn connect(amqp_url: &str, prefix: &str) -> Result<Publisher, PublishError> {
        let publisher = Publisher::new(amqp_url, Topology::new(prefix), Flag::default());
        publisher.ensure_connected().await?;
        Ok(publisher)
    }

    /// Opens the link now if it is not open.
    pub async fn ensure_connected(&self) -> Result<(), PublishError> {
        self.channel().await.map(drop)
    }

    /// Publishes an event built from a catalogue name and Logto payload fields.
    pub async fn publish_event(
        &self,
        name: EventName,
        fields: Payload,
    ) -> Result<EventId, PublishError> {
        let event = Event::new(name, fields);
        self.publish(&event).await?;
        Ok(event.id)
    }

    /// Publishes `event`, persistent, and waits for the broker's confirm.
    pub async fn publish(&self, event: &Event) -> Result<(), PublishError> {
        let body = event.encode();
        let props = broker::persistent_json(event.id.as_str())
            .with_timestamp((event.accepted_at_ms / 1000) as u64);
        let exchange = self.inner.topology.events_exchange();
        let mut retried = false;
        loop {
            let ch = self.channel().await?;
            match broker::publish_confirmed(
                &ch,
                &exchange,
                event.name.as_str(),
                &body,
                props.clone(),
            )
            .await
            {
                Err(PublishError::Broker(err)) if !retried => {
                    tracing::warn!(error = %err, "publish failed on a dead channel; reconnecting");
                    self.reset(&ch).await;
                    retried = true;
                }
                Err(PublishError::Broker(err)) => {
                    self.reset(&ch).await;
                    return Err(PublishError::Broker(err));
                }
                other => return other,
            }
        }
    }

    async fn channel(&self) -> Result<Channel, PublishError> {
        let mut link = self.inner.link.lock().await;
        if let Some((conn, ch)) = link.as_ref() {
            if conn.status().connected() && ch.status().connected() {
                return Ok(ch.clone());
            }
        }
        *link = None;
        self.inner.connected.set(false);
        let conn = broker::connect(&self.inner.amqp_url, "hookbus-producer").await?;
        let ch = broker::confirm_channel(&conn).await?;
        self.inner.topology.declare_events(&ch).await?;
        *link = Some((conn, ch.clone()));
        self.inner.connected.set(true);
        Ok(ch)
    }

    /// Drops the link if it is still the one that failed (another request may have
    /// replaced it already).
    async fn reset(&self, failed: &Channel) {
        let mut link = self.inner.link.lock().await;
        if link.as_ref().is_some_and(|(_, ch)| ch.id() == failed.id()) {
            *link = None;
            self.inner.connected.set(false);
        }
    }
}
