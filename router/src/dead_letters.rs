//! Dead letters, a hook's or the events' (`{p}.events.dead`: events the router could not
//! route, deliveries whose own dead letter could not be written): listing them and
//! replaying them, for the admin API and the `router dead-letters` command.
//!
//! RabbitMQ has no "peek", and handing a message back unacked is not free: a quorum queue
//! counts each return as a delivery and, past its delivery limit (20 by default on
//! RabbitMQ 4), drops the message. So both go through the whole queue once, in order
//! ([`pass_through`]): a message that stays is published again at the tail (confirmed)
//! before the original is acked, which keeps the order and starts its count afresh; replay
//! moves a message by publishing it to the hook's queue (a fresh delivery, attempts reset),
//! confirmed, then acking the dead letter. A crash in the middle leaves a message where it
//! was or, at worst, in both places (a duplicate), never in neither.
//!
//! A replayed message goes on in its event's trace: a `hookbus.replay` span under the
//! context the dead letter carries, whose context the replayed message carries.

use hookbus_contracts::topology::{Topology, DEAD_LETTER_AT_HEADER, DEAD_LETTER_REASON_HEADER};
use hookbus_contracts::{Delivery, Event, EventName, HookId};
use hookbus_runtime::broker::{self, PublishError};
use hookbus_runtime::declare::Declare;
use hookbus_runtime::telemetry::{self, KeyValue, SpanKind, Tracing};
use hookbus_runtime::trace_context::{self, TraceParent};
use lapin::message::BasicGetMessage;
use lapin::options::{BasicAckOptions, BasicGetOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection};
use serde::Serialize;

use crate::activity::{Activation, Activator};
use serde_json::Value;

/// One dead letter as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    /// The event id (`webhook-id`); absent for an unreadable message.
    pub event_id: Option<String>,
    pub event: Option<EventName>,
    #[schema(value_type = Object)]
    pub payload: Value,
    pub reason: String,
    pub attempts: u32,
    pub first_attempt_at: Option<i64>,
    pub last_attempt_at: Option<i64>,
    pub dead_at: Option<i64>,
}

/// Which dead letters a replay takes: all by default.
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayFilter {
    pub events: Option<Vec<EventName>>,
    /// Only the dead letters of these events (ids, as listed): "replay this one".
    #[serde(rename = "eventIds")]
    pub event_ids: Option<Vec<String>>,
    /// Dead-lettered at or after (epoch ms).
    pub since: Option<i64>,
    /// Dead-lettered at or before (epoch ms).
    pub until: Option<i64>,
}

impl ReplayFilter {
    fn takes(&self, event: &Event, dead_at: Option<i64>) -> bool {
        let event_ok = self.events.as_ref().is_none_or(|e| e.contains(&event.name))
            && self
                .event_ids
                .as_ref()
                .is_none_or(|ids| ids.iter().any(|id| id == event.id.as_str()));
        let at = dead_at.unwrap_or(0);
        event_ok && self.since.is_none_or(|s| at >= s) && self.until.is_none_or(|u| at <= u)
    }
}

/// Which dead letters: a hook's, or the events' parking queue.
#[derive(Debug, Clone)]
pub enum Parked {
    Hook(HookId),
    Events,
}

impl Parked {
    fn queue(&self, topology: &Topology) -> String {
        match self {
            Parked::Hook(hook) => topology.dead_queue(hook),
            Parked::Events => topology.events_dead_queue(),
        }
    }
}

/// Where a replayed message goes: an event back to the router, a delivery to its hook.
enum Target {
    Router(Event),
    Hook(Delivery),
}

#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    #[error("RabbitMQ: {0}")]
    Broker(#[from] lapin::Error),
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error(transparent)]
    Activation(#[from] crate::activity::ActivationError),
}

