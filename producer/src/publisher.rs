//! The Rust SDK: publish domain events and return only once RabbitMQ has confirmed them.
//!
//! Three ways in, the same as the ingest API's: [`Publisher::publish_event`] (one event and
//! its Logto payload fields), [`Publisher::publish_api_call`] (a Management API call: the
//! route table decides the events) and [`Publisher::publish_interaction`] (a sign-in flow).
//! The HTTP handlers parse a body and then call the same planning and [`Publisher::publish_all`].
//!
//! A [`Publisher`] is a cheap clone shared by every request. It holds one confirm-mode
//! channel, opened on first use; when the broker goes away the next publish reconnects (and
//! re-declares the events topology), so a broker restart needs no restart of the auth
//! service. One publish that fails on a dead channel is retried once on a fresh one: the
//! worst case is a duplicate with the same event id, never a loss.
//!
//! A publish never hangs: it fails with [`PublishError::Blocked`] at once while RabbitMQ
//! blocks publishers (a resource alarm), and with [`PublishError::Timeout`] when no confirm
//! came within the deadline ([`DEFAULT_TIMEOUT`], or [`Publisher::with_timeout`]); the
//! link is then dropped, so the next publish starts on a fresh one.
//!
//! Each event's message carries the W3C trace context it was published under, so that its
//! trace goes on through the router and the deliverer: the one given to
//! [`Publisher::publish_traced`], or, with the `otel` feature, the caller's current
//! OpenTelemetry span (`Context::current()`: with `tracing-opentelemetry`, enter
//! `span.context().attach()` around the call). Without the feature the SDK stays on lapin and
//! tokio alone and only `publish_traced` carries a context.

use std::sync::Arc;
use std::time::Duration;

use hookbus_contracts::payload::Payload;
use hookbus_contracts::topology::Topology;
use hookbus_contracts::{Event, EventId, EventName};
use hookbus_runtime::broker::{self, PublishError};
use hookbus_runtime::declare::Declare;
use hookbus_runtime::health::Flag;
use hookbus_runtime::trace_context::{self, TraceParent};
use lapin::{Channel, Connection};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::api_call::ApiCall;
use crate::interaction::Interaction;

/// One event that RabbitMQ confirmed: an item of the ingest API's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    pub id: EventId,
    pub event: EventName,
}

impl Published {
    pub fn of(event: &Event) -> Published {
        Published {
            id: event.id.clone(),
            event: event.name,
        }
    }
}

/// Whether a publish could go through now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    Ready,
    /// RabbitMQ blocks publishers (a resource alarm).
    Blocked,
    /// Not connected (yet, or any more).
    Down,
}

/// How long a publish waits for RabbitMQ's confirm by default (`HOOKBUS_PUBLISH_TIMEOUT`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct Publisher {
    inner: Arc<Inner>,
    timeout: Duration,
}

struct Inner {
    amqp_url: String,
    topology: Topology,
    /// The channel behind an `Arc`: each publish takes a handle to it, and a lapin
    /// `Channel` is costly to clone and drop on every message.
    link: Mutex<Option<(Connection, Arc<Channel>)>>,
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
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The same publisher with another confirm deadline per event.
    pub fn with_timeout(mut self, timeout: Duration) -> Publisher {
        self.timeout = timeout;
        self
    }

