//! The hook model, Logto's matching rule, and validation of what an admin submits.
//!
//! A [`Hook`] serializes exactly as Logto's hooks API returns one, and is stored in Redis in
//! that same form. A [`HookInput`] is the body of a create request; [`HookInput::validate`]
//! turns it into a hook or an error that names the field, so nothing invalid is ever stored.

use std::collections::BTreeMap;

use axum::http::{HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};

use crate::catalogue::EventName;
use crate::ids::{HookId, SigningKey};
use crate::payload::now_ms;
use crate::target::{TargetError, TargetPolicy};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HookConfig {
    pub url: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Deprecated in Logto (0..=3); kept for compatibility. hookbus's retry policy governs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u8>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hook {
    pub tenant_id: String,
    pub id: HookId,
    pub name: String,
    /// Logto's legacy single-event field.
    pub event: Option<EventName>,
    pub events: Vec<EventName>,
    pub config: HookConfig,
    pub signing_key: SigningKey,
    pub enabled: bool,
    pub created_at: i64,
}

impl Hook {
    /// Logto's rule: enabled, and `events` contains it when non-empty, else `event` equals it.
    pub fn wants(&self, event: EventName) -> bool {
        self.enabled
            && if self.events.is_empty() {
                self.event == Some(event)
            } else {
                self.events.contains(&event)
            }
    }
}

/// The body of `POST /api/hooks` (Logto's fields; unknown ones are refused).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HookInput {
    pub name: Option<String>,
    pub event: Option<EventName>,
    pub events: Option<Vec<EventName>>,
    pub config: HookConfig,
    pub enabled: Option<bool>,
}

/// Why a hook was refused; `code` is the error code of Logto's API where one exists.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HookError {
    #[error("a hook needs a non-empty `events` (or the legacy `event`)")]
    MissingEvents,
    #[error("`name` must be 1 to 256 characters")]
    Name,
    #[error("`config.url`: {0}")]
    Url(#[from] TargetError),
    #[error("`config.headers`: `{0}` is not a valid HTTP header name")]
    HeaderName(String),
    #[error("`config.headers`: the value of `{0}` is not a valid HTTP header value")]
    HeaderValue(String),
    #[error("`config.headers`: `{0}` is set by hookbus and cannot be overridden")]
    ReservedHeader(String),
    #[error("`config.retries` must be between 0 and 3")]
    Retries,
}

impl HookError {
    pub fn code(&self) -> &'static str {
        match self {
            HookError::MissingEvents => "hook.missing_events",
            _ => "guard.invalid_input",
        }
    }
}

/// Headers the delivery sets itself; a custom header must not replace a signature.
const RESERVED_HEADERS: &[&str] = &[
    "logto-signature-sha-256",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "content-type",
    "content-length",
    "host",
    "transfer-encoding",
];

impl HookInput {
    pub fn validate(self, policy: &TargetPolicy) -> Result<Hook, HookError> {
        let mut events = self.events.unwrap_or_default();
        let mut seen = std::collections::HashSet::new();
        events.retain(|e| seen.insert(*e));
        if events.is_empty() && self.event.is_none() {
            return Err(HookError::MissingEvents);
        }
        let name = self.name.unwrap_or_default();
        if name.chars().count() > 256 {
            return Err(HookError::Name);
        }
        validate_config(&self.config, policy)?;
        Ok(Hook {
            tenant_id: "default".into(),
            id: HookId::generate(),
            name,
            event: self.event,
            events,
            config: self.config,
            signing_key: SigningKey::generate(),
            enabled: self.enabled.unwrap_or(true),
            created_at: now_ms(),
        })
    }
}