/// Messages in a parking queue, `None` when it does not exist. Passive: looking never
/// creates a queue. The broker answers a missing queue by closing `ch`, so with `None` the
/// caller has no channel left to close.
async fn depth(ch: &Channel, queue: &str) -> Result<Option<u32>, lapin::Error> {
    let passive = QueueDeclareOptions {
        passive: true,
        durable: true,
        ..Default::default()
    };
    let declared = ch
        .queue_declare(queue.into(), passive, FieldTable::default())
        .await;
    match declared {
        Ok(queue) => Ok(Some(queue.message_count())),
        Err(err) if broker::is_not_found(&err) => Ok(None),
        Err(err) => Err(err),
    }
}

fn describe(msg: &BasicGetMessage) -> DeadLetter {
    let props = &msg.delivery.properties;
    let reason = broker::header(props, DEAD_LETTER_REASON_HEADER).unwrap_or_default();
    let dead_at = broker::header(props, DEAD_LETTER_AT_HEADER).and_then(|v| v.parse().ok());
    let event = |e: &Event| DeadLetter {
        event_id: Some(e.id.to_string()),
        event: Some(e.name),
        payload: Value::Object(e.payload.fields()),
        reason: reason.clone(),
        attempts: 0,
        first_attempt_at: None,
        last_attempt_at: None,
        dead_at,
    };
    match readable(&msg.delivery.data) {
        Some(Target::Hook(d)) => DeadLetter {
            attempts: d.attempts,
            first_attempt_at: d.first_attempt_at_ms,
            last_attempt_at: d.last_attempt_at_ms,
            ..event(&d.event)
        },
        Some(Target::Router(e)) => event(&e),
        None => DeadLetter {
            event_id: props
                .message_id()
                .as_ref()
                .map(std::string::ToString::to_string),
            event: None,
            payload: Value::String(String::from_utf8_lossy(&msg.delivery.data).into_owned()),
            reason,
            attempts: 0,
            first_attempt_at: None,
            last_attempt_at: None,
            dead_at,
        },
    }
}

/// A parked message as what it would be replayed as: a delivery (a hook's dead letters,
/// or one parked in the events' because its own dead letter failed) or an event.
fn readable(data: &[u8]) -> Option<Target> {
    Delivery::decode(data)
        .map(Target::Hook)
        .or_else(|_| Event::decode(data).map(Target::Router))
        .ok()
}

impl Target {
    fn event(&self) -> &Event {
        match self {
            Target::Router(event) => event,
            Target::Hook(delivery) => &delivery.event,
        }
    }
}

/// Takes each message of a parking queue once, oldest first, and settles it as `decide`
/// says (`Some`: replayed there); returns how many were replayed, or `None` when the queue
/// does not exist. What stays is published again at the tail, so after a whole pass the
/// queue holds the same messages in the same order (dead letters that arrive meanwhile
/// fall in between).
async fn pass_through(
    conn: &Connection,
    topology: &Topology,
    parked: &Parked,
    tracing: &Tracing,
    activity: Option<&Activator>,
    mut decide: impl FnMut(usize, &BasicGetMessage) -> Option<Target>,
) -> Result<Option<usize>, DeadLetterError> {
    let queue = parked.queue(topology);
    let ch = broker::confirm_channel(conn).await?;
    let Some(total) = depth(&ch, &queue).await? else {
        return Ok(None);
    };
    let mut replayed = 0;
    for i in 0..total as usize {
        let Some(msg) = ch
            .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: false })
            .await?
        else {
            break;
        };
        match decide(i, &msg) {
            None => {
                let props =
                    broker::without_header(msg.delivery.properties.clone(), "x-delivery-count");
                broker::publish_confirmed(&ch, "", &queue, &msg.delivery.data, props).await?;
            }
            Some(target) => {
                let parent = TraceParent::of_message(&msg.delivery.properties);
                let attributes = || {
                    let mut attributes = telemetry::event_attributes(target.event());
                    if let Target::Hook(delivery) = &target {
                        attributes.push(KeyValue::new(
                            telemetry::HOOK_ID,
                            delivery.hook_id.to_string(),
                        ));
                    }
                    attributes
                };
                let span = tracing.start(
                    "hookbus.replay",
                    SpanKind::Producer,
                    parent.as_ref(),
                    attributes,
                );
                republish(&ch, topology, activity, &target, span.context().as_ref()).await?;
                replayed += 1;
            }
        }
        msg.delivery.ack(BasicAckOptions::default()).await?;
    }
    broker::close_channel(&ch).await;
    Ok(Some(replayed))
}

