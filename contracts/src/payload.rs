//! Logto payloads: canonical key order at ingest, and rendering with `hookId` last.
//!
//! Receivers written for Logto may compare bodies byte for byte or parse them with
//! order-sensitive code, so the key order is part of the contract. The producer puts the
//! fields in Logto's order once ([`canonicalize`]) and writes them as JSON text once
//! ([`RawPayload`]); the router carries that text untouched and the deliverer only appends
//! `hookId` ([`render`]), so no hop after the producer parses or re-encodes a payload.
//! Fields Logto does not name keep the caller's order after the known ones. Absent keys are
//! simply not there; a `null` the caller sent stays a `null`, as `JSON.stringify` would.

use serde::{de, Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use time::format_description::FormatItem;
use time::macros::format_description;
use time::OffsetDateTime;

use crate::catalogue::{EventKind, EventName};
use crate::ids::HookId;

/// The fields of one event, in wire order, without `hookId`.
pub type Payload = Map<String, Value>;

/// A payload as JSON text (compact as the producer writes it): always an object, in wire
/// order, without `hookId`.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct RawPayload(Box<RawValue>);

impl RawPayload {
    pub fn new(fields: &Payload) -> RawPayload {
        RawPayload(serde_json::value::to_raw_value(fields).expect("a JSON map always serializes"))
    }

    /// The fields, parsed: for the places that show a payload, never the delivery path.
    pub fn fields(&self) -> Payload {
        serde_json::from_str(self.0.get()).expect("a raw payload is a JSON object")
    }
}

impl PartialEq for RawPayload {
    fn eq(&self, other: &RawPayload) -> bool {
        self.0.get() == other.0.get()
    }
}

impl<'de> Deserialize<'de> for RawPayload {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RawPayload, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        if !raw.get().starts_with('{') {
            return Err(de::Error::custom("a payload must be a JSON object"));
        }
        Ok(RawPayload(raw))
    }
}

const INTERACTION: &[&str] = &[
    "event",
    "interactionEvent",
    "createdAt",
    "sessionId",
    "userAgent",
    "userId",
    "userIp",
    "user",
    "application",
];
const MANAGEMENT_API: &[&str] = &[
    "event",
    "createdAt",
    "userAgent",
    "ip",
    "path",
    "method",
    "status",
    "params",
    "matchedRoute",
    "roleId",
    "organizationRoleId",
    "organizationId",
    "addedUserIds",
    "removedUserIds",
    "addedApplicationIds",
    "removedApplicationIds",
    "data",
];
const EXPERIENCE: &[&str] = &[
    "event",
    "createdAt",
    "interactionEvent",
    "userAgent",
    "applicationId",
    "sessionId",
    "ip",
    "application",
    "data",
];
/// Exception events carry the metadata of where they happened (an Experience API flow, or
/// only `userAgent` and `ip`), then the event's own fields (`Identifier.Lockout`: the
/// identifier; `Message.RateLimited`: the rate limit).
const EXCEPTION: &[&str] = &[
    "event",
    "createdAt",
    "interactionEvent",
    "userAgent",
    "applicationId",
    "sessionId",
    "ip",
    "application",
    "type",
    "value",
    "action",
    "recipient",
];
/// Logto spreads the adaptive MFA result before the interaction fields.
const ADAPTIVE_MFA: &[&str] = &[
    "adaptiveMfaResult",
    "event",
    "interactionEvent",
    "createdAt",
    "sessionId",
    "userAgent",
    "userId",
    "userIp",
    "user",
    "application",
];
/// Emitted from the OIDC authorization endpoint, whose metadata is `{ ip, userAgent }`.
const GRANT_LIMIT_EXCEEDED: &[&str] = &[
    "event",
    "createdAt",
    "ip",
    "userAgent",
    "application",
    "userId",
    "applicationId",
    "revokedGrantIds",
    "maxAllowedGrants",
    "preRevocationActiveGrantCount",
];
/// Events whose payload Logto assembles in an order of its own, not their shape's.
const OWN_ORDER: &[(&str, &[&str])] = &[
    ("PostSignInAdaptiveMfaTriggered", ADAPTIVE_MFA),
    ("Grant.LimitExceeded", GRANT_LIMIT_EXCEEDED),
];
const USER: &[&str] = &[
    "id",
    "username",
    "primaryEmail",
    "primaryPhone",
    "name",
    "avatar",
    "customData",
    "identities",
    "lastSignInAt",
    "createdAt",
    "updatedAt",
    "profile",
    "applicationId",
    "isSuspended",
];
const APPLICATION: &[&str] = &["id", "type", "name", "description"];

