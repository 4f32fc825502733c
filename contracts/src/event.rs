//! The event message: what a producer publishes and the router consumes.
//!
//! Like every wire message it is versioned (see [`crate::wire`]). The payload travels as
//! JSON text, put in Logto's order once by the producer: the router and the deliverer never
//! parse or re-encode it.

use serde::{Deserialize, Serialize};

use crate::catalogue::EventName;
use crate::ids::EventId;
use crate::payload::{self, Payload, RawPayload};
use crate::wire;

/// One domain event, accepted from a producer, with its Logto payload in wire order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub id: EventId,
    pub name: EventName,
    /// When hookbus accepted it (epoch ms): the start of end-to-end latency.
    pub accepted_at_ms: i64,
    pub payload: RawPayload,
}

impl Event {
    /// A new event with a fresh id, accepted now: [`Event::at`] at the edge.
    pub fn new(name: EventName, fields: Payload) -> Event {
        Event::at(EventId::generate(), name, fields, payload::now_ms())
    }

    /// The event `id`, accepted at `accepted_at_ms`; the payload is put in Logto's order.
    pub fn at(id: EventId, name: EventName, fields: Payload, accepted_at_ms: i64) -> Event {
        Event {
            id,
            name,
            accepted_at_ms,
            payload: RawPayload::new(&payload::canonicalize(name, fields, accepted_at_ms)),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        wire::encode_v1(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Event, serde_json::Error> {
        wire::decode_v1(bytes)
    }
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
        let keys: Vec<_> = back.payload.fields().keys().cloned().collect();
        assert_eq!(keys, ["event", "createdAt", "userAgent", "ip"]);
    }

    #[test]
    fn garbage_and_unknown_events_do_not_decode() {
        assert!(Event::decode(b"not json").is_err());
        assert!(Event::decode(br#"{"v":"9"}"#).is_err());
        let unknown = br#"{"v":"1","id":"x","name":"Nope","acceptedAtMs":1,"payload":{}}"#;
        assert!(Event::decode(unknown).is_err());
        let not_an_object =
            br#"{"v":"1","id":"x","name":"PostSignIn","acceptedAtMs":1,"payload":[]}"#;
        assert!(Event::decode(not_an_object).is_err());
    }
}
