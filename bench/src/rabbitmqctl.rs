//! What only the broker's CLI tells: its version and memory. Every answer is optional: on a
//! machine without `rabbitmqctl` (or without the right to run it) the figures are "n/a".

use std::time::Duration;

use serde_json::Value;
use tokio::process::Command;

const CLI_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Versions {
    pub rabbitmq: String,
    pub erlang: String,
}

/// From `rabbitmqctl status`, which is slow (a minute) while a thousand quorum queues
/// exist: call it only when the broker is back to its usual queues.
pub async fn versions() -> Option<Versions> {
    let status: Value =
        serde_json::from_slice(&run(&["status", "--formatter", "json"]).await?).ok()?;
    let text = |key: &str| status.get(key)?.as_str().map(str::to_owned);
    Some(Versions {
        rabbitmq: text("rabbitmq_version")?,
        // "Erlang/OTP 25 [erts-13.1.5] [source] [64-bit] ...": the release is enough.
        erlang: text("erlang_version")?.split(" [").next()?.to_owned(),
    })
}

/// The memory the Erlang VM has allocated, in bytes (`erlang:memory(total)`).
pub async fn vm_memory() -> Option<u64> {
    let out = run(&["eval", "erlang:memory(total)."]).await?;
    String::from_utf8(out).ok()?.trim().parse().ok()
}

/// The memory of every queue whose name starts with `prefix`, summed, in bytes.
pub async fn queues_memory(prefix: &str) -> Option<u64> {
    let out = run(&["list_queues", "name", "memory", "--formatter", "json"]).await?;
    let queues: Value = serde_json::from_slice(&out).ok()?;
    let total = queues
        .as_array()?
        .iter()
        .filter(|q| q["name"].as_str().is_some_and(|n| n.starts_with(prefix)))
        .filter_map(|q| q["memory"].as_u64())
        .sum();
    Some(total)
}

/// The standard output of a successful `rabbitmqctl -q <args>`.
async fn run(args: &[&str]) -> Option<Vec<u8>> {
    let run = Command::new("rabbitmqctl")
        .arg("-q")
        .args(args)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(CLI_TIMEOUT, run).await.ok()?.ok()?;
    out.status.success().then_some(out.stdout)
}
