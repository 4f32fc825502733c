//! Settings every process shares, from environment variables or the matching flags.
//!
//! Parsed once at startup and passed down; nothing reads the environment after that.

use clap::builder::BoolishValueParser;
use clap::ArgAction;

use hookbus_contracts::keys::RedisKeys;
use hookbus_contracts::target::TargetPolicy;
use hookbus_contracts::topology::{QueueType, Topology};

#[derive(clap::Args, Clone)]
pub struct CommonConfig {
    /// RabbitMQ URL, or the comma-separated URLs of a cluster's nodes (a process connects to
    /// one that answers and fails over to another when it is lost).
    #[arg(
        long,
        env = "HOOKBUS_AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f",
        value_parser = parse_amqp_urls
    )]
    pub amqp_url: String,
    /// Redis URL.
    #[arg(
        long,
        env = "HOOKBUS_REDIS_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    pub redis_url: String,
    /// Kind of the queues that hold deliveries (each hook's queue, the retry tiers): `quorum`
    /// survives the loss of a node of a cluster; `classic` costs less per idle hook on a
    /// single node. Every process of a prefix must agree, and an existing queue keeps its
    /// kind (changing it means draining and deleting the prefix's queues).
    #[arg(long, env = "HOOKBUS_HOOK_QUEUE_TYPE", default_value = "quorum", value_parser = QueueType::parse)]
    pub hook_queue_type: QueueType,
    /// Namespace of every exchange, queue and Redis key ([A-Za-z0-9_-]).
    #[arg(long, env = "HOOKBUS_PREFIX", default_value = "hookbus", value_parser = parse_prefix)]
    pub prefix: String,
}

/// What hook URLs may point at: read by the processes that accept or call hook targets
/// (router and deliverer), not by the producer, so its `--help` does not offer them.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct TargetConfig {
    /// Allow hook targets on loopback, private and reserved addresses.
    #[arg(long, env = "HOOKBUS_ALLOW_PRIVATE_TARGETS", default_value = "false",
          action = ArgAction::Set, value_parser = BoolishValueParser::new())]
    pub allow_private_targets: bool,
    /// Allow plain-http hook URLs.
    #[arg(long, env = "HOOKBUS_ALLOW_HTTP", default_value = "false",
          action = ArgAction::Set, value_parser = BoolishValueParser::new())]
    pub allow_http: bool,
    /// Proxy every outgoing delivery goes through (http:// or https:// URL). Unset, hookbus
    /// connects directly and ignores `HTTP_PROXY`, `HTTPS_PROXY` and `ALL_PROXY`: a proxy
    /// resolves names itself, past the target guard, so with one configured the proxy is
    /// where the rules on private targets must live.
    #[arg(long, env = "HOOKBUS_EGRESS_PROXY", value_parser = parse_proxy)]
    pub egress_proxy: Option<String>,
}

/// How long a hook's queue and consumers outlive its last event: read by the router (which
/// activates hooks and deletes idle queues) and the deliverer (which consumes active hooks).
#[derive(clap::Args, Clone, Debug)]
pub struct ActivityConfig {
    /// A hook with nothing routed, delivered or due for this long is idle: deliverers stop
    /// consuming it and its queue is deleted once empty, until its next event. 0 keeps
    /// every enabled hook's queue and consumers at all times.
    #[arg(long, env = "HOOKBUS_HOOK_IDLE", default_value = "5m", value_parser = parse_duration)]
    pub hook_idle: std::time::Duration,
}

impl ActivityConfig {
    pub fn idle(&self) -> Option<hookbus_contracts::activity::Idle> {
        hookbus_contracts::activity::Idle::new(self.hook_idle)
    }
}

impl Default for ActivityConfig {
    fn default() -> ActivityConfig {
        ActivityConfig {
            hook_idle: hookbus_contracts::activity::DEFAULT_IDLE,
        }
    }
}

impl TargetConfig {
    pub fn policy(&self) -> TargetPolicy {
        TargetPolicy {
            allow_http: self.allow_http,
            allow_private: self.allow_private_targets,
        }
    }
}

impl CommonConfig {
    /// The defaults, with another prefix: for tests and embedding.
    pub fn with_prefix(prefix: &str) -> CommonConfig {
        CommonConfig {
            amqp_url: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
            redis_url: "redis://127.0.0.1:6379".into(),
            prefix: parse_prefix(prefix).expect("a valid prefix"),
            hook_queue_type: QueueType::default(),
        }
    }

    pub fn topology(&self) -> Topology {
        Topology::new(&self.prefix).with_delivery_queues(self.hook_queue_type)
    }

    pub fn redis_keys(&self) -> RedisKeys {
        RedisKeys::new(&self.prefix)
    }
}

/// URLs may carry passwords: the debug form leaves them out.
impl std::fmt::Debug for CommonConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommonConfig")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn parse_prefix(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "`{s}` is not a valid prefix: 1 to 64 of [A-Za-z0-9_-]"
        ))
    }
}

fn parse_proxy(s: &str) -> Result<String, String> {
    match url::Url::parse(s) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
            Ok(s.to_owned())
        }
        _ => Err(format!(
            "`{s}` is not a proxy URL: http://host:port or https://host:port"
        )),
    }
}

/// One duration such as `10s` or `24h`.
/// `HOOKBUS_AMQP_URL`: every node's URL must parse (see [`crate::broker::parse_nodes`]).
pub fn parse_amqp_urls(s: &str) -> Result<String, String> {
    crate::broker::parse_nodes(s).map(|nodes| nodes.join(","))
}

pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| format!("`{s}` is not a duration: {e}"))
}

/// A duration list such as `5s,30s,2m`.
pub fn parse_schedule(s: &str) -> Result<Vec<std::time::Duration>, String> {
    if s.trim().is_empty() {
        return Ok(Vec::new());
    }
    s.split(',')
        .map(|part| {
            humantime::parse_duration(part.trim())
                .map_err(|e| format!("`{}` is not a duration: {e}", part.trim()))
                .and_then(|d| {
                    if d.is_zero() {
                        Err("a retry wait must be positive".into())
                    } else {
                        Ok(d)
                    }
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn schedules_and_prefixes_parse() {
        assert_eq!(
            parse_schedule("1s, 2m,3h").unwrap(),
            [
                Duration::from_secs(1),
                Duration::from_secs(120),
                Duration::from_secs(10800)
            ]
        );
        assert!(parse_schedule("").unwrap().is_empty());
        assert!(parse_schedule("1s,soon").is_err());
        assert!(parse_schedule("0s").is_err());
        assert!(parse_prefix("test-1_a").is_ok());
        assert!(parse_prefix("a.b").is_err());
        assert!(parse_prefix("").is_err());
        assert!(parse_proxy("http://proxy.internal:3128").is_ok());
        assert!(parse_proxy("proxy:3128").is_err());
        assert!(parse_proxy("ftp://proxy").is_err());
    }
}
