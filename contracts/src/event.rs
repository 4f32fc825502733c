//! The event message: what a producer publishes and the router consumes.
//!
//! Wire messages are versioned enums (`"v": "1"`): a new layout is a new variant, so a
//! router in a rolling deploy still reads what an older producer wrote.

use serde::{Deserialize, Serialize};

use crate::catalogue::EventName;
use crate::ids::EventId;
use crate::payload::{self, Payload};

/// One domain event, accepted from a producer, with its Logto payload in wire order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub id: EventId,
    pub name: EventName,
    /// When hookbus accepted it (epoch ms): the start of end-to-end latency.
    pub accepted_at_ms: i64,
    pub payload: Payload,
}

impl Event {
    /// A new event with a fresh id; the payload is put in Logto's order.
    pub fn new(name: EventName, fields: Payload) -> Event {
        let now = payload::now_ms();
        Event {
            id: EventId::generate(),
            name,
            accepted_at_ms: now,
            payload: payload::canonicalize(name, fields, now),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(&EventMessageRef::V1(self)).expect("an event always serializes")
    }

    pub fn decode(bytes: &[u8]) -> Result<Event, serde_json::Error> {
        serde_json::from_slice::<EventMessage>(bytes).map(|EventMessage::V1(e)| e)
    }
}

#[derive(Deserialize)]
#[serde(tag = "v")]
enum EventMessage {
    #[serde(rename = "1")]
    V1(Event),
}

#[derive(Serialize)]
#[serde(tag = "v")]
enum EventMessageRef<'a> {
    #[serde(rename = "1")]
    V1(&'a Event),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_round_trips_and_keeps_payload_order() {
        let fields = serde_json::json!({"userAgent": "ua", "ip": "1.2.3.4"});
        let event = Event::new(
            EventName::parse("User.Created").unwrap(),
            fields.as_object().unwrap().clone(),
        );
        let bytes = event.encode();
        assert!(bytes.starts_with(br#"{"v":"1","#));
        let back = Event::decode(&bytes).unwrap();
        assert_eq!(back, event);
        let keys: Vec<_> = back.payload.keys().cloned().collect();
        assert_eq!(keys, ["event", "createdAt", "userAgent", "ip"]);
    }

    #[test]
    fn garbage_and_unknown_events_do_not_decode() {
        assert!(Event::decode(b"not json").is_err());
        assert!(Event::decode(br#"{"v":"9"}"#).is_err());
        let unknown = br#"{"v":"1","id":"x","name":"Nope","acceptedAtMs":1,"payload":{}}"#;
        assert!(Event::decode(unknown).is_err());
    }
}
