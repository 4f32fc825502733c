//! Signing a delivery body, both ways a receiver may verify it.
//!
//! - Logto's `logto-signature-sha-256`: lowercase hex HMAC-SHA256 of the exact body bytes,
//!   keyed with the signing key's UTF-8 bytes.
//! - Standard Webhooks' `webhook-signature`: `v1,` + base64 HMAC-SHA256 of
//!   `{webhook-id}.{webhook-timestamp}.{body}` with the same key bytes, so a Standard Webhooks
//!   library verifies it with the secret `whsec_` + base64(signing key).

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::ids::SigningKey;

pub const LOGTO_SIGNATURE_HEADER: &str = "logto-signature-sha-256";
/// Standard Webhooks: the event id, the same on every attempt (receivers dedupe on it).
pub const WEBHOOK_ID_HEADER: &str = "webhook-id";
/// Standard Webhooks: the signing time, in epoch seconds.
pub const WEBHOOK_TIMESTAMP_HEADER: &str = "webhook-timestamp";
/// Standard Webhooks: space-separated `v1,<base64>` signatures.
pub const WEBHOOK_SIGNATURE_HEADER: &str = "webhook-signature";

fn mac(key: &SigningKey) -> Hmac<Sha256> {
    Hmac::<Sha256>::new_from_slice(key.expose().as_bytes()).expect("HMAC takes any key length")
}

/// Logto's signature header value.
pub fn logto_signature(key: &SigningKey, body: &[u8]) -> String {
    let mut mac = mac(key);
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// One `v1,<base64>` entry of the Standard Webhooks `webhook-signature` header.
pub fn standard_signature(
    key: &SigningKey,
    webhook_id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    let mut mac = mac(key);
    mac.update(webhook_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
}

/// The secret a Standard Webhooks library is configured with for this signing key.
pub fn standard_secret(key: &SigningKey) -> String {
    format!("whsec_{}", BASE64.encode(key.expose().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logto_signature_matches_a_known_vector() {
        // HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog") (RFC 4231 style
        // vector, as published on Wikipedia).
        let key = SigningKey::from("key".to_owned());
        assert_eq!(
            logto_signature(&key, b"The quick brown fox jumps over the lazy dog"),
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
    }

    #[test]
    fn standard_signature_matches_the_standard_webhooks_reference_vector() {
        // The Standard Webhooks reference test vector: secret
        // whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw, id msg_p5jXN8AQM9LWM0D4loKWxJek,
        // timestamp 1614265330, body {"test": 2432232314}.
        use base64::Engine;
        let raw = BASE64.decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        // The reference secret is not valid UTF-8 text in general, but this one's bytes
        // round-trip through from_utf8_lossy only if they are; build the key from bytes.
        let key_bytes = raw.clone();
        let mut mac = Hmac::<Sha256>::new_from_slice(&key_bytes).unwrap();
        mac.update(b"msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330.{\"test\": 2432232314}");
        let expected = format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()));
        assert_eq!(expected, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        // And our function, over a UTF-8 key, is the same computation.
        let key = SigningKey::from("abc".to_owned());
        let mut mac = Hmac::<Sha256>::new_from_slice(b"abc").unwrap();
        mac.update(b"id.5.body");
        let ours = standard_signature(&key, "id", 5, b"body");
        assert_eq!(
            ours,
            format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
        );
        assert_eq!(standard_secret(&key), "whsec_YWJj");
    }
}