/// Which of Logto's payload layouts an event's fields follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Interaction,
    ManagementApi,
    /// A data event caused by a sign-in flow (Experience API): carries `interactionEvent`.
    Experience,
    Exception,
}

impl Shape {
    pub fn of(event: EventName, fields: &Payload) -> Shape {
        match event.kind() {
            EventKind::Interaction => Shape::Interaction,
            EventKind::Exception => Shape::Exception,
            EventKind::Data if fields.contains_key("interactionEvent") => Shape::Experience,
            EventKind::Data => Shape::ManagementApi,
        }
    }

    fn order(self) -> &'static [&'static str] {
        match self {
            Shape::Interaction => INTERACTION,
            Shape::ManagementApi => MANAGEMENT_API,
            Shape::Experience => EXPERIENCE,
            Shape::Exception => EXCEPTION,
        }
    }
}

/// Puts `fields` in Logto's order for `event`: `event` and `createdAt` set, known keys in
/// Logto's order, then the others, nested user and application objects ordered too.
/// A `hookId` from the caller is dropped: each delivery sets its own.
pub fn canonicalize(event: EventName, mut fields: Payload, created_at_ms: i64) -> Payload {
    fields.remove("hookId");
    fields.insert("event".into(), Value::String(event.as_str().into()));
    if !matches!(fields.get("createdAt"), Some(Value::String(_))) {
        fields.insert("createdAt".into(), Value::String(iso_millis(created_at_ms)));
    }
    let shape = Shape::of(event, &fields);
    let order = OWN_ORDER
        .iter()
        .find(|(name, _)| *name == event.as_str())
        .map_or(shape.order(), |(_, order)| *order);
    let mut out = reorder(fields, order);
    let nested: &[(&str, &[&str])] = match shape {
        Shape::Interaction => &[("user", USER), ("application", APPLICATION)],
        Shape::Experience => &[("data", USER), ("application", APPLICATION)],
        Shape::Exception => &[("application", APPLICATION)],
        Shape::ManagementApi => &[],
    };
    for (key, order) in nested {
        if let Some(Value::Object(inner)) = out.get_mut(*key) {
            *inner = reorder(std::mem::take(inner), order);
        }
    }
    out
}

fn reorder(mut fields: Payload, order: &[&str]) -> Payload {
    let mut out = take(&mut fields, order);
    out.extend(fields);
    out
}

/// Moves the keys of `order` out of `fields`, in that order.
fn take(fields: &mut Payload, order: &[&str]) -> Payload {
    let mut out = Map::with_capacity(fields.len() + 1);
    for key in order {
        if let Some(v) = fields.shift_remove(*key) {
            out.insert((*key).to_owned(), v);
        }
    }
    out
}

/// A user as Logto puts one in a payload: only its user-info fields, in Logto's order, so
/// that a caller's full user record (password hash included) never reaches a hook.
pub fn user_info(mut user: Payload) -> Payload {
    take(&mut user, USER)
}

/// An application as Logto puts one in a payload: `id`, `type`, `name`, `description`.
pub fn application_info(mut application: Payload) -> Payload {
    take(&mut application, APPLICATION)
}

/// The exact body bytes of one delivery: the payload's fields, then `hookId`.
pub fn render(payload: &RawPayload, hook_id: &HookId) -> Vec<u8> {
    let text = payload.0.get();
    // Everything between the object's braces: a JSON object's text starts with `{` and
    // ends with `}` (checked when the payload was read).
    let fields = text[1..text.len() - 1].trim();
    let mut body = Vec::with_capacity(text.len() + hook_id.as_str().len() + 16);
    body.push(b'{');
    body.extend_from_slice(fields.as_bytes());
    if !fields.is_empty() {
        body.push(b',');
    }
    body.extend_from_slice(b"\"hookId\":");
    serde_json::to_writer(&mut body, hook_id.as_str()).expect("a string always serializes");
    body.push(b'}');
    body
}

