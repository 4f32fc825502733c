//! `Idempotency-Key`: an auth service whose ingest request timed out retries it with the same
//! key, and gets the first answer (the same event ids) instead of a second publish.
//!
//! A request with a key first claims it in Redis (`SET NX`) as a pending record with a lease
//! token and a short expiry ([`LEASE`]); only then does it publish. Of two concurrent
//! requests with one key, one claims it and publishes; the other answers 409 and publishes
//! nothing, and its retry gets the answer. Once RabbitMQ confirmed, the answer replaces the
//! pending record and is kept [`KEEP`] (24 h). A publish that fails releases the claim (only
//! if it is still its own), so the retry can publish; a process that dies holding a claim
//! leaves it to expire with its lease. A key reused with another body answers 422
//! (draft-ietf-httpapi-idempotency-key-header). Only requests that carry a key need Redis:
//! without one, ingest works while Redis is down.

use std::time::Duration;

use deadpool_redis::redis::{self, AsyncCommands};
use deadpool_redis::{Pool, Runtime};
use hookbus_contracts::keys::RedisKeys;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// How long an answer is replayed.
pub const KEEP: Duration = Duration::from_secs(24 * 60 * 60);
/// How long a claim outlives a process that died while publishing: far above a publish's
/// milliseconds, short enough that a retry soon succeeds.
pub const LEASE: Duration = Duration::from_secs(30);
const MAX_KEY_LEN: usize = 255;

