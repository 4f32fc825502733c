//! The hook model, Logto's matching rule, and validation of what an admin submits.
//!
//! A [`Hook`] serializes exactly as Logto's hooks API returns one, and is stored in Redis in
//! that same form. A [`HookInput`] is the body of a create request; [`HookInput::validate`]
//! turns it into a hook or an error that names the field, so nothing invalid is ever stored.

use std::collections::BTreeMap;

use http::{HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};

use crate::catalogue::EventName;
use crate::ids::{HookId, SigningKey};
use crate::payload::now_ms;
use crate::signature;
use crate::target::{TargetError, TargetPolicy};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HookConfig {
    pub url: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Deprecated in Logto (0..=3); kept for compatibility. hookbus's retry policy governs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u8>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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
    /// The key a rotation replaced, still signing beside the new one until `until`, so
    /// receivers can switch keys without a gap. Stored, never shown by the API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(ignore)]
    pub retiring_key: Option<RetiringKey>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetiringKey {
    pub key: SigningKey,
    /// Epoch ms after which it no longer signs.
    pub until: i64,
}

impl Hook {
    /// The hook as the API shows it (Logto's shape: no retiring key).
    pub fn for_api(&self) -> Hook {
        Hook {
            retiring_key: None,
            ..self.clone()
        }
    }

    /// Replaces the signing key with `new_key`; the old one keeps signing for `overlap`
    /// after `now_ms`.
    pub fn rotate_key(&mut self, new_key: SigningKey, overlap: std::time::Duration, now_ms: i64) {
        let old = std::mem::replace(&mut self.signing_key, new_key);
        self.retiring_key = (!overlap.is_zero()).then(|| RetiringKey {
            key: old,
            until: now_ms + overlap.as_millis() as i64,
        });
    }

    /// Every key that signs a delivery at `now_ms`: the current one first.
    pub fn signing_keys(&self, now_ms: i64) -> impl Iterator<Item = &SigningKey> {
        let retiring = self
            .retiring_key
            .as_ref()
            .filter(|r| r.until > now_ms)
            .map(|r| &r.key);
        std::iter::once(&self.signing_key).chain(retiring)
    }
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
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HookInput {
    pub name: Option<String>,
    pub event: Option<EventName>,
    pub events: Option<Vec<EventName>>,
    pub config: HookConfig,
    pub enabled: Option<bool>,
}

/// The body of `PATCH /api/hooks/:id`: each field present replaces the hook's (`config`
/// whole, as Logto does); `"event": null` clears the legacy field.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HookPatch {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<EventName>)]
    pub event: Option<Option<EventName>>,
    pub events: Option<Vec<EventName>>,
    pub config: Option<HookConfig>,
    pub enabled: Option<bool>,
}

/// Tells a field sent as `null` (`Some(None)`) from a field not sent (`None`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<EventName>>, D::Error> {
    Option::<EventName>::deserialize(d).map(Some)
}

impl HookPatch {
    /// Applies the patch to `hook` and checks the result as a new hook would be checked.
    pub fn apply(&self, hook: &mut Hook, policy: &TargetPolicy) -> Result<(), HookError> {
        if let Some(name) = &self.name {
            check_name(name)?;
            hook.name = name.clone();
        }
        if let Some(event) = self.event {
            hook.event = event;
        }
        if let Some(events) = &self.events {
            hook.events = dedup(events.clone());
        }
        if let Some(config) = &self.config {
            validate_config(config, policy)?;
            hook.config = config.clone();
        }
        if let Some(enabled) = self.enabled {
            hook.enabled = enabled;
        }
        if hook.events.is_empty() && hook.event.is_none() {
            return Err(HookError::MissingEvents);
        }
        Ok(())
    }
}

fn dedup(mut events: Vec<EventName>) -> Vec<EventName> {
    let mut seen = std::collections::HashSet::new();
    events.retain(|e| seen.insert(*e));
    events
}

fn check_name(name: &str) -> Result<(), HookError> {
    if name.chars().count() > 256 {
        return Err(HookError::Name);
    }
    Ok(())
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
    signature::LOGTO_SIGNATURE_HEADER,
    signature::WEBHOOK_ID_HEADER,
    signature::WEBHOOK_TIMESTAMP_HEADER,
    signature::WEBHOOK_SIGNATURE_HEADER,
    "content-type",
    "content-length",
    "host",
    "transfer-encoding",
];

/// What a new hook is given rather than told: its id, its signing key, its creation time.
/// Passed in, so that validation is a pure function and a test pins every field.
#[derive(Debug, Clone)]
pub struct Minted {
    pub id: HookId,
    pub signing_key: SigningKey,
    pub created_at: i64,
}

