//! A RabbitMQ cluster of three private nodes on loopback, for the guarantees that must hold
//! when a broker node fails: each node has its own name, AMQP and distribution ports and
//! data directory, runs with `+sbwt none` (so three nodes fit on two cores beside the
//! tests), and is stopped and its directory removed when the cluster is dropped.
//!
//! A node can be killed (`kill -9`, as a crash), stopped (as an operator does) and started
//! again; it rejoins the cluster from its data directory.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use crate::servers::{discard_node, rabbitmqctl, spare_port, wait_port};
use crate::wait::{check, eventually};

/// How long a node may take to start on a busy two-core machine.
const NODE_START: Duration = Duration::from_secs(120);

/// One node of the cluster.
pub struct ClusterNode {
    pub port: u16,
    name: String,
    dist_port: u16,
    dir: PathBuf,
}

impl ClusterNode {
    fn new() -> ClusterNode {
        let port = spare_port();
        let dist_port = spare_port();
        let dir = std::env::temp_dir().join(format!("hookbus-cluster-{port}"));
        let _ = std::fs::remove_dir_all(&dir);
        for sub in ["mnesia", "log"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        std::fs::write(dir.join("enabled_plugins"), "[].").unwrap();
        std::fs::write(
            dir.join("rabbitmq.conf"),
            format!("listeners.tcp.local = 127.0.0.1:{port}\n"),
        )
        .unwrap();
        // The server script runs as the `rabbitmq` user when started by root.
        let _ = std::process::Command::new("chown")
            .args(["-R", "rabbitmq:rabbitmq"])
            .arg(&dir)
            .status();
        ClusterNode {
            port,
            name: format!("hookbus-cluster-{port}@localhost"),
            dist_port,
            dir,
        }
    }

    pub fn amqp_url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Starts the node (from its data directory, if it ran before) and waits for its AMQP
    /// port.
    pub async fn start(&self) {
        let d = |p: &str| self.dir.join(p);
        let status = Command::new("rabbitmq-server")
            .arg("-detached")
            .env("RABBITMQ_NODENAME", &self.name)
            .env("RABBITMQ_CONFIG_FILE", d("rabbitmq.conf"))
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", d("mnesia"))
            .env("RABBITMQ_LOG_BASE", d("log"))
            .env("RABBITMQ_PID_FILE", d("pid"))
            .env("RABBITMQ_FEATURE_FLAGS_FILE", d("feature_flags"))
            .env("RABBITMQ_PLUGINS_EXPAND_DIR", d("plugins"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d("enabled_plugins"))
            .env(
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS",
                "+sbwt none +sbwtdcpu none +sbwtdio none",
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .expect("rabbitmq-server runs");
        assert!(status.success(), "rabbitmq-server -detached failed");
        wait_port(self.port, true, NODE_START).await;
        // The port opens before the node has finished booting: wait until it answers.
        eventually(format!("{} to boot", self.name), NODE_START, async || {
            check(self.ctl(&["await_startup"]).await, |ok| *ok).map_err(|_| self.log_tail())
        })
        .await;
    }

    /// The last lines of the node's log: what a failed boot reports.
    fn log_tail(&self) -> String {
        let log = self.dir.join("log").join(format!("{}.log", self.name));
        let text = std::fs::read_to_string(&log).unwrap_or_else(|e| format!("{log:?}: {e}"));
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// `kill -9` of the node's Erlang VM: a crash, nothing flushed.
    pub async fn kill(&self) {
        let pid = std::fs::read_to_string(self.dir.join("pid")).expect("the node wrote its pid");
        let _ = Command::new("kill").args(["-9", pid.trim()]).status().await;
        wait_port(self.port, false, Duration::from_secs(30)).await;
    }

    /// Runs `rabbitmqctl` against this node; true if it succeeded.
    pub async fn ctl(&self, args: &[&str]) -> bool {
        rabbitmqctl(&self.name, args).await
    }
}

impl Drop for ClusterNode {
    fn drop(&mut self) {
        discard_node(&self.name, &self.dir);
    }
}

/// Three nodes joined into one cluster.
pub struct RabbitCluster {
    pub nodes: Vec<ClusterNode>,
}

impl RabbitCluster {
    pub async fn start() -> RabbitCluster {
        let nodes: Vec<ClusterNode> = (0..3).map(|_| ClusterNode::new()).collect();
        for node in &nodes {
            node.start().await;
        }
        let first = nodes[0].name.clone();
        for node in &nodes[1..] {
            for step in [&["stop_app"][..], &["join_cluster", &first], &["start_app"]] {
                assert!(node.ctl(step).await, "{}: rabbitmqctl {step:?}", node.name);
            }
        }
        let cluster = RabbitCluster { nodes };
        eventually("three running nodes", NODE_START, async || {
            check(cluster.running_nodes().await, |n| *n == 3)
        })
        .await;
        cluster
    }

    /// `HOOKBUS_AMQP_URL` for the whole cluster.
    pub fn amqp_urls(&self) -> String {
        self.nodes
            .iter()
            .map(ClusterNode::amqp_url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// How many nodes the first reachable node sees running.
    pub async fn running_nodes(&self) -> usize {
        for node in &self.nodes {
            let out = Command::new("rabbitmqctl")
                .args([
                    "-n",
                    &node.name,
                    "eval",
                    "length(rabbit_nodes:all_running()).",
                ])
                .stderr(Stdio::null())
                .output()
                .await;
            if let Ok(out) = out {
                if let Ok(n) = String::from_utf8_lossy(&out.stdout).trim().parse() {
                    return n;
                }
            }
        }
        0
    }
}