#[derive(Debug, thiserror::Error)]
pub enum IdempotencyError {
    #[error("Redis pool: {0}")]
    Pool(#[from] deadpool_redis::PoolError),
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// A caller's `Idempotency-Key`: 1 to 255 visible ASCII characters, optionally quoted as a
/// structured-header string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(header: &str) -> Result<IdempotencyKey, &'static str> {
        let key = header
            .strip_prefix('"')
            .and_then(|k| k.strip_suffix('"'))
            .unwrap_or(header);
        let visible = key.bytes().all(|b| b.is_ascii_graphic());
        if key.is_empty() || key.len() > MAX_KEY_LEN || !visible {
            return Err("`Idempotency-Key` must be 1 to 255 visible ASCII characters");
        }
        Ok(IdempotencyKey(key.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What the request is: which endpoint, which body. A key reused for another is refused.
pub fn fingerprint(endpoint: &str, body: &[u8]) -> String {
    let mut hash = Sha256::new();
    hash.update(endpoint.as_bytes());
    hash.update(b"\n");
    hash.update(body);
    hex::encode(hash.finalize())
}

/// What Redis holds under a key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "camelCase")]
enum Record {
    Pending { fingerprint: String, lease: String },
    Done { fingerprint: String, answer: Value },
}

/// What a request with a key may do.
#[derive(Debug)]
pub enum Claim {
    /// The key is this request's: publish, then [`Idempotency::complete`] or
    /// [`Idempotency::release`].
    Publish(Lease),
    /// The key was answered: send this answer again, publish nothing.
    Replay(Value),
    /// Another request with the key is publishing now.
    InProgress,
    /// The key was used for another request.
    Reused,
}

/// A claimed key, held while publishing.
#[derive(Debug)]
pub struct Lease {
    redis_key: String,
    fingerprint: String,
    pending: String,
}

/// What a request may do, given what is stored under its key (pure).
fn decide(stored: Option<Record>, fingerprint: &str) -> Claim {
    match stored {
        Some(Record::Done {
            fingerprint: f,
            answer,
        }) if f == fingerprint => Claim::Replay(answer),
        Some(Record::Pending { fingerprint: f, .. }) if f == fingerprint => Claim::InProgress,
        Some(_) => Claim::Reused,
        None => Claim::InProgress,
    }
}

/// Replaces or deletes a key only if it still holds this request's pending record.
const IF_STILL_OURS: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end
return 1";

#[derive(Clone)]
pub struct Idempotency {
    pool: Pool,
    keys: RedisKeys,
}

impl Idempotency {
    /// Creates the pool; nothing connects until a request carries a key.
    pub fn new(
        redis_url: &str,
        keys: RedisKeys,
    ) -> Result<Idempotency, deadpool_redis::CreatePoolError> {
        let mut config = deadpool_redis::Config::from_url(redis_url);
        let mut pool = deadpool_redis::PoolConfig::new(16);
        // A key's request waits at most this long for Redis before answering 503.
        pool.timeouts.wait = Some(Duration::from_secs(2));
        pool.timeouts.create = Some(Duration::from_secs(2));
        config.pool = Some(pool);
        let pool = config.create_pool(Some(Runtime::Tokio1))?;
        Ok(Idempotency { pool, keys })
    }

    /// The pool, shared with the process's presence announcements.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    pub async fn claim(
        &self,
        key: &IdempotencyKey,
        fingerprint: &str,
    ) -> Result<Claim, IdempotencyError> {
        let mut conn = self.pool.get().await?;
        let redis_key = self.keys.idempotency(key.as_str());
        let pending = encode(&Record::Pending {
            fingerprint: fingerprint.to_owned(),
            lease: uuid::Uuid::now_v7().to_string(),
        });
        let claimed: Option<String> = redis::cmd("SET")
            .arg(&redis_key)
            .arg(&pending)
            .arg("NX")
            .arg("PX")
            .arg(LEASE.as_millis() as u64)
            .query_async(&mut *conn)
            .await?;
        if claimed.is_some() {
            return Ok(Claim::Publish(Lease {
                redis_key,
                fingerprint: fingerprint.to_owned(),
                pending,
            }));
        }
        let stored: Option<String> = conn.get(&redis_key).await?;
        let record = stored.and_then(|s| serde_json::from_str(&s).ok());
        Ok(decide(record, fingerprint))
    }

    /// Keeps `answer` under the key for [`KEEP`]. Returns false if the lease had expired
    /// and another request holds the key now.
    pub async fn complete(&self, lease: Lease, answer: &Value) -> Result<bool, IdempotencyError> {
        let done = encode(&Record::Done {
            fingerprint: lease.fingerprint.clone(),
            answer: answer.clone(),
        });
        self.replace(&lease, &done).await
    }

    /// Gives the key up after a failed publish, so that a retry can publish.
    pub async fn release(&self, lease: Lease) -> Result<bool, IdempotencyError> {
        self.replace(&lease, "").await
    }

    async fn replace(&self, lease: &Lease, with: &str) -> Result<bool, IdempotencyError> {
        let mut conn = self.pool.get().await?;
        let replaced: i64 = redis::cmd("EVAL")
            .arg(IF_STILL_OURS)
            .arg(1)
            .arg(&lease.redis_key)
            .arg(&lease.pending)
            .arg(with)
            .arg(KEEP.as_millis() as u64)
            .query_async(&mut *conn)
            .await?;
        Ok(replaced == 1)
    }
}

fn encode(record: &Record) -> String {
    serde_json::to_string(record).expect("a record always serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_are_visible_ascii_optionally_quoted() {
        assert_eq!(IdempotencyKey::parse("abc-1").unwrap().as_str(), "abc-1");
        assert_eq!(IdempotencyKey::parse("\"abc\"").unwrap().as_str(), "abc");
        for bad in ["", "\"\"", "a b", "é", &"k".repeat(256)] {
            assert!(IdempotencyKey::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn fingerprints_tell_endpoints_and_bodies_apart() {
        let a = fingerprint("/api/events", b"{}");
        assert_eq!(a, fingerprint("/api/events", b"{}"));
        assert_ne!(a, fingerprint("/api/interactions", b"{}"));
        assert_ne!(a, fingerprint("/api/events", b"{ }"));
    }

    #[test]
    fn a_stored_key_is_replayed_waited_for_or_refused() {
        let done = |f: &str| Record::Done {
            fingerprint: f.into(),
            answer: json!({"id": "e1"}),
        };
        let pending = |f: &str| Record::Pending {
            fingerprint: f.into(),
            lease: "l".into(),
        };
        assert!(matches!(decide(Some(done("f")), "f"), Claim::Replay(a) if a["id"] == "e1"));
        assert!(matches!(decide(Some(done("g")), "f"), Claim::Reused));
        assert!(matches!(decide(Some(pending("f")), "f"), Claim::InProgress));
        assert!(matches!(decide(Some(pending("g")), "f"), Claim::Reused));
        // Gone between the claim and the read (expired, or released after a failure).
        assert!(matches!(decide(None, "f"), Claim::InProgress));
    }

    #[test]
    fn records_are_tagged_json() {
        let r = Record::Pending {
            fingerprint: "f".into(),
            lease: "l".into(),
        };
        assert_eq!(
            encode(&r),
            r#"{"state":"pending","fingerprint":"f","lease":"l"}"#
        );
        assert_eq!(serde_json::from_str::<Record>(&encode(&r)).unwrap(), r);
    }
}