impl Minted {
    /// A fresh id and key, now: what the admin API gives a hook it creates.
    pub fn fresh() -> Minted {
        Minted {
            id: HookId::generate(),
            signing_key: SigningKey::generate(),
            created_at: now_ms(),
        }
    }
}

impl HookInput {
    /// [`HookInput::into_hook`] with a [`Minted::fresh`] id, key and time.
    pub fn validate(self, policy: &TargetPolicy) -> Result<Hook, HookError> {
        self.into_hook(policy, Minted::fresh())
    }

    /// The hook this input describes, or the first field that is wrong.
    pub fn into_hook(self, policy: &TargetPolicy, minted: Minted) -> Result<Hook, HookError> {
        let events = dedup(self.events.unwrap_or_default());
        if events.is_empty() && self.event.is_none() {
            return Err(HookError::MissingEvents);
        }
        let name = self.name.unwrap_or_default();
        check_name(&name)?;
        validate_config(&self.config, policy)?;
        Ok(Hook {
            tenant_id: "default".into(),
            id: minted.id,
            name,
            event: self.event,
            events,
            config: self.config,
            signing_key: minted.signing_key,
            enabled: self.enabled.unwrap_or(true),
            created_at: minted.created_at,
            retiring_key: None,
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
    fn a_rotated_key_signs_beside_the_new_one_until_the_overlap_ends() {
        let mut hook = input(
            serde_json::json!({"events": ["PostSignIn"], "config": {"url": "https://a.example"}}),
        )
        .unwrap()
        .validate(&OPEN)
        .unwrap();
        let old = hook.signing_key.clone();
        hook.rotate_key(
            SigningKey::generate(),
            std::time::Duration::from_secs(60),
            1_000,
        );
        assert_ne!(hook.signing_key, old);
        let keys: Vec<_> = hook.signing_keys(1_000).cloned().collect();
        assert_eq!(keys, [hook.signing_key.clone(), old]);
        assert_eq!(
            hook.signing_keys(61_000).count(),
            1,
            "expired at the end of the overlap"
        );
        assert!(hook.for_api().retiring_key.is_none());
        assert!(!serde_json::to_string(&hook.for_api())
            .unwrap()
            .contains("retiring"));
    }

    #[test]
    fn a_patch_replaces_what_it_names_and_keeps_the_hook_valid() {
        let mut hook = input(serde_json::json!({"name": "a", "events": ["PostSignIn"], "config": {"url": "https://a.example", "headers": {"x": "1"}}}))
            .unwrap()
            .validate(&OPEN)
            .unwrap();
        let patch: HookPatch = serde_json::from_value(
            serde_json::json!({"config": {"url": "https://b.example"}, "enabled": false}),
        )
        .unwrap();
        patch.apply(&mut hook, &OPEN).unwrap();
        assert_eq!(hook.config.url, "https://b.example");
        assert!(hook.config.headers.is_empty(), "config is replaced whole");
        assert_eq!(hook.name, "a");
        assert!(!hook.enabled);
        let clear: HookPatch = serde_json::from_value(serde_json::json!({"events": []})).unwrap();
        assert_eq!(
            clear.apply(&mut hook.clone(), &OPEN).unwrap_err(),
            HookError::MissingEvents
        );
        let legacy: HookPatch =
            serde_json::from_value(serde_json::json!({"events": [], "event": "User.Created"}))
                .unwrap();
        legacy.apply(&mut hook, &OPEN).unwrap();
        assert!(hook.wants(ev("User.Created")) || !hook.enabled);
        let null_event: HookPatch =
            serde_json::from_value(serde_json::json!({"event": null})).unwrap();
        assert_eq!(null_event.event, Some(None));
        assert!(
            serde_json::from_value::<HookPatch>(serde_json::json!({"signingKey": "x"})).is_err()
        );
        let private: HookPatch =
            serde_json::from_value(serde_json::json!({"config": {"url": "https://10.0.0.1"}}))
                .unwrap();
        assert!(private.apply(&mut hook, &TargetPolicy::default()).is_err());
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

    #[test]
    fn a_new_hook_takes_the_id_key_and_time_it_is_given() {
        let minted = Minted {
            id: HookId::parse("pinnedhookid").unwrap(),
            signing_key: SigningKey::from("k".repeat(32)),
            created_at: 1_700_000_000_000,
        };
        let hook = input(serde_json::json!({"events": ["PostSignIn"], "config": {"url": "https://example.com/h"}}))
            .unwrap()
            .into_hook(&OPEN, minted)
            .unwrap();
        assert_eq!(hook.id.as_str(), "pinnedhookid");
        assert_eq!(hook.signing_key.expose(), "k".repeat(32));
        assert_eq!(hook.created_at, 1_700_000_000_000);
    }
}
