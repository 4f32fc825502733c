//! Identifiers as types, so that an event id is never passed where a hook id is expected.
//!
//! Shapes follow Logto: hook ids are 21 characters of `[0-9a-z]`, signing keys 32 of
//! `[0-9a-zA-Z]`. Event ids are UUIDv7 (time-ordered, unique across producers); an event id
//! is also the Standard Webhooks `webhook-id`, identical on every attempt, so receivers
//! deduplicate on it.

use std::fmt;

use rand::distr::{Alphanumeric, SampleString};
use rand::Rng;
use serde::{Deserialize, Serialize};

#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct EventId(String);

impl EventId {
    const MAX_LEN: usize = 128;

    pub fn generate() -> Self {
        EventId(uuid::Uuid::now_v7().to_string())
    }

    /// Accepts an id from a message. An event id becomes the `webhook-id` header and a
    /// message id: letters, digits and `-_.:` only, so that no message can carry a control
    /// character or a header break into a request.
    pub fn parse(s: &str) -> Option<Self> {
        let ok = !s.is_empty()
            && s.len() <= Self::MAX_LEN
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
        ok.then(|| EventId(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct HookId(String);

/// Ids are checked where they are read, so that a malformed one is an unreadable message
/// (parked with its reason), never a panic further down.
macro_rules! validated_deserialize {
    ($id:ident, $what:literal) => {
        impl<'de> Deserialize<'de> for $id {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
                $id::parse(&s).ok_or_else(|| {
                    serde::de::Error::custom(format_args!(concat!("{:?} is not ", $what), s))
                })
            }
        }
    };
}

validated_deserialize!(EventId, "an event id");
validated_deserialize!(HookId, "a hook id");

impl HookId {
    const LEN: usize = 21;
    const ALPHABET: &'static [u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";

    pub fn generate() -> Self {
        let mut rng = rand::rng();
        let id = (0..Self::LEN)
            .map(|_| Self::ALPHABET[rng.random_range(0..Self::ALPHABET.len())] as char)
            .collect();
        HookId(id)
    }

    /// Accepts an id from a URL or a message. Only Logto's alphabet is allowed, which also
    /// keeps ids safe inside queue names and Redis keys.
    pub fn parse(s: &str) -> Option<Self> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| Self::ALPHABET.contains(&b) || b == b'-' || b == b'_');
        ok.then(|| HookId(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for HookId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for HookId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A hook's HMAC secret. `Debug` and `Display` never show it, so it cannot leak through a
/// log line or an error message by accident; only [`SigningKey::expose`] reads it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct SigningKey(String);

impl SigningKey {
    pub fn generate() -> Self {
        SigningKey(Alphanumeric.sample_string(&mut rand::rng(), 32))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for SigningKey {
    fn from(s: String) -> Self {
        SigningKey(s)
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_have_logto_shapes() {
        let id = HookId::generate();
        assert_eq!(id.as_str().len(), 21);
        assert!(id
            .as_str()
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()));
        assert_eq!(HookId::parse(id.as_str()), Some(id));
        let key = SigningKey::generate();
        assert_eq!(key.expose().len(), 32);
        assert!(key.expose().bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(EventId::generate(), EventId::generate());
    }

    #[test]
    fn hook_ids_with_other_characters_are_refused() {
        for bad in ["", "a.b", "a b", "A*", "../x", &"a".repeat(65)] {
            assert_eq!(HookId::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn ids_are_checked_when_a_message_is_read() {
        let id = EventId::generate();
        assert_eq!(EventId::parse(id.as_str()), Some(id.clone()));
        let read: EventId = serde_json::from_str(&format!("\"{id}\"")).unwrap();
        assert_eq!(read, id);
        for bad in ["", "a b", "evt\u{7}", "x\r\ny: 1", "é", &"a".repeat(129)] {
            assert_eq!(EventId::parse(bad), None, "{bad:?}");
            let json = serde_json::to_string(bad).unwrap();
            assert!(serde_json::from_str::<EventId>(&json).is_err(), "{bad:?}");
        }
        assert!(serde_json::from_str::<HookId>("\"../x\"").is_err());
    }

    #[test]
    fn signing_keys_do_not_print() {
        let key = SigningKey::from("supersecretsupersecretsupersecre".to_owned());
        assert!(!format!("{key:?}").contains("supersecret"));
    }
}
