//! What only the broker's CLI tells: its version and memory. Every answer is optional: on a
//! machine without `rabbitmqctl` (or without the right to run it) the figures are "n/a".

use std::time::Duration;

use serde_json::Value;
use tokio::process::Command;

const CLI_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Status {
    pub rabbitmq_version: String,
    pub erlang_version: String,
    /// Memory the Erlang VM reports in use, in bytes.
    pub vm_memory: u64,
}

pub async fn status() -> Option<Status> {
    let status = json(&["status"]).await?;
    let text = |key: &str| status.get(key)?.as_str().map(str::to_owned);
    Some(Status {
        rabbitmq_version: text("rabbitmq_version")?,
        erlang_version: text("erlang_version")?,
        vm_memory: status.pointer("/memory/total/erlang")?.as_u64()?,
    })
}

/// The memory of every queue whose name starts with `prefix`, summed, in bytes.
pub async fn queues_memory(prefix: &str) -> Option<u64> {
    let queues = json(&["list_queues", "name", "memory"]).await?;
    let total = queues
        .as_array()?
        .iter()
        .filter(|q| q["name"].as_str().is_some_and(|n| n.starts_with(prefix)))
        .filter_map(|q| q["memory"].as_u64())
        .sum();
    Some(total)
}

async fn json(args: &[&str]) -> Option<Value> {
    let run = Command::new("rabbitmqctl")
        .arg("-q")
        .args(args)
        .args(["--formatter", "json"])
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(CLI_TIMEOUT, run).await.ok()?.ok()?;
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}
