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

/// The node `rabbitmqctl` asks: the shared broker (its default node) or one named node, such
/// as a node of the benchmark's private cluster (`-n <name>`).
#[derive(Clone, Copy)]
pub struct Node<'a>(Option<&'a str>);

impl<'a> Node<'a> {
    /// The broker of the test setup, on 127.0.0.1:5672.
    pub const SHARED: Node<'static> = Node(None);

    pub fn named(name: &'a str) -> Self {
        Node(Some(name))
    }

    /// From `rabbitmqctl status`, which is slow (a minute) while a thousand quorum queues
    /// exist: call it only when the broker is back to its usual queues.
    pub async fn versions(self) -> Option<Versions> {
        let status: Value =
            serde_json::from_slice(&self.run(&["status", "--formatter", "json"]).await?).ok()?;
        let text = |key: &str| status.get(key)?.as_str().map(str::to_owned);
        Some(Versions {
            rabbitmq: text("rabbitmq_version")?,
            // "Erlang/OTP 25 [erts-13.1.5] [source] [64-bit] ...": the release is enough.
            erlang: text("erlang_version")?.split(" [").next()?.to_owned(),
        })
    }

    /// The memory the node's Erlang VM has allocated, in bytes (`erlang:memory(total)`).
    pub async fn vm_memory(self) -> Option<u64> {
        self.eval("erlang:memory(total).").await
    }

    /// The value of an Erlang expression that yields a non-negative integer.
    pub async fn eval(self, expression: &str) -> Option<u64> {
        let out = self.run(&["eval", expression]).await?;
        String::from_utf8(out).ok()?.trim().parse().ok()
    }

    /// The memory of every queue whose name starts with `prefix`, summed, in bytes (in a
    /// cluster, every queue of the cluster, as the node reports it).
    pub async fn queues_memory(self, prefix: &str) -> Option<u64> {
        let queues = self.queues(prefix).await?;
        Some(queues.iter().filter_map(|q| q["memory"].as_u64()).sum())
    }

    /// How many queues whose name starts with `prefix` exist.
    pub async fn queue_count(self, prefix: &str) -> Option<usize> {
        Some(self.queues(prefix).await?.len())
    }

    /// The queues whose name starts with `prefix`: name and memory of each.
    async fn queues(self, prefix: &str) -> Option<Vec<Value>> {
        let out = self
            .run(&["list_queues", "name", "memory", "--formatter", "json"])
            .await?;
        let queues: Value = serde_json::from_slice(&out).ok()?;
        Some(
            queues
                .as_array()?
                .iter()
                .filter(|q| q["name"].as_str().is_some_and(|n| n.starts_with(prefix)))
                .cloned()
                .collect(),
        )
    }

    /// The standard output of a successful `rabbitmqctl [-n <node>] -q <args>`, if it
    /// answered within `CLI_TIMEOUT`.
    async fn run(self, args: &[&str]) -> Option<Vec<u8>> {
        let mut command = Command::new("rabbitmqctl");
        if let Some(name) = self.0 {
            command.args(["-n", name]);
        }
        let run = command.arg("-q").args(args).kill_on_drop(true).output();
        let out = tokio::time::timeout(CLI_TIMEOUT, run).await.ok()?.ok()?;
        out.status.success().then_some(out.stdout)
    }
}