    /// The link's state now (for `/readyz`).
    pub async fn link_state(&self) -> LinkState {
        let link = self.inner.link.lock().await;
        match link.as_ref() {
            Some((conn, _)) if conn.status().blocked() => LinkState::Blocked,
            Some((conn, ch)) if conn.status().connected() && ch.status().connected() => {
                LinkState::Ready
            }
            _ => LinkState::Down,
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

    /// Publishes the events a Management API call emits (none for a `GET`, a route not in
    /// the table, or a call that failed), in the route table's order.
    pub async fn publish_api_call(&self, call: &ApiCall) -> Result<Vec<Published>, PublishError> {
        self.publish_all(&call.events()).await
    }

    /// Publishes the interaction event of a sign-in flow, then its data events.
    pub async fn publish_interaction(
        &self,
        interaction: &Interaction,
    ) -> Result<Vec<Published>, PublishError> {
        self.publish_all(&interaction.events()).await
    }

    /// Publishes `events` one after the other, each confirmed before the next is sent, so
    /// they reach the events queue in order. On an error the events before it are published.
    pub async fn publish_all(&self, events: &[Event]) -> Result<Vec<Published>, PublishError> {
        for event in events {
            self.publish(event).await?;
        }
        Ok(events.iter().map(Published::of).collect())
    }

    /// Publishes `event`, persistent, and waits for the broker's confirm, at most the
    /// publisher's deadline.
    pub async fn publish(&self, event: &Event) -> Result<(), PublishError> {
        self.publish_traced(event, caller_context().as_ref()).await
    }

    /// [`Publisher::publish`], the message carrying `context` (the trace it belongs to).
    pub async fn publish_traced(
        &self,
        event: &Event,
        context: Option<&TraceParent>,
    ) -> Result<(), PublishError> {
        let published = self.publish_unbounded(event, context);
        match tokio::time::timeout(self.timeout, published).await {
            Ok(published) => published,
            Err(_) => {
                // A broker that stopped confirming: start the next publish afresh.
                let mut link = self.inner.link.lock().await;
                *link = None;
                self.inner.connected.set(false);
                Err(PublishError::Timeout(self.timeout))
            }
        }
    }

    async fn publish_unbounded(
        &self,
        event: &Event,
        context: Option<&TraceParent>,
    ) -> Result<(), PublishError> {
        let body = event.encode();
        let props = broker::persistent_json(event.id.as_str())
            .with_timestamp((event.accepted_at_ms / 1000) as u64);
        let props = trace_context::carry(props, context);
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
                // A channel that saw a quorum queue without a leader (a node lost, an
                // election under way) can go on refusing every publish after the election:
                // the next publish starts on a fresh link.
                Err(PublishError::Nacked) => {
                    self.reset(&ch).await;
                    return Err(PublishError::Nacked);
                }
                other => return other,
            }
        }
    }

    async fn channel(&self) -> Result<Arc<Channel>, PublishError> {
        let mut link = self.inner.link.lock().await;
        if let Some((conn, ch)) = link.as_ref() {
            if conn.status().blocked() {
                return Err(PublishError::Blocked);
            }
            if conn.status().connected() && ch.status().connected() {
                return Ok(ch.clone());
            }
        }
        *link = None;
        self.inner.connected.set(false);
        let conn = broker::connect(&self.inner.amqp_url, "hookbus-producer").await?;
        let ch = Arc::new(broker::confirm_channel(&conn).await?);
        self.inner.topology.declare_events(&ch).await?;
        *link = Some((conn, ch.clone()));
        self.inner.connected.set(true);
        Ok(ch)
    }

    /// Drops the link if it is still the one that failed (another request may have
    /// replaced it already, and a new connection's channel may well have the same id).
    async fn reset(&self, failed: &Arc<Channel>) {
        let mut link = self.inner.link.lock().await;
        if link.as_ref().is_some_and(|(_, ch)| Arc::ptr_eq(ch, failed)) {
            *link = None;
            self.inner.connected.set(false);
        }
    }
}

/// The caller's current OpenTelemetry span, as the context its events carry.
#[cfg(feature = "otel")]
fn caller_context() -> Option<TraceParent> {
    use opentelemetry::trace::TraceContextExt;
    TraceParent::of_span(opentelemetry::Context::current().span().span_context())
}

/// Without the `otel` feature there is no current span to read.
#[cfg(not(feature = "otel"))]
fn caller_context() -> Option<TraceParent> {
    None
}
