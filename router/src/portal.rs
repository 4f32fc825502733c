//! Portal links: a signed, expiring token that lets whoever holds it see and act on one hook
//! and nothing else, so that a platform can hand its customer a page for their endpoint
//! without giving them the admin token.
//!
//! A token is `{hookId}.{expiresAtMs}.{mac}`, where `mac` is the unpadded base64url
//! HMAC-SHA256 of `hookbus-portal.v1.{hookId}.{expiresAtMs}` keyed with
//! `HOOKBUS_PORTAL_SECRET`. Nothing is stored: a token is checked by recomputing its MAC, so
//! every router with the same secret accepts it, and changing the secret revokes them all.
//! Hook ids never contain a `.` (their alphabet is letters, digits, `-` and `_`), so the
//! token splits unambiguously.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64URL;
use base64::Engine;
use hmac::{Hmac, Mac};
use hookbus_contracts::HookId;
use rand::RngCore;
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The key portal tokens are signed with.
#[derive(Clone)]
pub struct PortalKey(Vec<u8>);

/// Why a portal token is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PortalError {
    #[error("not a portal token")]
    Malformed,
    #[error("the portal link's signature does not match (another secret, or altered)")]
    BadSignature,
    #[error("the portal link has expired")]
    Expired,
}

impl PortalKey {
    /// The key from `HOOKBUS_PORTAL_SECRET`, or a random one: then links live only as long
    /// as this process, and only this router accepts them.
    pub fn new(secret: Option<&str>) -> PortalKey {
        match secret.filter(|s| !s.is_empty()) {
            Some(secret) => PortalKey(secret.as_bytes().to_vec()),
            None => {
                let mut key = vec![0u8; 32];
                rand::rng().fill_bytes(&mut key);
                PortalKey(key)
            }
        }
    }

    fn mac(&self, hook: &str, expires_at_ms: i64) -> Vec<u8> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(format!("hookbus-portal.v1.{hook}.{expires_at_ms}").as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    /// A token for `hook`, valid until `expires_at_ms` (epoch ms).
    pub fn mint(&self, hook: &HookId, expires_at_ms: i64) -> String {
        let mac = BASE64URL.encode(self.mac(hook.as_str(), expires_at_ms));
        format!("{}.{expires_at_ms}.{mac}", hook.as_str())
    }

    /// The hook a token grants, if it is ours and has not expired at `now_ms`.
    pub fn verify(&self, token: &str, now_ms: i64) -> Result<HookId, PortalError> {
        let mut parts = token.split('.');
        let (Some(hook), Some(expires), Some(mac), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(PortalError::Malformed);
        };
        let hook = HookId::parse(hook).ok_or(PortalError::Malformed)?;
        let expires: i64 = expires.parse().map_err(|_| PortalError::Malformed)?;
        let mac = BASE64URL.decode(mac).map_err(|_| PortalError::Malformed)?;
        if !bool::from(mac.ct_eq(&self.mac(hook.as_str(), expires))) {
            return Err(PortalError::BadSignature);
        }
        if expires <= now_ms {
            return Err(PortalError::Expired);
        }
        Ok(hook)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook() -> HookId {
        HookId::parse("abc123").unwrap()
    }

    #[test]
    fn a_token_grants_its_hook_until_it_expires() {
        let key = PortalKey::new(Some("secret"));
        let token = key.mint(&hook(), 2_000);
        assert_eq!(key.verify(&token, 1_999), Ok(hook()));
        assert_eq!(key.verify(&token, 2_000), Err(PortalError::Expired));
    }

    #[test]
    fn an_altered_or_foreign_token_is_refused() {
        let key = PortalKey::new(Some("secret"));
        let token = key.mint(&hook(), 2_000);
        let other_hook = token.replacen("abc123", "abc124", 1);
        let later = token.replacen(".2000.", ".9000.", 1);
        for altered in [other_hook, later] {
            assert_eq!(key.verify(&altered, 0), Err(PortalError::BadSignature));
        }
        let foreign = PortalKey::new(Some("another secret"));
        assert_eq!(foreign.verify(&token, 0), Err(PortalError::BadSignature));
        assert_eq!(
            PortalKey::new(None).verify(&token, 0),
            Err(PortalError::BadSignature),
            "a random key is not the configured one"
        );
        for malformed in [
            "",
            "abc123",
            "abc123.2000",
            "a.b.c.d",
            "abc123.x.AAAA",
            "a b.1.AA",
        ] {
            assert_eq!(key.verify(malformed, 0), Err(PortalError::Malformed));
        }
    }
}