/// Checks a hook's endpoint and custom headers.
pub fn validate_config(config: &HookConfig, policy: &TargetPolicy) -> Result<(), HookError> {
    policy.check_url(&config.url)?;
    for (name, value) in &config.headers {
        let parsed = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| HookError::HeaderName(name.clone()))?;
        if RESERVED_HEADERS.contains(&parsed.as_str()) {
            return Err(HookError::ReservedHeader(name.clone()));
        }
        HeaderValue::from_str(value).map_err(|_| HookError::HeaderValue(name.clone()))?;
    }
    if config.retries.is_some_and(|r| r > 3) {
        return Err(HookError::Retries);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPEN: TargetPolicy = TargetPolicy {
        allow_http: true,
        allow_private: true,
    };

    fn input(json: serde_json::Value) -> Result<HookInput, serde_json::Error> {
        serde_json::from_value(json)
    }

    fn ev(name: &str) -> EventName {
        EventName::parse(name).unwrap()
    }

    #[test]
    fn matching_follows_logto() {
        let mut hook = input(serde_json::json!({
            "events": ["PostSignIn", "User.Created", "PostSignIn"], "config": {"url": "https://a.example/h"}
        }))
        .unwrap()
        .validate(&OPEN)
        .unwrap();
        assert_eq!(hook.events.len(), 2, "events are deduplicated");
        assert!(hook.wants(ev("PostSignIn")));
        assert!(!hook.wants(ev("User.Deleted")));
        hook.enabled = false;
        assert!(!hook.wants(ev("PostSignIn")));

        let legacy = input(
            serde_json::json!({"event": "PostRegister", "config": {"url": "https://a.example"}}),
        )
        .unwrap()
        .validate(&OPEN)
        .unwrap();
        assert!(legacy.wants(ev("PostRegister")));
        assert!(!legacy.wants(ev("PostSignIn")));
    }

    #[test]
    fn invalid_inputs_are_refused_with_the_field_named() {
        let missing =
            input(serde_json::json!({"events": [], "config": {"url": "https://a.example"}}))
                .unwrap();
        assert_eq!(
            missing.validate(&OPEN).unwrap_err().code(),
            "hook.missing_events"
        );
        let unknown_field = input(
            serde_json::json!({"events": ["PostSignIn"], "config": {"url": "https://a.example"}, "colour": 1}),
        );
        assert!(unknown_field.unwrap_err().to_string().contains("colour"));
        let unknown_event =
            input(serde_json::json!({"events": ["Nope"], "config": {"url": "https://a.example"}}));
        assert!(unknown_event.unwrap_err().to_string().contains("Nope"));
        let strict = TargetPolicy::default();
        let private = input(
            serde_json::json!({"events": ["PostSignIn"], "config": {"url": "https://10.0.0.1"}}),
        )
        .unwrap();
        assert!(matches!(
            private.validate(&strict),
            Err(HookError::Url(TargetError::Private(_)))
        ));
        let header = input(serde_json::json!({"events": ["PostSignIn"], "config": {"url": "https://a.example", "headers": {"bad name": "v"}}})).unwrap();
        assert_eq!(
            header.validate(&OPEN).unwrap_err(),
            HookError::HeaderName("bad name".into())
        );
        let spoof = input(serde_json::json!({"events": ["PostSignIn"], "config": {"url": "https://a.example", "headers": {"Logto-Signature-Sha-256": "x"}}})).unwrap();
        assert!(matches!(
            spoof.validate(&OPEN),
            Err(HookError::ReservedHeader(_))
        ));
        let long = input(serde_json::json!({"name": "x".repeat(257), "events": ["PostSignIn"], "config": {"url": "https://a.example"}})).unwrap();
        assert_eq!(long.validate(&OPEN).unwrap_err(), HookError::Name);
    }

    #[test]
    fn a_hook_serializes_in_logto_shape() {
        let hook = input(serde_json::json!({"name": "n", "events": ["PostSignIn"], "config": {"url": "https://a.example", "headers": {"x-a": "1"}}}))
            .unwrap()
            .validate(&OPEN)
            .unwrap();
        let v = serde_json::to_value(&hook).unwrap();
        let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        assert_eq!(
            keys,
            [
                "tenantId",
                "id",
                "name",
                "event",
                "events",
                "config",
                "signingKey",
                "enabled",
                "createdAt"
            ]
        );
        assert_eq!(v["event"], serde_json::Value::Null);
        assert_eq!(v["config"]["headers"]["x-a"], "1");
    }
}