const ISO_MILLIS: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// `2026-11-24T10:00:00.000Z`, as JavaScript's `Date.toISOString()`.
pub fn iso_millis(epoch_ms: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(epoch_ms as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    t.format(ISO_MILLIS)
        .expect("a UTC timestamp always formats")
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(v: Value) -> Payload {
        v.as_object().unwrap().clone()
    }

    fn event(name: &str) -> EventName {
        EventName::parse(name).unwrap()
    }

    #[test]
    fn interaction_payload_follows_logto_order_with_hook_id_last() {
        let input = fields(json!({
            "application": {"name": "App", "id": "app1", "type": "SPA"},
            "user": {"username": "ann", "id": "u1", "isSuspended": false},
            "userId": "u1", "sessionId": "s1", "interactionEvent": "SignIn",
            "custom": 1, "hookId": "spoofed"
        }));
        let p = canonicalize(event("PostSignIn"), input, 1_764_000_000_000);
        let body = render(&RawPayload::new(&p), &HookId::parse("h1").unwrap());
        assert_eq!(
            String::from_utf8(body).unwrap(),
            concat!(
                r#"{"event":"PostSignIn","interactionEvent":"SignIn","createdAt":"2025-11-24T16:00:00.000Z","#,
                r#""sessionId":"s1","userId":"u1","user":{"id":"u1","username":"ann","isSuspended":false},"#,
                r#""application":{"id":"app1","type":"SPA","name":"App"},"custom":1,"hookId":"h1"}"#
            )
        );
    }

    #[test]
    fn management_api_payload_order() {
        let input = fields(json!({
            "data": {"id": "u1"}, "matchedRoute": "/users/:userId", "params": {"userId": "u1"},
            "status": 200, "method": "PATCH", "path": "/users/u1", "ip": "1.2.3.4",
            "userAgent": "curl", "createdAt": "2026-01-01T00:00:00.000Z"
        }));
        let p = canonicalize(event("User.Data.Updated"), input, 0);
        let keys: Vec<_> = p.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "event",
                "createdAt",
                "userAgent",
                "ip",
                "path",
                "method",
                "status",
                "params",
                "matchedRoute",
                "data"
            ]
        );
        assert_eq!(
            p["createdAt"], "2026-01-01T00:00:00.000Z",
            "the caller's createdAt is kept"
        );
    }

    #[test]
    fn experience_data_payload_is_recognised_by_interaction_event() {
        let input = fields(json!({
            "data": {"username": "ann", "id": "u1"}, "ip": "1.1.1.1", "interactionEvent": "Register"
        }));
        let p = canonicalize(event("User.Created"), input, 0);
        let keys: Vec<_> = p.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["event", "createdAt", "interactionEvent", "ip", "data"]
        );
        let data_keys: Vec<_> = p["data"].as_object().unwrap().keys().cloned().collect();
        assert_eq!(data_keys, ["id", "username"]);
    }

    #[test]
    fn exception_payloads_follow_the_metadata_of_where_they_happened() {
        let keys = |name: &str, input: Value| -> Vec<String> {
            canonicalize(event(name), fields(input), 0)
                .keys()
                .cloned()
                .collect()
        };
        let lockout = json!({
            "value": "a@example.com", "type": "email", "ip": "1.1.1.1", "sessionId": "s1",
            "applicationId": "app1", "userAgent": "ua", "interactionEvent": "SignIn"
        });
        assert_eq!(
            keys("Identifier.Lockout", lockout),
            [
                "event",
                "createdAt",
                "interactionEvent",
                "userAgent",
                "applicationId",
                "sessionId",
                "ip",
                "type",
                "value"
            ]
        );
        let rate_limited = json!({"recipient": "a@example.com", "action": "VerificationCodeSend", "ip": "1.1.1.1", "userAgent": "ua"});
        assert_eq!(
            keys("Message.RateLimited", rate_limited),
            [
                "event",
                "createdAt",
                "userAgent",
                "ip",
                "action",
                "recipient"
            ]
        );
        let grant = json!({
            "preRevocationActiveGrantCount": 3, "maxAllowedGrants": 2, "revokedGrantIds": ["g1"],
            "applicationId": "app1", "userId": "u1", "userAgent": "ua", "ip": "1.1.1.1"
        });
        assert_eq!(
            keys("Grant.LimitExceeded", grant),
            [
                "event",
                "createdAt",
                "ip",
                "userAgent",
                "userId",
                "applicationId",
                "revokedGrantIds",
                "maxAllowedGrants",
                "preRevocationActiveGrantCount"
            ]
        );
    }

    #[test]
    fn the_adaptive_mfa_result_comes_first_as_logto_spreads_it() {
        let input = json!({"userId": "u1", "adaptiveMfaResult": {"requiresMfa": true}, "interactionEvent": "SignIn"});
        let p = canonicalize(event("PostSignInAdaptiveMfaTriggered"), fields(input), 0);
        let keys: Vec<_> = p.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "adaptiveMfaResult",
                "event",
                "interactionEvent",
                "createdAt",
                "userId"
            ]
        );
    }

    #[test]
    fn user_and_application_info_keep_only_logto_fields_in_order() {
        let user =
            fields(json!({"passwordEncrypted": "x", "name": null, "id": "u1", "tenantId": "t"}));
        assert_eq!(
            serde_json::to_string(&user_info(user)).unwrap(),
            r#"{"id":"u1","name":null}"#
        );
        let app = fields(json!({"secret": "s", "name": "Web", "type": "SPA", "id": "a1"}));
        let keys: Vec<_> = application_info(app).keys().cloned().collect();
        assert_eq!(keys, ["id", "type", "name"]);
    }

    #[test]
    fn render_of_an_empty_payload_is_valid_json() {
        let body = render(
            &RawPayload::new(&Payload::new()),
            &HookId::parse("h").unwrap(),
        );
        assert_eq!(body, br#"{"hookId":"h"}"#);
        let spaced: RawPayload = serde_json::from_str(r#" { "a" : 1 } "#).unwrap();
        let body = render(&spaced, &HookId::parse("h").unwrap());
        assert_eq!(body, br#"{"a" : 1,"hookId":"h"}"#);
        serde_json::from_slice::<Value>(&body).unwrap();
        assert!(serde_json::from_str::<RawPayload>("[]").is_err());
    }

    #[test]
    fn iso_millis_matches_javascript() {
        assert_eq!(iso_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_millis(1_732_400_000_123), "2024-11-23T22:13:20.123Z");
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// JSON values a payload field may hold (bounded depth).
        fn value() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                any::<i64>().prop_map(Value::from),
                ".{0,12}".prop_map(Value::String),
            ];
            leaf.prop_recursive(2, 16, 4, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                    prop::collection::btree_map("[a-zA-Z]{1,8}", inner, 0..4)
                        .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        fn fields() -> impl Strategy<Value = Payload> {
            prop::collection::vec(("[a-zA-Z]{1,10}", value()), 0..8)
                .prop_map(|pairs| pairs.into_iter().collect())
        }

        fn event() -> impl Strategy<Value = EventName> {
            let all: Vec<EventName> = EventName::all().collect();
            prop::sample::select(all)
        }

        proptest! {
            /// The delivered body is the payload's fields, in their order, then `hookId`,
            /// whatever whitespace the payload's text carried.
            #[test]
            fn a_rendered_body_is_the_fields_then_the_hook_id(fields in fields(), pretty in any::<bool>()) {
                let text = if pretty {
                    serde_json::to_string_pretty(&fields).unwrap()
                } else {
                    serde_json::to_string(&fields).unwrap()
                };
                let raw: RawPayload = serde_json::from_str(&text).unwrap();
                let hook = HookId::parse("hook1").unwrap();
                let body: Payload = serde_json::from_slice(&render(&raw, &hook)).unwrap();
                let mut expected = fields.clone();
                expected.shift_remove("hookId");
                expected.insert("hookId".into(), Value::String("hook1".into()));
                prop_assert_eq!(body.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>());
                prop_assert_eq!(body, expected);
            }

            /// Logto's order is a fixed point: `event` first, no caller `hookId`, no field
            /// lost, and ordering again changes nothing.
            #[test]
            fn canonical_order_keeps_every_field_and_is_stable(event in event(), fields in fields(), at in 0i64..4_102_444_800_000) {
                let once = canonicalize(event, fields.clone(), at);
                prop_assert!(!once.contains_key("hookId"));
                prop_assert!(matches!(once.get("event"), Some(Value::String(e)) if e == event.as_str()));
                prop_assert!(once.contains_key("createdAt"));
                for key in fields.keys().filter(|k| *k != "hookId") {
                    prop_assert!(once.contains_key(key), "lost {}", key);
                }
                let twice = canonicalize(event, once.clone(), at);
                prop_assert_eq!(twice.keys().collect::<Vec<_>>(), once.keys().collect::<Vec<_>>());
            }
        }
    }
}
