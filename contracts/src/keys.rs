//! Redis key names, all under `{prefix}:`.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `{p}:hook:{id}` | string | one hook as JSON (Logto's shape, signing key included) |
//! | `{p}:hooks` | sorted set | hook ids scored by `createdAt`, for newest-first listing |
//! | `{p}:hooks:version` | integer | bumped in the same transaction as every hook change |

use crate::ids::HookId;

#[derive(Debug, Clone)]
pub struct RedisKeys {
    prefix: String,
}

impl RedisKeys {
    pub fn new(prefix: &str) -> RedisKeys {
        RedisKeys {
            prefix: prefix.to_owned(),
        }
    }

    pub fn hook(&self, id: &HookId) -> String {
        format!("{}:hook:{}", self.prefix, id)
    }

    pub fn hooks_index(&self) -> String {
        format!("{}:hooks", self.prefix)
    }

    pub fn hooks_version(&self) -> String {
        format!("{}:hooks:version", self.prefix)
    }

    /// A `SCAN MATCH` pattern for every key of this prefix (tests clean up with it).
    pub fn all_pattern(&self) -> String {
        format!("{}:*", self.prefix)
    }
}