/// Publishes a replayed message where it goes: a fresh delivery (attempts reset) to its
/// hook's queue, the hook made active first (as the router does before it routes), or the
/// event to the router.
async fn republish(
    ch: &Channel,
    topology: &Topology,
    activity: Option<&Activator>,
    target: &Target,
    context: Option<&TraceParent>,
) -> Result<(), DeadLetterError> {
    match target {
        Target::Hook(parked) => {
            let fresh = Delivery::new(parked.hook_id.clone(), parked.event.clone());
            let hooks = [&fresh.hook_id];
            let activation = match activity {
                Some(activity) => {
                    let pending = activity.activate(&hooks).await?;
                    activity.declare(pending, ch, topology, &hooks).await?
                }
                None => Activation::NONE,
            };
            topology.declare_deliveries(ch).await?;
            topology.declare_hook(ch, &fresh.hook_id).await?;
            let props =
                trace_context::carry(broker::persistent_json(fresh.event.id.as_str()), context);
            broker::publish_confirmed(
                ch,
                &topology.deliveries_exchange(),
                fresh.hook_id.as_str(),
                &fresh.encode(),
                props,
            )
            .await?;
            activation.check()?;
        }
        Target::Router(event) => {
            let props = trace_context::carry(broker::persistent_json(event.id.as_str()), context);
            broker::publish_confirmed(
                ch,
                &topology.events_exchange(),
                event.name.as_str(),
                &event.encode(),
                props,
            )
            .await?;
        }
    }
    Ok(())
}

/// One page of dead letters, oldest first, and how many there are.
pub async fn list(
    conn: &Connection,
    topology: &Topology,
    parked: &Parked,
    offset: usize,
    limit: usize,
) -> Result<(Vec<DeadLetter>, usize), DeadLetterError> {
    let mut page = Vec::new();
    let mut total = 0;
    pass_through(conn, topology, parked, &Tracing::off(), None, |i, msg| {
        total = i + 1;
        if (offset..offset + limit).contains(&i) {
            page.push(describe(msg));
        }
        None
    })
    .await?;
    Ok((page, total))
}

/// Replays the dead letters that `filter` takes; returns how many. Unreadable ones stay.
pub async fn replay(
    conn: &Connection,
    topology: &Topology,
    parked: &Parked,
    filter: &ReplayFilter,
    tracing: &Tracing,
    activity: Option<&Activator>,
) -> Result<usize, DeadLetterError> {
    let replayed = pass_through(conn, topology, parked, tracing, activity, |_, msg| {
        let dead_at = broker::header(&msg.delivery.properties, DEAD_LETTER_AT_HEADER)
            .and_then(|v| v.parse().ok());
        readable(&msg.delivery.data).filter(|target| filter.takes(target.event(), dead_at))
    })
    .await?
    .unwrap_or(0);
    tracing::info!(?parked, replayed, "dead letters replayed");
    Ok(replayed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_takes_by_event_and_time() {
        let d = Event::new(EventName::parse("PostSignIn").unwrap(), Default::default());
        assert!(ReplayFilter::default().takes(&d, Some(5)));
        let other = ReplayFilter {
            events: Some(vec![EventName::parse("User.Created").unwrap()]),
            ..Default::default()
        };
        assert!(!other.takes(&d, Some(5)));
        let window = ReplayFilter {
            since: Some(10),
            until: Some(20),
            ..Default::default()
        };
        assert!(window.takes(&d, Some(10)) && window.takes(&d, Some(20)));
        assert!(!window.takes(&d, Some(9)) && !window.takes(&d, Some(21)));
        let this_one = ReplayFilter {
            event_ids: Some(vec![d.id.as_str().to_owned()]),
            ..Default::default()
        };
        let e = Event::new(d.name, Default::default());
        assert!(this_one.takes(&d, None) && !this_one.takes(&e, None));
    }
}
