//! The delivery message: one event for one hook, on that hook's queue.
//!
//! It carries the attempt count and the first attempt's time, so that a retry (a new
//! message published to a retry tier, see `topology`) knows where it is in the schedule and
//! a dead letter can say how long the endpoint failed.

use serde::{Deserialize, Serialize};

use crate::event::Event;
use crate::ids::HookId;
use crate::wire;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub hook_id: HookId,
    pub event: Event,
    /// Attempts already made (0 for a fresh delivery).
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_attempt_at_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt_at_ms: Option<i64>,
    /// The last attempt's failure, for the dead letter's reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl Delivery {
    pub fn new(hook_id: HookId, event: Event) -> Delivery {
        Delivery {
            hook_id,
            event,
            attempts: 0,
            first_attempt_at_ms: None,
            last_attempt_at_ms: None,
            last_error: None,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        wire::encode_v1(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Delivery, serde_json::Error> {
        wire::decode_v1(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::EventName;

    #[test]
    fn a_delivery_round_trips() {
        let event = Event::new(EventName::parse("PostSignIn").unwrap(), Default::default());
        let mut d = Delivery::new(HookId::generate(), event);
        assert_eq!(Delivery::decode(&d.encode()).unwrap(), d);
        d.attempts = 3;
        d.first_attempt_at_ms = Some(5);
        d.last_attempt_at_ms = Some(6);
        d.last_error = Some("HTTP 500".into());
        assert_eq!(Delivery::decode(&d.encode()).unwrap(), d);
    }
}
