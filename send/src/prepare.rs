//! Preparing one attempt, pure: the Logto payload rendered for the hook, and signed both
//! ways (Logto's header and Standard Webhooks'), at a time the caller gives.

use hookbus_contracts::payload;
use hookbus_contracts::signature::{
    self, LOGTO_SIGNATURE_HEADER, WEBHOOK_ID_HEADER, WEBHOOK_SIGNATURE_HEADER,
    WEBHOOK_TIMESTAMP_HEADER,
};
use hookbus_contracts::{Delivery, Hook};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, USER_AGENT};

pub const LOGTO_USER_AGENT: &str = "Logto (https://logto.io/)";

/// A request ready to send: the exact bytes that were signed.
#[derive(Debug)]
pub struct Prepared {
    pub url: String,
    pub headers: HeaderMap,
    /// Cheap to clone: the journal keeps it after the request took it.
    pub body: bytes::Bytes,
}

/// Renders the Logto payload for `hook` and signs it both ways, at `now_ms`. During a key
/// rotation's overlap `webhook-signature` carries one signature per key (Standard
/// Webhooks' space-separated list); Logto's header uses the current key.
pub fn prepare(delivery: &Delivery, hook: &Hook, now_ms: i64) -> Prepared {
    let now_secs = now_ms / 1000;
    let body = payload::render(&delivery.event.payload, &hook.id);
    let webhook_id = delivery.event.id.as_str();
    let mut headers = HeaderMap::new();
    headers.insert(USER_AGENT, HeaderValue::from_static(LOGTO_USER_AGENT));
    // Custom headers were validated when the hook was saved; one that no longer parses is
    // skipped rather than failing the delivery.
    for (name, value) in &hook.config.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::try_from(value.as_str()),
        ) {
            headers.insert(n, v);
        }
    }
    let hex = signature::logto_signature(&hook.signing_key, &body);
    let standard: Vec<String> = hook
        .signing_keys(now_ms)
        .map(|key| signature::standard_signature(key, webhook_id, now_secs, &body))
        .collect();
    let set = |headers: &mut HeaderMap, name: &'static str, value: &str| {
        headers.insert(
            name,
            HeaderValue::from_str(value).expect("ids, digits and base64 are valid header values"),
        );
    };
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    set(&mut headers, LOGTO_SIGNATURE_HEADER, &hex);
    set(&mut headers, WEBHOOK_ID_HEADER, webhook_id);
    set(
        &mut headers,
        WEBHOOK_TIMESTAMP_HEADER,
        &now_secs.to_string(),
    );
    set(&mut headers, WEBHOOK_SIGNATURE_HEADER, &standard.join(" "));
    Prepared {
        url: hook.config.url.clone(),
        headers,
        body: body.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use hookbus_contracts::hook::HookInput;
    use hookbus_contracts::target::TargetPolicy;
    use hookbus_contracts::{Event, EventName, SigningKey};

    #[test]
    fn prepared_request_carries_both_signatures_and_custom_headers() {
        let input: HookInput = serde_json::from_value(serde_json::json!({
            "events": ["PostSignIn"],
            "config": {"url": "https://example.com/h", "headers": {"x-tenant": "t1", "user-agent": "mine"}}
        }))
        .unwrap();
        let hook = input.validate(&TargetPolicy::default()).unwrap();
        let event = Event::new(EventName::parse("PostSignIn").unwrap(), Default::default());
        let delivery = Delivery::new(hook.id.clone(), event.clone());
        let p = prepare(&delivery, &hook, 1_700_000_000_000);
        assert!(p
            .body
            .ends_with(format!(",\"hookId\":\"{}\"}}", hook.id).as_bytes()));
        let h = |n: &str| p.headers.get(n).unwrap().to_str().unwrap().to_owned();
        assert_eq!(h("content-type"), "application/json");
        assert_eq!(
            h("user-agent"),
            "mine",
            "a custom header may override the user agent"
        );
        assert_eq!(h("x-tenant"), "t1");
        assert_eq!(h("webhook-id"), event.id.as_str());
        assert_eq!(h("webhook-timestamp"), "1700000000");
        assert_eq!(
            h(LOGTO_SIGNATURE_HEADER),
            signature::logto_signature(&hook.signing_key, &p.body)
        );
        assert_eq!(
            h("webhook-signature"),
            signature::standard_signature(
                &hook.signing_key,
                event.id.as_str(),
                1_700_000_000,
                &p.body
            )
        );
    }

    #[test]
    fn during_a_rotation_both_keys_sign() {
        let input: HookInput = serde_json::from_value(serde_json::json!({
            "events": ["PostSignIn"], "config": {"url": "https://example.com/h"}
        }))
        .unwrap();
        let mut hook = input.validate(&TargetPolicy::default()).unwrap();
        let old = hook.signing_key.clone();
        hook.rotate_key(SigningKey::generate(), Duration::from_secs(60), 1_000_000);
        let event = Event::new(EventName::parse("PostSignIn").unwrap(), Default::default());
        let delivery = Delivery::new(hook.id.clone(), event.clone());
        let p = prepare(&delivery, &hook, 1_000_000);
        let header = p.headers["webhook-signature"].to_str().unwrap().to_owned();
        let id = event.id.as_str();
        assert_eq!(
            header,
            format!(
                "{} {}",
                signature::standard_signature(&hook.signing_key, id, 1000, &p.body),
                signature::standard_signature(&old, id, 1000, &p.body)
            )
        );
        assert_eq!(
            p.headers[LOGTO_SIGNATURE_HEADER],
            signature::logto_signature(&hook.signing_key, &p.body)
        );
        let later = prepare(&delivery, &hook, 1_000_000 + 61_000);
        assert!(!later.headers["webhook-signature"]
            .to_str()
            .unwrap()
            .contains(' '));
    }
}
